//! Reading a rules file's YAML into validated items: classification, required keys, value
//! types, overrides, and the warnings Falco gives while reading.

use std::collections::BTreeSet;

use super::decode::{
    optional_bool, required_str, required_text, scalar_text, string_seq, warn_unknown_keys,
};
use super::diagnostics::{Failure, Sink, codes, label};
use super::exceptions::Exception;
use super::priority::Priority;
use super::rule_item;
use super::source::SourceFile;
use super::text::MappedText;
use super::version::Version;
use super::yaml::Node;
use crate::rules::condition::ast::Pos;

/// Deprecation warning for `append: true`.
pub(crate) const WARNING_APPEND: &str = "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.";

/// `append: true` together with `override`.
pub(crate) const ERROR_OVERRIDE_APPEND: &str = "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.";

/// What kind of named item something is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// `list`.
    List,
    /// `macro`.
    Macro,
    /// `rule`.
    Rule,
}

impl Kind {
    /// The item key, also used in diagnostics.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::List => "list",
            Kind::Macro => "macro",
            Kind::Rule => "rule",
        }
    }
}

/// A `list` item.
#[derive(Clone, Debug)]
pub(crate) struct ListItem {
    /// The list name.
    pub(crate) name: String,
    /// Its items as written (list references are expanded later).
    pub(crate) items: Vec<String>,
    /// Append to the existing list instead of (re)defining it.
    pub(crate) append: bool,
    /// Where the item starts.
    pub(crate) pos: Pos,
}

/// A `macro` item.
#[derive(Clone, Debug)]
pub(crate) struct MacroItem {
    /// The macro name.
    pub(crate) name: String,
    /// Its condition text, mapped to the file.
    pub(crate) cond: MappedText,
    /// Append to the existing macro's condition instead of (re)defining it.
    pub(crate) append: bool,
    /// Where the item starts.
    pub(crate) pos: Pos,
}

/// A full `rule` definition.
#[derive(Clone, Debug)]
pub(crate) struct RuleItem {
    /// The rule name.
    pub(crate) name: String,
    /// The condition text, mapped to the file.
    pub(crate) cond: MappedText,
    /// The output format, trimmed.
    pub(crate) output: MappedText,
    /// The description.
    pub(crate) desc: String,
    /// The priority.
    pub(crate) priority: Priority,
    /// The event source (`syscall` unless given).
    pub(crate) source: String,
    /// `enabled` (default true).
    pub(crate) enabled: bool,
    /// `warn_evttypes` (default true).
    pub(crate) warn_evttypes: bool,
    /// `skip-if-unknown-filter` (default false).
    pub(crate) skip_if_unknown_filter: bool,
    /// Tags (a set, as in Falco).
    pub(crate) tags: BTreeSet<String>,
    /// Exceptions, compiled into the condition later.
    pub(crate) exceptions: Vec<Exception>,
    /// Where the item starts.
    pub(crate) pos: Pos,
}

/// The keys an append or replace of a rule carries (absent = untouched); the fields mean
/// what the same fields of [`RuleItem`] mean.
#[derive(Clone, Debug, Default)]
pub(crate) struct RuleChanges {
    pub(crate) cond: Option<MappedText>,
    pub(crate) output: Option<MappedText>,
    pub(crate) desc: Option<String>,
    pub(crate) tags: Option<BTreeSet<String>>,
    pub(crate) exceptions: Option<Vec<Exception>>,
    pub(crate) priority: Option<Priority>,
    pub(crate) enabled: Option<bool>,
    pub(crate) warn_evttypes: Option<bool>,
    pub(crate) skip_if_unknown_filter: Option<bool>,
    /// Validated but not used by Vigil (no capture support).
    pub(crate) capture: Option<bool>,
    /// Validated but not used by Vigil (no capture support).
    pub(crate) capture_duration: Option<u64>,
}

impl RuleChanges {
    /// Whether anything at all is changed.
    pub(crate) fn has_any(&self) -> bool {
        self.cond.is_some()
            || self.output.is_some()
            || self.desc.is_some()
            || self.tags.is_some()
            || self.exceptions.is_some()
            || self.priority.is_some()
            || self.enabled.is_some()
            || self.warn_evttypes.is_some()
            || self.skip_if_unknown_filter.is_some()
            || self.capture.is_some()
            || self.capture_duration.is_some()
    }
}

