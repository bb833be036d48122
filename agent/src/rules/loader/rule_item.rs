//! Reading `rule` items: definitions, overrides (append/replace per key), the deprecated
//! `append: true` form and the deprecated standalone `enabled` toggle.

use std::collections::BTreeSet;

use super::decode::{
    optional_bool, optional_str, optional_u64, required, required_bool, required_str,
    required_text, scalar_text, string_seq, warn_unknown_keys,
};
use super::diagnostics::{Failure, Sink, codes};
use super::exceptions;
use super::items::{
    ERROR_OVERRIDE_APPEND, Item, Overrides, RuleChanges, RuleItem, RuleUpdate,
    read_deprecated_append, read_overrides,
};
use super::priority::Priority;
use super::source::SourceFile;
use super::yaml::Node;

/// Keys whose value may be appended to.
const APPENDABLE: [&str; 5] = ["condition", "exceptions", "output", "desc", "tags"];

/// Keys whose value may be replaced.
const REPLACEABLE: [&str; 11] = [
    "condition",
    "exceptions",
    "output",
    "desc",
    "tags",
    "priority",
    "enabled",
    "warn_evttypes",
    "skip-if-unknown-filter",
    "capture",
    "capture_duration",
];

/// Every key a rule item may have.
const KEYS: [&str; 15] = [
    "rule",
    "condition",
    "output",
    "desc",
    "priority",
    "source",
    "enabled",
    "tags",
    "exceptions",
    "capture",
    "capture_duration",
    "warn_evttypes",
    "skip-if-unknown-filter",
    "append",
    "override",
];

/// Deprecation warning for the standalone `enabled` toggle.
const WARNING_ENABLED: &str = "The standalone 'enabled' key usage is deprecated. The correct approach requires also a 'replace' entry under the 'override' key (i.e. 'enabled: replace').";

/// The syscall source, the default.
pub(crate) const SYSCALL_SOURCE: &str = "syscall";

/// Reads a rule item (its name already decoded).
pub(crate) fn read(
    file: &SourceFile,
    node: &Node,
    name: &str,
    label: &str,
    sink: &mut Sink<'_>,
) -> Result<Vec<Item>, Failure> {
    warn_unknown_keys(node, &KEYS, sink, label);
    let append = read_deprecated_append(node, sink, label)?;
    let overrides = read_overrides(node, &APPENDABLE, &REPLACEABLE)?;
    if append && !overrides.is_empty() {
        return Err(Failure::shape(ERROR_OVERRIDE_APPEND, node.pos));
    }
    let item = if !overrides.is_empty() {
        read_override(file, node, name, &overrides, sink, label)?
    } else if append {
        read_legacy_append(file, node, name, sink, label)?
    } else if ["condition", "output", "desc", "priority"]
        .iter()
        .all(|k| node.get(k).is_none())
    {
        let enabled = required_bool(node, "enabled")?;
        sink.warning(
            codes::LOAD_DEPRECATED_ITEM,
            WARNING_ENABLED,
            node.pos,
            Some(label),
        );
        Item::RuleEnable {
            name: name.to_string(),
            enabled,
            pos: node.pos,
        }
    } else {
        Item::Rule(Box::new(read_definition(file, node, name, sink, label)?))
    };
    Ok(vec![item])
}

fn read_definition(
    file: &SourceFile,
    node: &Node,
    name: &str,
    sink: &mut Sink<'_>,
    label: &str,
) -> Result<RuleItem, Failure> {
    let cond = required_text(file, node, "condition")?;
    let output = required_text(file, node, "output")?.trimmed();
    let desc = required_str(node, "desc")?;
    let priority = read_priority(node)?;
    Ok(RuleItem {
        name: name.to_string(),
        cond,
        output,
        desc,
        priority,
        source: optional_str(node, "source")?.unwrap_or_else(|| SYSCALL_SOURCE.to_string()),
        enabled: optional_bool(node, "enabled")?.unwrap_or(true),
        warn_evttypes: optional_bool(node, "warn_evttypes")?.unwrap_or(true),
        skip_if_unknown_filter: optional_bool(node, "skip-if-unknown-filter")?.unwrap_or(false),
        tags: read_tags(node)?.unwrap_or_default(),
        exceptions: exceptions::read(file, node, false, sink, label)?,
        pos: node.pos,
    })
    .and_then(|rule| {
        // Capture settings are validated for Falco compatibility; Vigil has no captures.
        optional_bool(node, "capture")?;
        optional_u64(node, "capture_duration")?;
        Ok(rule)
    })
}

