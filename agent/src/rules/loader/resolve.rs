//! Turning collected items into rules: list expansion, textual list substitution,
//! exceptions, parsing, macro expansion with visibility, and the unused-item warnings.

use std::collections::{BTreeSet, HashSet};

use super::Rule;
use super::collect::{Collector, MacroInfo, RuleInfo, Table};
use super::diagnostics::{Failure, Sink, codes, label};
use super::exceptions;
use super::items::Kind;
use super::remap::remap_expr;
use super::rule_item::SYSCALL_SOURCE;
use super::substitute::{joined, substitute};
use super::text::MappedText;
use crate::rules::condition::ast::{Expr, Pos};
use crate::rules::condition::parser;

/// What became of a macro: resolved, failed (already reported), or not yet processed.
#[derive(Clone, Debug)]
enum Resolution {
    /// Not processed yet.
    Pending,
    /// Did not parse or resolve; reported against the macro itself.
    Failed,
    /// The body with every macro reference replaced.
    Done(Expr),
}

/// Builds the rules, reporting every problem to `sink`.
pub(crate) fn resolve(col: &Collector, sink: &mut Sink<'_>) -> Vec<Rule> {
    let mut state = State::new(col);
    state.expand_lists();
    state.parse_macros(sink);
    state.resolve_macros(sink);
    let rules = col
        .rules
        .entries()
        .iter()
        .filter(|r| !r.unknown_source)
        .filter_map(|r| state.rule(r, sink))
        .collect();
    // Use marks are only complete when every item made it; after an error they would
    // produce spurious warnings (Falco, stopping at the first error, never reports them then).
    if error_count(sink) == 0 {
        state.warn_unused(sink);
    }
    rules
}

fn error_count(sink: &Sink<'_>) -> usize {
    sink.list
        .iter()
        .filter(|d| d.severity == super::Severity::Error)
        .count()
}

/// The compiler's working state; vectors are indexed like the collector's tables.
struct State<'c> {
    col: &'c Collector,
    /// Each list's items with references to earlier lists expanded.
    lists: Vec<Vec<String>>,
    /// What each list name is replaced with in conditions.
    substitutions: Vec<String>,
    /// Whether each list was referenced (by a list or a condition).
    list_used: Vec<bool>,
    /// Each macro's parsed condition (`None` if it did not parse).
    parsed: Vec<Option<Expr>>,
    /// Each macro's expanded condition, filled in definition order.
    resolved: Vec<Resolution>,
    /// Whether each macro was referenced.
    macro_used: Vec<bool>,
}

impl<'c> State<'c> {
    fn new(col: &'c Collector) -> Self {
        let macros = col.macros.len();
        Self {
            col,
            lists: Vec::new(),
            substitutions: Vec::new(),
            list_used: vec![false; col.lists.len()],
            parsed: Vec::new(),
            resolved: vec![Resolution::Pending; macros],
            macro_used: vec![false; macros],
        }
    }

    /// An item naming a list defined before it (by visibility) takes that list's items.
    /// Earlier lists are already expanded, so nesting works at any depth.
    fn expand_lists(&mut self) {
        let table = &self.col.lists;
        for (i, list) in table.entries().iter().enumerate() {
            let mut items = Vec::with_capacity(list.items.len());
            for item in &list.items {
                match table.position(item) {
                    Some(j) if table.entries()[j].order.index < list.order.visibility => {
                        self.list_used[j] = true;
                        let expanded = self.lists.get(j).filter(|_| j < i);
                        items.extend(
                            expanded
                                .unwrap_or(&table.entries()[j].items)
                                .iter()
                                .cloned(),
                        );
                    }
                    _ => items.push(item.clone()),
                }
            }
            self.substitutions.push(joined(&items));
            self.lists.push(items);
        }
    }

    /// Substitutes every list (in definition order: lists have no visibility with respect to
    /// conditions) and parses, with positions mapped to the files.
    fn parse(&mut self, cond: &MappedText) -> Result<Expr, Failure> {
        let mut text = cond.clone();
        for (i, list) in self.col.lists.entries().iter().enumerate() {
            if substitute(&mut text, &list.name, &self.substitutions[i]) {
                self.list_used[i] = true;
            }
        }
        let locate = text.locator();
        match parser::parse(text.as_str()) {
            Ok(mut expr) => {
                remap_expr(&mut expr, &locate);
                Ok(expr)
            }
            Err(e) => Err(Failure {
                code: codes::LOAD_ERR_COMPILE_CONDITION,
                message: e.message,
                pos: locate(e.pos),
            }),
        }
    }

    fn parse_macros(&mut self, sink: &mut Sink<'_>) {
        for m in self.col.macros.entries() {
            let parsed = self.parse(&m.cond);
            let parsed = parsed.map_err(|f| sink.failure(f, Some(&label("macro", &m.name))));
            self.parsed.push(parsed.ok());
        }
    }

    /// Resolves macros in definition order; each sees the macros defined before its own
    /// latest definition or append.
    fn resolve_macros(&mut self, sink: &mut Sink<'_>) {
        for (i, m) in self.col.macros.entries().iter().enumerate() {
            let Some(body) = self.parsed[i].clone() else {
                self.resolved[i] = Resolution::Failed;
                continue;
            };
            let result = self.expand(body, m.order.visibility, &label("macro", &m.name), sink);
            self.resolved[i] = result.map_or(Resolution::Failed, Resolution::Done);
        }
    }

