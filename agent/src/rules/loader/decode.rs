//! Typed access to item keys, with Falco's messages for each way a value can be wrong.

use super::diagnostics::{Failure, Sink, codes};
use super::source::SourceFile;
use super::text::MappedText;
use super::yaml::Node;

/// The value under a required key: absent or null is an error at the item.
pub(crate) fn required<'n>(item: &'n Node, key: &str) -> Result<&'n Node, Failure> {
    let value = item
        .get(key)
        .ok_or_else(|| Failure::shape(format!("Item has no mapping for key '{key}'"), item.pos))?;
    if value.is_null() {
        return Err(Failure::shape(
            format!("Mapping for key '{key}' is empty"),
            item.pos,
        ));
    }
    Ok(value)
}

/// The value under an optional key; present-but-null is still an error, as in Falco.
pub(crate) fn optional<'n>(item: &'n Node, key: &str) -> Result<Option<&'n Node>, Failure> {
    match item.get(key) {
        None => Ok(None),
        Some(_) => required(item, key).map(Some),
    }
}

/// A non-empty scalar's text.
pub(crate) fn scalar_text(value: &Node) -> Result<&str, Failure> {
    let text = value
        .text()
        .ok_or_else(|| Failure::shape("Value is not a scalar value", value.pos))?;
    if text.is_empty() {
        return Err(Failure::shape("Value must be non-empty", value.pos));
    }
    Ok(text)
}

/// A required non-empty string.
pub(crate) fn required_str(item: &Node, key: &str) -> Result<String, Failure> {
    scalar_text(required(item, key)?).map(str::to_string)
}

/// An optional non-empty string.
pub(crate) fn optional_str(item: &Node, key: &str) -> Result<Option<String>, Failure> {
    optional(item, key)?
        .map(|v| scalar_text(v).map(str::to_string))
        .transpose()
}

/// A required non-empty string with its characters mapped to the file.
pub(crate) fn required_text(
    file: &SourceFile,
    item: &Node,
    key: &str,
) -> Result<MappedText, Failure> {
    let value = required(item, key)?;
    scalar_text(value)?;
    Ok(MappedText::from_scalar(file, value))
}

/// An optional boolean, spelled any way yaml-cpp accepts.
pub(crate) fn optional_bool(item: &Node, key: &str) -> Result<Option<bool>, Failure> {
    optional(item, key)?.map(decode_bool).transpose()
}

/// A required boolean.
pub(crate) fn required_bool(item: &Node, key: &str) -> Result<bool, Failure> {
    decode_bool(required(item, key)?)
}

/// An optional unsigned integer.
pub(crate) fn optional_u64(item: &Node, key: &str) -> Result<Option<u64>, Failure> {
    optional(item, key)?
        .map(|v| {
            scalar_text(v)?
                .parse()
                .map_err(|_| Failure::shape("Can't decode YAML scalar value", v.pos))
        })
        .transpose()
}

fn decode_bool(value: &Node) -> Result<bool, Failure> {
    let text = scalar_text(value)?;
    match text {
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "y" | "Y" | "on" | "On" | "ON" => {
            Ok(true)
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "n" | "N" | "off" | "Off" | "OFF" => {
            Ok(false)
        }
        _ => Err(Failure::shape("Can't decode YAML scalar value", value.pos)),
    }
}

/// A sequence of scalars under `key` (`items`, `tags`); `None` if absent and optional.
pub(crate) fn string_seq(
    item: &Node,
    key: &str,
    optional: bool,
) -> Result<Option<Vec<String>>, Failure> {
    let Some(value) = item.get(key) else {
        if optional {
            return Ok(None);
        }
        return Err(Failure::shape(
            format!("Item has no mapping for key '{key}'"),
            item.pos,
        ));
    };
    let elements = value
        .seq()
        .ok_or_else(|| Failure::shape("Value is not a sequence", value.pos))?;
    elements
        .iter()
        .map(|e| {
            e.text()
                .map(str::to_string)
                .ok_or_else(|| Failure::shape("sequence value is not scalar", e.pos))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Warns about keys an item kind does not have (Falco ignores them; a typo such as
/// `condtion` would otherwise go unnoticed).
pub(crate) fn warn_unknown_keys(item: &Node, known: &[&str], sink: &mut Sink<'_>, label: &str) {
    for (key, _) in item.map().unwrap_or_default() {
        let name = key.text().unwrap_or_default();
        if !known.contains(&name) {
            sink.warning(
                codes::LOAD_UNKNOWN_KEY,
                format!("Unknown key '{name}'. The key will be ignored."),
                key.pos,
                Some(label),
            );
        }
    }
}