fn read_priority(node: &Node) -> Result<Priority, Failure> {
    let value = required(node, "priority")?;
    scalar_text(value)?
        .parse()
        .map_err(|_| Failure::shape("Invalid priority", value.pos))
}

fn read_tags(node: &Node) -> Result<Option<BTreeSet<String>>, Failure> {
    Ok(string_seq(node, "tags", true)?.map(|tags| tags.into_iter().collect()))
}

/// `append: true`: only `condition` and `exceptions` are appended; other keys are ignored.
fn read_legacy_append(
    file: &SourceFile,
    node: &Node,
    name: &str,
    sink: &mut Sink<'_>,
    label: &str,
) -> Result<Item, Failure> {
    let mut changes = RuleChanges::default();
    if node.get("condition").is_some() {
        changes.cond = Some(required_text(file, node, "condition")?);
    }
    if node.get("exceptions").is_some() {
        changes.exceptions = Some(exceptions::read(file, node, true, sink, label)?);
    }
    Ok(Item::RuleUpdate(Box::new(RuleUpdate {
        name: name.to_string(),
        append: Some(changes),
        replace: None,
        pos: node.pos,
    })))
}

/// `override:`: every listed key must be present, and every overridable key present must be
/// listed.
fn read_override(
    file: &SourceFile,
    node: &Node,
    name: &str,
    overrides: &Overrides,
    sink: &mut Sink<'_>,
    label: &str,
) -> Result<Item, Failure> {
    let mut expected: BTreeSet<&'static str> = APPENDABLE
        .iter()
        .chain(&REPLACEABLE)
        .copied()
        .filter(|k| node.get(k).is_some())
        .collect();
    let mut read_side = |listed: &[String],
                         what: &str,
                         keys: &[&'static str]|
     -> Result<Option<RuleChanges>, Failure> {
        if listed.is_empty() {
            return Ok(None);
        }
        let mut changes = RuleChanges::default();
        for key in keys.iter().filter(|k| listed.iter().any(|l| l == *k)) {
            if !expected.remove(key) {
                let message = format!(
                    "An {what} override for '{key}' was specified but '{key}' is not defined"
                );
                return Err(Failure::shape(message, node.pos));
            }
            read_change(file, node, key, &mut changes, sink, label)?;
        }
        Ok(Some(changes))
    };
    let append = read_side(&overrides.append, "append", &APPENDABLE)?;
    let replace = read_side(&overrides.replace, "replace", &REPLACEABLE)?;
    if let Some(key) = expected.first() {
        let pos = node.get(key).map_or(node.pos, |v| v.pos);
        let message =
            format!("Unexpected key '{key}': no corresponding entry under 'override' is defined.");
        return Err(Failure::shape(message, pos));
    }
    Ok(Item::RuleUpdate(Box::new(RuleUpdate {
        name: name.to_string(),
        append,
        replace,
        pos: node.pos,
    })))
}

fn read_change(
    file: &SourceFile,
    node: &Node,
    key: &str,
    changes: &mut RuleChanges,
    sink: &mut Sink<'_>,
    label: &str,
) -> Result<(), Failure> {
    match key {
        "condition" => changes.cond = Some(required_text(file, node, key)?),
        "output" => changes.output = Some(required_text(file, node, key)?),
        "desc" => changes.desc = Some(required_str(node, key)?),
        "tags" => changes.tags = read_tags(node)?,
        "exceptions" => changes.exceptions = Some(exceptions::read(file, node, true, sink, label)?),
        "priority" => changes.priority = Some(read_priority(node)?),
        "enabled" => changes.enabled = Some(required_bool(node, key)?),
        "warn_evttypes" => changes.warn_evttypes = Some(required_bool(node, key)?),
        "skip-if-unknown-filter" => {
            changes.skip_if_unknown_filter = Some(required_bool(node, key)?)
        }
        "capture" => changes.capture = Some(required_bool(node, key)?),
        _ => changes.capture_duration = optional_u64(node, key)?,
    }
    Ok(())
}