    fn expand(
        &mut self,
        body: Expr,
        visibility: u32,
        item: &str,
        sink: &mut Sink<'_>,
    ) -> Option<Expr> {
        let mut expander = Expander {
            macros: &self.col.macros,
            rejected: &self.col.rejected,
            parsed: &self.parsed,
            resolved: &self.resolved,
            used: &mut self.macro_used,
            visibility,
            path: Vec::new(),
            problems: Vec::new(),
            failed: false,
        };
        let expr = expander.expand(body);
        let mut reported = BTreeSet::new();
        for (message, pos) in expander.problems {
            if reported.insert(message.clone()) {
                sink.failure(Failure::invalid(message, pos), Some(item));
            }
        }
        (!expander.failed).then_some(expr)
    }

    fn rule(&mut self, info: &RuleInfo, sink: &mut Sink<'_>) -> Option<Rule> {
        let r = &info.item;
        let item = label("rule", &r.name);
        let cond = if r.exceptions.is_empty() {
            Ok(r.cond.clone())
        } else {
            exceptions::apply(&r.cond, &r.exceptions, r.pos)
        };
        let parsed = cond.and_then(|c| self.parse(&c));
        let body = parsed.map_err(|f| sink.failure(f, Some(&item))).ok()?;
        let condition = self.expand(body, u32::MAX, &item, sink)?;
        Some(Rule {
            name: r.name.clone(),
            desc: r.desc.clone(),
            condition,
            output: r.output.as_str().to_string(),
            output_pos: r.output.start(),
            priority: r.priority,
            source: SYSCALL_SOURCE.to_string(),
            tags: r.tags.iter().cloned().collect(),
            enabled: r.enabled,
            skip_if_unknown_filter: r.skip_if_unknown_filter,
            warn_evttypes: r.warn_evttypes,
            pos: r.pos,
        })
    }

    fn warn_unused(&self, sink: &mut Sink<'_>) {
        for (m, used) in self.col.macros.entries().iter().zip(&self.macro_used) {
            if !used {
                let message = "Macro not referred to by any other rule/macro";
                sink.warning(
                    codes::LOAD_UNUSED_MACRO,
                    message,
                    m.pos,
                    Some(&label("macro", &m.name)),
                );
            }
        }
        for (l, used) in self.col.lists.entries().iter().zip(&self.list_used) {
            if !used {
                let message = "List not referred to by any other rule/macro";
                sink.warning(
                    codes::LOAD_UNUSED_LIST,
                    message,
                    l.pos,
                    Some(&label("list", &l.name)),
                );
            }
        }
    }
}

/// Replaces macro references by their bodies.
struct Expander<'a> {
    macros: &'a Table<MacroInfo>,
    /// Items rejected while reading: references to them were reported already.
    rejected: &'a HashSet<(Kind, String)>,
    parsed: &'a [Option<Expr>],
    resolved: &'a [Resolution],
    used: &'a mut [bool],
    visibility: u32,
    /// Macros being expanded (for loop detection).
    path: Vec<usize>,
    /// Errors to report against the item.
    problems: Vec<(String, Pos)>,
    /// Whether the result is unusable (reported or not).
    failed: bool,
}

impl Expander<'_> {
    fn expand(&mut self, expr: Expr) -> Expr {
        match expr {
            Expr::And(children, pos) => Expr::And(self.expand_all(children), pos),
            Expr::Or(children, pos) => Expr::Or(self.expand_all(children), pos),
            Expr::Not(child, pos) => Expr::Not(Box::new(self.expand(*child)), pos),
            Expr::Macro(name, pos) => self.reference(name, pos),
            check @ Expr::Check(_) => check,
        }
    }

    fn expand_all(&mut self, children: Vec<Expr>) -> Vec<Expr> {
        children.into_iter().map(|c| self.expand(c)).collect()
    }

    fn reference(&mut self, name: String, pos: Pos) -> Expr {
        let visible = self
            .macros
            .position(&name)
            .filter(|&j| self.macros.entries()[j].order.index < self.visibility);
        let Some(j) = visible else {
            self.failed = true;
            if !self.rejected.contains(&(Kind::Macro, name.clone())) {
                self.problems
                    .push((format!("Undefined macro '{name}' used in filter."), pos));
            }
            return Expr::Macro(name, pos);
        };
        self.used[j] = true;
        if self.path.contains(&j) {
            self.failed = true;
            self.problems
                .push((format!("reference loop in macro '{name}'"), pos));
            return Expr::Macro(name, pos);
        }
        match (&self.resolved[j], &self.parsed[j]) {
            (Resolution::Done(body), _) => body.clone(),
            (Resolution::Pending, Some(body)) => {
                self.path.push(j);
                let expanded = self.expand(body.clone());
                self.path.pop();
                expanded
            }
            // The macro itself failed, and that was reported against it.
            _ => {
                self.failed = true;
                Expr::Macro(name, pos)
            }
        }
    }
}
