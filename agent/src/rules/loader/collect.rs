//! The collector: applies items in load order (define, append, replace, enable) and keeps
//! the definition index and visibility that later decide which macros and lists each item
//! may refer to.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::diagnostics::{Failure, Sink, codes, label};
use super::exceptions::{self, Entry, Exception};
use super::items::{
    Item, Kind, ListItem, MacroItem, PluginRequirement, RuleChanges, RuleItem, RuleUpdate,
};
use super::priority::Priority;
use super::rule_item::SYSCALL_SOURCE;
use super::text::MappedText;
use super::version::{ENGINE_VERSION, Version};
use crate::rules::condition::ast::Pos;

/// Plugins whose fields Vigil provides natively, so requiring them is satisfied.
const NATIVE_PLUGINS: [&str; 1] = ["container"];

/// Named entries in definition order; redefining keeps the original slot.
#[derive(Debug)]
pub(crate) struct Table<T> {
    entries: Vec<T>,
    by_name: HashMap<String, usize>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            by_name: HashMap::new(),
        }
    }
}

impl<T> Table<T> {
    /// The slot of `name`.
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The entry called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&T> {
        self.position(name).map(|i| &self.entries[i])
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut T> {
        self.position(name).map(|i| &mut self.entries[i])
    }

    /// All entries, in definition order.
    pub(crate) fn entries(&self) -> &[T] {
        &self.entries
    }

    /// How many entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Order bookkeeping shared by lists, macros and rules.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Order {
    /// Id of the first definition (kept when redefined).
    pub(crate) index: u32,
    /// Id of the latest define/append/replace: the item sees what was defined before it.
    pub(crate) visibility: u32,
}

/// A list as collected.
#[derive(Clone, Debug)]
pub(crate) struct ListInfo {
    /// The list name.
    pub(crate) name: String,
    /// Items, appends included, list references not yet expanded.
    pub(crate) items: Vec<String>,
    /// Definition order.
    pub(crate) order: Order,
    /// Where the (latest) definition starts.
    pub(crate) pos: Pos,
}

/// A macro as collected.
#[derive(Clone, Debug)]
pub(crate) struct MacroInfo {
    /// The macro name.
    pub(crate) name: String,
    /// The condition text, appends included.
    pub(crate) cond: MappedText,
    /// Definition order.
    pub(crate) order: Order,
    /// Where the (latest) definition starts.
    pub(crate) pos: Pos,
}

/// A rule as collected.
#[derive(Clone, Debug)]
pub(crate) struct RuleInfo {
    /// The definition with every append and replace applied.
    pub(crate) item: RuleItem,
    /// Definition order.
    pub(crate) order: Order,
    /// The source is not one Vigil evaluates; the rule is kept for overrides but skipped.
    pub(crate) unknown_source: bool,
}

/// Everything collected from all files.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    /// Id of the next define/append/replace (shared by all kinds, as in Falco).
    next_id: u32,
    /// Lists.
    pub(crate) lists: Table<ListInfo>,
    /// Macros.
    pub(crate) macros: Table<MacroInfo>,
    /// Rules, of every source.
    pub(crate) rules: Table<RuleInfo>,
    /// The highest `required_engine_version` seen.
    pub(crate) engine_version: Option<Version>,
    /// Items whose definition was rejected: references to them are not reported again.
    pub(crate) rejected: HashSet<(Kind, String)>,
}

impl Collector {
    /// Applies one item, reporting what goes wrong.
    pub(crate) fn collect(&mut self, item: Item, sink: &mut Sink<'_>) {
        let (result, item_label) = match item {
            Item::EngineVersion { version, pos } => (
                self.engine(version, pos),
                "required_engine_version".to_string(),
            ),
            Item::Plugin(req) => (check_plugin(&req), "required_plugin_versions".to_string()),
            Item::List(list) => {
                let l = label("list", &list.name);
                (self.list(list), l)
            }
            Item::Macro(m) => {
                let l = label("macro", &m.name);
                (self.macro_item(m), l)
            }
            Item::Rule(rule) => {
                let l = label("rule", &rule.name);
                (self.define_rule(*rule, sink, &l), l)
            }
            Item::RuleUpdate(update) => {
                let l = label("rule", &update.name);
                (self.update_rule(*update), l)
            }
            Item::RuleEnable { name, enabled, pos } => {
                let l = label("rule", &name);
                (self.enable_rule(&name, enabled, pos), l)
            }
            Item::Rejected { kind, name } => {
                self.rejected.insert((kind, name));
                (Ok(()), String::new())
            }
        };
        if let Err(failure) = result {
            sink.failure(failure, Some(&item_label));
        }
    }

