//! Rule exceptions: reading them from YAML, validating their shape, and compiling them the
//! way Falco does, by rewriting the condition text to
//! `(cond) and not ((f1 c1 v1 and f2 c2 v2) or (...))`.

use super::decode::{required_str, scalar_text, warn_unknown_keys};
use super::diagnostics::{Failure, Sink, codes};
use super::source::SourceFile;
use super::substitute::needs_quotes;
use super::text::MappedText;
use super::yaml::Node;
use crate::rules::condition::ast::Pos;

/// Comparison operators accepted in `comps` (the libsinsp grammar's operators).
const OPERATORS: [&str; 20] = [
    "exists",
    "<=",
    "<",
    ">=",
    ">",
    "==",
    "=",
    "!=",
    "glob",
    "iglob",
    "contains",
    "icontains",
    "bcontains",
    "startswith",
    "bstartswith",
    "endswith",
    "regex",
    "intersects",
    "in",
    "pmatch",
];

/// Operators that take a parenthesised list.
const LIST_OPERATORS: [&str; 3] = ["in", "intersects", "pmatch"];

/// String operators that accept `oneof`/`anyof`/`allof` (then taking a list).
const MODIFIABLE: [&str; 12] = [
    "=",
    "==",
    "!=",
    "contains",
    "icontains",
    "bcontains",
    "startswith",
    "bstartswith",
    "endswith",
    "glob",
    "iglob",
    "regex",
];

/// Keys of an exception mapping.
const KEYS: [&str; 4] = ["name", "fields", "comps", "values"];

/// A `fields`/`comps`/`values` entry: a string, a (nested) list, or something unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A non-empty scalar.
    Item(MappedText),
    /// A sequence.
    List(Vec<Entry>, Pos),
    /// A mapping or null where a string or list was expected.
    Invalid(Pos),
}

impl Entry {
    fn text(&self) -> Option<&str> {
        match self {
            Entry::Item(text) => Some(text.as_str()),
            _ => None,
        }
    }
}

/// One exception of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Exception {
    /// Its name (unique within the rule, or a warning).
    pub(crate) name: String,
    /// A field, or a list of fields; optional only when appending values.
    pub(crate) fields: Option<Entry>,
    /// Operators matching `fields`; defaulted by [`validate`].
    pub(crate) comps: Option<Entry>,
    /// Values (tuples when `fields` is a list).
    pub(crate) values: Vec<Entry>,
    /// Where the exception mapping starts.
    pub(crate) pos: Pos,
}

/// Reads a rule's `exceptions` (absent or null means none). `append` relaxes `fields` and
/// warns about missing values, as for appends/overrides in Falco.
pub(crate) fn read(
    file: &SourceFile,
    item: &Node,
    append: bool,
    sink: &mut Sink<'_>,
    label: &str,
) -> Result<Vec<Exception>, Failure> {
    let Some(list) = item.get("exceptions").filter(|n| !n.is_null()) else {
        return Ok(Vec::new());
    };
    let entries = list
        .seq()
        .ok_or_else(|| Failure::shape("Rule exceptions must be a sequence", list.pos))?;
    let mut out: Vec<Exception> = Vec::new();
    for node in entries {
        let exception = read_one(file, node, append, sink, label)?;
        if out.iter().any(|e| e.name == exception.name) {
            sink.warning(
                codes::LOAD_EXCEPTION_NAME_NOT_UNIQUE,
                format!(
                    "Multiple definitions of exception '{}' in the same rule",
                    exception.name
                ),
                exception.pos,
                Some(label),
            );
        }
        out.push(exception);
    }
    Ok(out)
}

fn read_one(
    file: &SourceFile,
    node: &Node,
    append: bool,
    sink: &mut Sink<'_>,
    label: &str,
) -> Result<Exception, Failure> {
    if node.map().is_none() {
        return Err(Failure::shape("Rule exception must be a mapping", node.pos));
    }
    let name = required_str(node, "name")?;
    warn_unknown_keys(node, &KEYS, sink, label);
    let fields = read_entry(file, node, "fields", !append)?;
    let comps = read_entry(file, node, "comps", false)?;
    let values = match node.get("values") {
        Some(values) => values
            .seq()
            .ok_or_else(|| Failure::shape("Rule exception values must be a sequence", values.pos))?
            .iter()
            .map(|v| decode_entry(file, v))
            .collect::<Result<Vec<_>, _>>()?,
        None => {
            if append {
                sink.warning(
                    codes::LOAD_APPEND_NO_VALUES,
                    "Overriding/appending exception with no values",
                    node.pos,
                    Some(label),
                );
            }
            Vec::new()
        }
    };
    Ok(Exception {
        name,
        fields,
        comps,
        values,
        pos: node.pos,
    })
}