/// A rule item that modifies an existing rule (`override`, or deprecated `append: true`).
#[derive(Clone, Debug)]
pub(crate) struct RuleUpdate {
    pub(crate) name: String,
    pub(crate) append: Option<RuleChanges>,
    pub(crate) replace: Option<RuleChanges>,
    pub(crate) pos: Pos,
}

/// One `required_plugin_versions` entry: any one alternative satisfies it.
#[derive(Clone, Debug)]
pub(crate) struct PluginRequirement {
    /// `(name, version)` pairs.
    pub(crate) alternatives: Vec<(String, String)>,
    pub(crate) pos: Pos,
}

/// A validated item.
#[derive(Clone, Debug)]
pub(crate) enum Item {
    /// `required_engine_version`.
    EngineVersion { version: Version, pos: Pos },
    /// One entry of `required_plugin_versions`.
    Plugin(PluginRequirement),
    /// `list`.
    List(ListItem),
    /// `macro`.
    Macro(MacroItem),
    /// A rule definition.
    Rule(Box<RuleItem>),
    /// An append/replace of a rule.
    RuleUpdate(Box<RuleUpdate>),
    /// The deprecated standalone `enabled` toggle.
    RuleEnable {
        name: String,
        enabled: bool,
        pos: Pos,
    },
    /// A named item that failed validation, remembered so that references to it are not
    /// reported a second time.
    Rejected { kind: Kind, name: String },
}