    fn next(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn engine(&mut self, version: Version, pos: Pos) -> Result<(), Failure> {
        if !ENGINE_VERSION.satisfies(version) {
            let message = format!(
                "Rules require engine version {version}, but engine version is {ENGINE_VERSION}"
            );
            return Err(Failure::invalid(message, pos));
        }
        self.engine_version = self.engine_version.max(Some(version));
        Ok(())
    }

    /// An append/replace/enable whose target does not exist: an error, unless the target's
    /// own definition was rejected (already reported).
    fn missing(&self, kind: Kind, name: &str, message: &str, pos: Pos) -> Result<(), Failure> {
        if self.rejected.contains(&(kind, name.to_string())) {
            Ok(())
        } else {
            Err(Failure::invalid(message, pos))
        }
    }

    fn list(&mut self, list: ListItem) -> Result<(), Failure> {
        let id = self.next();
        if list.append {
            let Some(prev) = self.lists.get_mut(&list.name) else {
                let message = "List uses 'append' or 'override.items: append' but no list by that name already exists";
                return self.missing(Kind::List, &list.name, message, list.pos);
            };
            prev.items.extend(list.items);
            prev.order.visibility = id;
            return Ok(());
        }
        let info = ListInfo {
            name: list.name,
            items: list.items,
            order: Order {
                index: id,
                visibility: id,
            },
            pos: list.pos,
        };
        define(&mut self.lists, info, |l| &l.name, |l| &mut l.order);
        Ok(())
    }

    fn macro_item(&mut self, m: MacroItem) -> Result<(), Failure> {
        let id = self.next();
        if m.append {
            let Some(prev) = self.macros.get_mut(&m.name) else {
                let message = "Macro uses 'append' or 'override.condition: append' but no macro by that name already exists";
                return self.missing(Kind::Macro, &m.name, message, m.pos);
            };
            prev.cond.append_str(" ", m.cond.start());
            prev.cond.append(&m.cond);
            prev.order.visibility = id;
            return Ok(());
        }
        let info = MacroInfo {
            name: m.name,
            cond: m.cond,
            order: Order {
                index: id,
                visibility: id,
            },
            pos: m.pos,
        };
        define(&mut self.macros, info, |m| &m.name, |m| &mut m.order);
        Ok(())
    }

    fn define_rule(
        &mut self,
        mut rule: RuleItem,
        sink: &mut Sink<'_>,
        item_label: &str,
    ) -> Result<(), Failure> {
        if self
            .rules
            .get(&rule.name)
            .is_some_and(|prev| prev.item.source != rule.source)
        {
            return Err(Failure::invalid(
                "Rule has been re-defined with a different source",
                rule.pos,
            ));
        }
        let unknown_source = rule.source != SYSCALL_SOURCE;
        if unknown_source {
            let message = format!("Unknown source {}, skipping", rule.source);
            sink.warning(
                codes::LOAD_UNKNOWN_SOURCE,
                message,
                rule.pos,
                Some(item_label),
            );
        }
        for ex in &mut rule.exceptions {
            exceptions::validate(ex)?;
        }
        let id = self.next();
        let info = RuleInfo {
            item: rule,
            order: Order {
                index: id,
                visibility: id,
            },
            unknown_source,
        };
        define(&mut self.rules, info, |r| &r.item.name, |r| &mut r.order);
        Ok(())
    }

    fn update_rule(&mut self, update: RuleUpdate) -> Result<(), Failure> {
        if let Some(changes) = update.append {
            self.append_rule(&update.name, changes, update.pos)?;
        }
        if let Some(changes) = update.replace {
            self.replace_rule(&update.name, changes, update.pos)?;
        }
        Ok(())
    }

    fn append_rule(&mut self, name: &str, changes: RuleChanges, pos: Pos) -> Result<(), Failure> {
        let id = self.next();
        let Some(prev) = self.rules.get_mut(name) else {
            let message = "Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists";
            return self.missing(Kind::Rule, name, message, pos);
        };
        if !changes.has_any() {
            return Err(Failure::invalid(
                "Appended rule must have exceptions or condition property",
                pos,
            ));
        }
        let rule = &mut prev.item;
        if let Some(cond) = changes.cond.filter(|c| !c.as_str().is_empty()) {
            rule.cond.append_str(" ", cond.start());
            rule.cond.append(&cond);
        }
        if let Some(output) = changes.output.filter(|o| !o.as_str().is_empty()) {
            rule.output.append_str(" ", output.start());
            rule.output.append(&output);
        }
        if let Some(desc) = changes.desc.filter(|d| !d.is_empty()) {
            rule.desc.push(' ');
            rule.desc.push_str(&desc);
        }
        rule.tags.extend(changes.tags.unwrap_or_default());
        for ex in changes.exceptions.unwrap_or_default() {
            append_exception(&mut rule.exceptions, ex)?;
        }
        prev.order.visibility = id;
        Ok(())
    }

    fn replace_rule(&mut self, name: &str, changes: RuleChanges, pos: Pos) -> Result<(), Failure> {
        let id = self.next();
        let Some(prev) = self.rules.get_mut(name) else {
            let message = "An 'override.<key>: replace' to a rule was requested but no rule by that name already exists";
            return self.missing(Kind::Rule, name, message, pos);
        };
        if !changes.has_any() {
            return Err(Failure::invalid(
                "The rule must have at least one field that can be replaced",
                pos,
            ));
        }
        let rule = &mut prev.item;
        replace(&mut rule.cond, changes.cond);
        replace(&mut rule.output, changes.output);
        replace(&mut rule.desc, changes.desc);
        replace::<BTreeSet<String>>(&mut rule.tags, changes.tags);
        replace::<Priority>(&mut rule.priority, changes.priority);
        replace(&mut rule.enabled, changes.enabled);
        replace(&mut rule.warn_evttypes, changes.warn_evttypes);
        replace(
            &mut rule.skip_if_unknown_filter,
            changes.skip_if_unknown_filter,
        );
        if let Some(mut replaced) = changes.exceptions {
            // Falco skips this check on replace and then mis-compiles; validate instead.
            for ex in &mut replaced {
                exceptions::validate(ex)?;
            }
            rule.exceptions = replaced;
        }
        prev.order.visibility = id;
        Ok(())
    }

    fn enable_rule(&mut self, name: &str, enabled: bool, pos: Pos) -> Result<(), Failure> {
        let Some(prev) = self.rules.get_mut(name) else {
            let message = "Rule has 'enabled' key but no rule by that name already exists";
            return self.missing(Kind::Rule, name, message, pos);
        };
        prev.item.enabled = enabled;
        Ok(())
    }
}

fn replace<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// Defines or redefines: a redefinition takes the original slot and index, with a new
/// visibility.
fn define<T>(
    table: &mut Table<T>,
    mut info: T,
    name: impl Fn(&T) -> &String,
    order: impl Fn(&mut T) -> &mut Order,
) {
    match table.position(name(&info)) {
        Some(slot) => {
            let index = order(&mut table.entries[slot]).index;
            order(&mut info).index = index;
            table.entries[slot] = info;
        }
        None => {
            table
                .by_name
                .insert(name(&info).clone(), table.entries.len());
            table.entries.push(info);
        }
    }
}

/// Appending an exception: a new name adds a complete exception; an existing name only
/// takes more values.
fn append_exception(existing: &mut Vec<Exception>, mut ex: Exception) -> Result<(), Failure> {
    let Some(prev) = existing.iter_mut().find(|e| e.name == ex.name) else {
        if matches!(ex.fields, None | Some(Entry::Invalid(_))) {
            return Err(Failure::invalid(
                "Rule exception must have fields property with a list of fields",
                ex.pos,
            ));
        }
        if ex.values.is_empty() {
            return Err(Failure::invalid(
                "Rule exception must have values property with a list of values",
                ex.pos,
            ));
        }
        exceptions::validate(&mut ex)?;
        existing.push(ex);
        return Ok(());
    };
    if ex.fields.is_some() {
        return Err(Failure::invalid(
            "Can not append exception fields to existing exception, only values",
            ex.pos,
        ));
    }
    if ex.comps.is_some() {
        return Err(Failure::invalid(
            "Can not append exception comps to existing exception, only values",
            ex.pos,
        ));
    }
    prev.values.extend(ex.values);
    Ok(())
}

/// Checks one plugin requirement's versions, then that Vigil provides one alternative.
fn check_plugin(req: &PluginRequirement) -> Result<(), Failure> {
    let mut seen = HashSet::new();
    for (name, version) in &req.alternatives {
        if Version::parse(version).is_none() {
            let message = format!("Invalid required version '{version}' for plugin '{name}'");
            return Err(Failure::invalid(message, req.pos));
        }
        if !seen.insert(name.as_str()) {
            let message =
                format!("Defined multiple alternative version requirements for plugin '{name}'");
            return Err(Failure::invalid(message, req.pos));
        }
    }
    if req
        .alternatives
        .iter()
        .any(|(name, _)| NATIVE_PLUGINS.contains(&name.as_str()))
    {
        return Ok(());
    }
    let wanted: Vec<String> = req
        .alternatives
        .iter()
        .map(|(name, version)| format!("{name} (>= {version})"))
        .collect();
    let message = format!(
        "Plugin requirement not satisfied, must load one of: {}",
        wanted.join(", ")
    );
    Err(Failure::invalid(message, req.pos))
}