fn read_entry(
    file: &SourceFile,
    node: &Node,
    key: &str,
    required: bool,
) -> Result<Option<Entry>, Failure> {
    match node.get(key) {
        Some(value) => decode_entry(file, value).map(Some),
        None if required => Err(Failure::shape(
            format!("Item has no mapping for key '{key}'"),
            node.pos,
        )),
        None => Ok(None),
    }
}

fn decode_entry(file: &SourceFile, value: &Node) -> Result<Entry, Failure> {
    if value.scalar().is_some() {
        scalar_text(value)?;
        return Ok(Entry::Item(MappedText::from_scalar(file, value)));
    }
    match value.seq() {
        Some(items) => Ok(Entry::List(
            items
                .iter()
                .map(|v| decode_entry(file, v))
                .collect::<Result<_, _>>()?,
            value.pos,
        )),
        None => Ok(Entry::Invalid(value.pos)),
    }
}

/// Checks `fields`/`comps` agree and fills in default comps (`=` per field for a list,
/// `in` for a single field).
pub(crate) fn validate(ex: &mut Exception) -> Result<(), Failure> {
    match &ex.fields {
        Some(Entry::List(fields, _)) => {
            let count = fields.len();
            if let Some(bad) = fields.iter().find(|f| f.text().is_none()) {
                let pos = entry_pos(bad);
                return Err(Failure::invalid("'' is not a supported filter field", pos));
            }
            validate_comps_list(ex, count)
        }
        Some(Entry::Item(_)) => validate_comps_single(ex),
        _ => Err(Failure::invalid(
            "Rule exception item must have fields property with a list of fields",
            ex.pos,
        )),
    }
}

fn validate_comps_list(ex: &mut Exception, count: usize) -> Result<(), Failure> {
    if matches!(ex.comps, None | Some(Entry::Invalid(_))) {
        let eq = vec![Entry::Item(MappedText::synthetic("=", ex.pos)); count];
        ex.comps = Some(Entry::List(eq, ex.pos));
    }
    let comps = match &ex.comps {
        Some(Entry::List(comps, _)) if comps.len() == count => comps,
        _ => {
            return Err(Failure::invalid(
                "Fields and comps lists must have equal length",
                ex.pos,
            ));
        }
    };
    for comp in comps {
        let op = comp.text().unwrap_or_default();
        if !is_operator(op) {
            return Err(Failure::invalid(
                format!("'{op}' is not a supported comparison operator"),
                ex.pos,
            ));
        }
    }
    Ok(())
}

fn validate_comps_single(ex: &mut Exception) -> Result<(), Failure> {
    if matches!(ex.comps, None | Some(Entry::Invalid(_))) {
        ex.comps = Some(Entry::Item(MappedText::synthetic("in", ex.pos)));
    }
    let op = match &ex.comps {
        Some(Entry::Item(op)) => op.as_str(),
        _ => {
            return Err(Failure::invalid(
                "Fields and comps must both be strings",
                ex.pos,
            ));
        }
    };
    if !LIST_OPERATORS.contains(&op) && !is_modified_operator(op) {
        return Err(Failure::invalid(
            "When fields is a single value, comps must be one of (in, pmatch, intersects)",
            ex.pos,
        ));
    }
    Ok(())
}

fn entry_pos(entry: &Entry) -> Pos {
    match entry {
        Entry::Item(text) => text.start(),
        Entry::List(_, pos) | Entry::Invalid(pos) => *pos,
    }
}

fn is_operator(op: &str) -> bool {
    OPERATORS.contains(&op) || is_modified_operator(op)
}

/// `startswith oneof` and the like: a string operator with a list modifier.
fn is_modified_operator(op: &str) -> bool {
    let mut words = op.split_whitespace();
    matches!(
        (words.next(), words.next(), words.next()),
        (Some(base), Some("oneof" | "anyof" | "allof"), None) if MODIFIABLE.contains(&base)
    )
}

fn takes_list(op: &str) -> bool {
    LIST_OPERATORS.contains(&op) || is_modified_operator(op)
}