/// Reads every item of one YAML document, handing each to `on_item` as soon as it is read
/// (so diagnostics come out in file order). Problems are reported to `sink`; a rejected
/// item is skipped and reading goes on with the next one.
pub(crate) fn read_document(
    file: &SourceFile,
    doc: &Node,
    sink: &mut Sink<'_>,
    on_item: &mut dyn FnMut(Item, &mut Sink<'_>),
) {
    let Some(items) = doc.seq() else {
        let message = if doc.map().is_some() {
            "Rules content is not yaml array of objects"
        } else {
            "Rules content is not yaml"
        };
        sink.failure(Failure::shape(message, doc.pos), None);
        return;
    };
    for node in items.iter().filter(|n| !n.is_null()) {
        for item in read_item(file, node, sink) {
            on_item(item, sink);
        }
    }
}

fn read_item(file: &SourceFile, node: &Node, sink: &mut Sink<'_>) -> Vec<Item> {
    if node.map().is_none() {
        let message = "Unexpected element type. Each element should be a yaml associative array.";
        sink.failure(Failure::shape(message, node.pos), None);
        return Vec::new();
    }
    // Falco classifies by which key is present, in this order, not by the first key written.
    let kinds = [
        "required_engine_version",
        "required_plugin_versions",
        "list",
        "macro",
        "rule",
    ];
    let Some(kind) = kinds.into_iter().find(|k| node.get(k).is_some()) else {
        sink.warning(
            codes::LOAD_UNKNOWN_ITEM,
            "Unknown top level item",
            node.pos,
            None,
        );
        return Vec::new();
    };
    let result = match kind {
        "required_engine_version" => read_engine_version(node, sink).map(|i| vec![i]),
        "required_plugin_versions" => read_plugins(node, sink),
        _ => read_named(file, node, kind, sink),
    };
    result.unwrap_or_else(|(failure, label, rejected)| {
        sink.failure(failure, Some(&label));
        rejected
            .map(|(kind, name)| Item::Rejected { kind, name })
            .into_iter()
            .collect()
    })
}

/// A failed item: the failure, the item's label, and the named item to remember as
/// rejected (if it had a name).
type Rejection = (Failure, String, Option<(Kind, String)>);

fn read_engine_version(node: &Node, sink: &mut Sink<'_>) -> Result<Item, Rejection> {
    let key = "required_engine_version";
    warn_unknown_keys(node, &[key], sink, key);
    let text = required_str(node, key).map_err(|f| (f, key.to_string(), None))?;
    let version = engine_version(&text).ok_or_else(|| {
        let message =
            format!("Unable to parse engine version '{text}' as a semver string. Expected \"x.y.z\" semver format.");
        (Failure::shape(message, node.pos), key.to_string(), None)
    })?;
    Ok(Item::EngineVersion {
        version,
        pos: node.pos,
    })
}

/// An integer `N` means `0.N.0` (the engine's old integer versions); otherwise semver.
fn engine_version(text: &str) -> Option<Version> {
    match text.parse::<u32>() {
        Ok(minor) => Some(Version {
            major: 0,
            minor: u64::from(minor),
            patch: 0,
        }),
        Err(_) => Version::parse(text),
    }
}

fn read_plugins(node: &Node, sink: &mut Sink<'_>) -> Result<Vec<Item>, Rejection> {
    let key = "required_plugin_versions";
    let fail = |f: Failure| (f, key.to_string(), None);
    warn_unknown_keys(node, &[key], sink, key);
    let value = node.get(key).unwrap_or(node);
    let entries = value.seq().ok_or_else(|| {
        fail(Failure::shape(
            "Value of required_plugin_versions must be a sequence",
            value.pos,
        ))
    })?;
    let mut out = Vec::new();
    for entry in entries {
        out.push(Item::Plugin(read_plugin(entry, sink).map_err(fail)?));
    }
    Ok(out)
}

fn read_plugin(entry: &Node, sink: &mut Sink<'_>) -> Result<PluginRequirement, Failure> {
    let label = "required_plugin_versions";
    if entry.map().is_none() {
        return Err(Failure::shape(
            "Plugin version must be a mapping",
            entry.pos,
        ));
    }
    warn_unknown_keys(entry, &["name", "version", "alternatives"], sink, label);
    let mut alternatives = vec![(
        required_str(entry, "name")?,
        required_str(entry, "version")?,
    )];
    if let Some(alts) = entry.get("alternatives") {
        let alts = alts.seq().ok_or_else(|| {
            Failure::shape(
                "Value of plugin version alternatives must be a sequence",
                entry.pos,
            )
        })?;
        for alt in alts {
            if alt.map().is_none() {
                return Err(Failure::shape(
                    "Plugin version alternative must be a mapping",
                    alt.pos,
                ));
            }
            warn_unknown_keys(alt, &["name", "version"], sink, label);
            alternatives.push((required_str(alt, "name")?, required_str(alt, "version")?));
        }
    }
    Ok(PluginRequirement {
        alternatives,
        pos: entry.pos,
    })
}

fn read_named(
    file: &SourceFile,
    node: &Node,
    key: &str,
    sink: &mut Sink<'_>,
) -> Result<Vec<Item>, Rejection> {
    let kind = match key {
        "list" => Kind::List,
        "macro" => Kind::Macro,
        _ => Kind::Rule,
    };
    let name = required_str(node, key).map_err(|f| (f, kind.as_str().to_string(), None))?;
    let label = label(kind.as_str(), &name);
    let result = match kind {
        Kind::List => read_list(node, &name, &label, sink).map(|i| vec![i]),
        Kind::Macro => read_macro(file, node, &name, &label, sink).map(|i| vec![i]),
        Kind::Rule => rule_item::read(file, node, &name, &label, sink),
    };
    result.map_err(|f| (f, label, Some((kind, name))))
}

fn read_list(node: &Node, name: &str, label: &str, sink: &mut Sink<'_>) -> Result<Item, Failure> {
    warn_unknown_keys(node, &["list", "items", "append", "override"], sink, label);
    if !is_bare_string(name) {
        let message = "List has an invalid name. List names should match a regular expression: ([^()\"'[:space:]=,]+)";
        sink.warning(
            codes::LOAD_INVALID_LIST_NAME,
            message,
            node.pos,
            Some(label),
        );
    }
    let items = string_seq(node, "items", false)?.unwrap_or_default();
    let append = read_append_flag(node, &["items"], sink, label)?;
    Ok(Item::List(ListItem {
        name: name.to_string(),
        items,
        append,
        pos: node.pos,
    }))
}

fn read_macro(
    file: &SourceFile,
    node: &Node,
    name: &str,
    label: &str,
    sink: &mut Sink<'_>,
) -> Result<Item, Failure> {
    warn_unknown_keys(
        node,
        &["macro", "condition", "append", "override"],
        sink,
        label,
    );
    if !is_identifier(name) {
        let message = "Macro has an invalid name. Macro names should match a regular expression: ([a-zA-Z]+[a-zA-Z0-9_]*)";
        sink.warning(
            codes::LOAD_INVALID_MACRO_NAME,
            message,
            node.pos,
            Some(label),
        );
    }
    let cond = required_text(file, node, "condition")?;
    let append = read_append_flag(node, &["condition"], sink, label)?;
    Ok(Item::Macro(MacroItem {
        name: name.to_string(),
        cond,
        append,
        pos: node.pos,
    }))
}

/// For lists and macros, which have a single overridable key: whether the item appends
/// (deprecated `append: true`, or `override: {key: append}`) rather than redefines.
fn read_append_flag(
    node: &Node,
    keys: &[&str],
    sink: &mut Sink<'_>,
    label: &str,
) -> Result<bool, Failure> {
    let append = read_deprecated_append(node, sink, label)?;
    let overrides = read_overrides(node, keys, keys)?;
    if append && !overrides.is_empty() {
        return Err(Failure::shape(ERROR_OVERRIDE_APPEND, node.pos));
    }
    Ok(append || !overrides.append.is_empty())
}

/// The deprecated `append: true` flag, with its warning.
pub(crate) fn read_deprecated_append(
    node: &Node,
    sink: &mut Sink<'_>,
    label: &str,
) -> Result<bool, Failure> {
    let append = optional_bool(node, "append")?.unwrap_or(false);
    if append {
        sink.warning(
            codes::LOAD_DEPRECATED_ITEM,
            WARNING_APPEND,
            node.pos,
            Some(label),
        );
    }
    Ok(append)
}

/// The keys listed under `override`, split by operation (in file order).
#[derive(Debug, Default)]
pub(crate) struct Overrides {
    pub(crate) append: Vec<String>,
    pub(crate) replace: Vec<String>,
}

impl Overrides {
    /// Whether `override` listed nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.append.is_empty() && self.replace.is_empty()
    }
}

