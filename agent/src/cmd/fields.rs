//! `vigil fields`: the fields rules can use.

use std::io::{self, Write};

use vigil::rules::fields::{ArgRule, Getter, all_fields};

/// Prints every field with its type and description (as JSON lines with `json`).
pub fn run(json: bool) -> io::Result<()> {
    let mut out = io::stdout().lock();
    for field in all_fields() {
        let arg = match field.arg {
            ArgRule::None => "",
            ArgRule::OptionalIndex => "[n]?",
            ArgRule::Index => "[n]",
            ArgRule::OptionalKey => "[key]?",
            ArgRule::Key => "[key]",
        };
        let support = match field.getter {
            Getter::Unsupported(reason) => Some(reason),
            _ => None,
        };
        if json {
            let value = serde_json::json!({
                "name": field.name,
                "type": field.ty.name(),
                "arg": arg,
                "description": field.desc,
                "supported": support.is_none(),
                "unsupported_reason": support,
            });
            writeln!(out, "{value}")?;
        } else {
            let note = support
                .map(|r| format!(" [not supported: {r}]"))
                .unwrap_or_default();
            let name = format!("{}{arg}", field.name);
            writeln!(
                out,
                "{name:<40} {:<8} {}{note}",
                field.ty.name(),
                field.desc
            )?;
        }
    }
    Ok(())
}