/// Items containing a space are quoted unless already quoted, as Falco does for list items
/// and exception values (so values with quotes or escapes inside are not escaped).
fn quote_item(text: &MappedText) -> MappedText {
    if needs_quotes(text.as_str()) {
        text.wrapped("\"", "\"", text.start())
    } else {
        text.clone()
    }
}

/// Rewrites `cond` to exclude every exception.
pub(crate) fn apply(
    cond: &MappedText,
    exceptions: &[Exception],
    at: Pos,
) -> Result<MappedText, Failure> {
    let mut out = cond.wrapped("(", ")", at);
    for ex in exceptions {
        let clause = match (&ex.fields, &ex.comps) {
            (Some(Entry::Item(field)), Some(Entry::Item(comp))) => {
                single_field_clause(ex, field, comp)?
            }
            (Some(Entry::List(fields, _)), Some(Entry::List(comps, _))) => {
                tuple_clause(ex, fields, comps)?
            }
            // Unvalidated shapes never reach here; an exception without fields adds nothing.
            _ => None,
        };
        if let Some(clause) = clause {
            out.append_str(" and not ", ex.pos);
            out.append(&clause);
        }
    }
    Ok(out)
}

/// `(field comp (v1, v2, ...))`, or nothing without values.
fn single_field_clause(
    ex: &Exception,
    field: &MappedText,
    comp: &MappedText,
) -> Result<Option<MappedText>, Failure> {
    let mut clause: Option<MappedText> = None;
    for value in &ex.values {
        let Entry::Item(value) = value else {
            return Err(Failure::invalid(
                "Expected values array to contain a list of strings",
                ex.pos,
            ));
        };
        match clause.as_mut() {
            None => {
                let mut head = field.wrapped("(", " ", ex.pos);
                head.append(comp);
                head.append_str(" (", ex.pos);
                clause = Some(head);
            }
            Some(c) => c.append_str(", ", ex.pos),
        }
        if let Some(c) = clause.as_mut() {
            c.append(&quote_item(value));
        }
    }
    if let Some(c) = clause.as_mut() {
        c.append_str("))", ex.pos);
    }
    Ok(clause)
}

/// `(( f1 c1 v1 and  f2 c2 v2) or ( ...))`, or nothing without values.
fn tuple_clause(
    ex: &Exception,
    fields: &[Entry],
    comps: &[Entry],
) -> Result<Option<MappedText>, Failure> {
    let mut clause = MappedText::synthetic("(", ex.pos);
    for (i, tuple) in ex.values.iter().enumerate() {
        let values = match tuple {
            Entry::List(values, _) if values.len() == fields.len() => values,
            _ => {
                return Err(Failure::invalid(
                    "Fields and values lists must have equal length",
                    ex.pos,
                ));
            }
        };
        clause.append_str(if i == 0 { "(" } else { " or (" }, ex.pos);
        for (k, ((field, comp), value)) in fields.iter().zip(comps).zip(values).enumerate() {
            let comp = entry_text(comp);
            // Falco emits " and " and then " field", hence the double blank.
            clause.append_str(if k == 0 { " " } else { " and  " }, ex.pos);
            clause.append(&entry_text(field));
            clause.append_str(" ", ex.pos);
            clause.append(&comp);
            clause.append_str(" ", ex.pos);
            clause.append(&tuple_value(value, comp.as_str()));
        }
        clause.append_str(")", ex.pos);
    }
    clause.append_str(")", ex.pos);
    Ok((clause.as_str() != "()").then_some(clause))
}

fn entry_text(entry: &Entry) -> MappedText {
    match entry {
        Entry::Item(text) => text.clone(),
        Entry::List(_, pos) | Entry::Invalid(pos) => MappedText::synthetic("", *pos),
    }
}

/// One tuple element: a list becomes `(a, "b c")`; a string is parenthesised for list
/// operators and quoted otherwise.
fn tuple_value(value: &Entry, comp: &str) -> MappedText {
    match value {
        Entry::List(items, pos) => {
            let mut out = MappedText::synthetic("(", *pos);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.append_str(", ", *pos);
                }
                out.append(&quote_item(&entry_text(item)));
            }
            out.append_str(")", *pos);
            out
        }
        Entry::Item(text) if takes_list(comp) => {
            if text.as_str().starts_with('(') {
                text.clone()
            } else {
                text.wrapped("(", ")", text.start())
            }
        }
        Entry::Item(text) => quote_item(text),
        Entry::Invalid(pos) => MappedText::synthetic("", *pos),
    }
}