/// Reads `override`, checking each key may be appended or replaced.
pub(crate) fn read_overrides(
    node: &Node,
    appendable: &[&str],
    replaceable: &[&str],
) -> Result<Overrides, Failure> {
    let mut out = Overrides::default();
    let Some(value) = node.get("override") else {
        return Ok(out);
    };
    let entries = value
        .map()
        .ok_or_else(|| Failure::shape("Value of override must be a mapping", value.pos))?;
    for (key_node, op_node) in entries {
        let key = scalar_text(key_node)?.to_string();
        let op = scalar_text(op_node)?;
        let can_append = appendable.contains(&key.as_str());
        let can_replace = replaceable.contains(&key.as_str());
        match op {
            "append" if can_append => out.append.push(key),
            "append" => {
                let message = format!("Key '{key}' cannot be appended to, use 'replace' instead");
                return Err(Failure::shape(message, key_node.pos));
            }
            "replace" if can_replace => out.replace.push(key),
            "replace" => {
                return Err(Failure::shape(
                    format!("Key '{key}' cannot be replaced"),
                    key_node.pos,
                ));
            }
            _ => {
                let allowed: Vec<&str> = [(can_append, "append"), (can_replace, "replace")]
                    .into_iter()
                    .filter_map(|(ok, name)| ok.then_some(name))
                    .collect();
                let message = format!(
                    "Invalid override operation for key '{key}': '{op}'. Allowed values are: {}",
                    allowed.join(" ")
                );
                return Err(Failure::shape(message, op_node.pos));
            }
        }
    }
    Ok(out)
}

/// `[a-zA-Z]+[a-zA-Z0-9_]*`, the grammar's identifier (what a macro reference looks like).
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `[^()"'[:space:]=,]+`, the grammar's bare string (what survives list substitution).
fn is_bare_string(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || "()\"'=,".contains(c))
}
