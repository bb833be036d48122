//! Rule output strings: `%field` tokens resolved against an event, rendered as Falco renders
//! them (`<NA>` for a value the event does not have), plus the `output_fields` map.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

use super::{
    compile::{CompileError, compile_operand},
    condition::{ast::Pos, parser},
    fields::Value,
    filter::Operand,
};
use crate::enrich::Enriched;

/// Falco's rendering of a missing value.
pub const NA: &str = "<NA>";

enum Token {
    Literal(String),
    Field(usize),
}

/// A compiled output string.
pub struct OutputFormat {
    tokens: Vec<Token>,
    fields: Vec<(String, Operand)>,
}

/// Problems found while compiling an output string that are not errors.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OutputNotes {
    /// `%container.info` was used (deprecated; rendered as nothing).
    pub container_info: bool,
}

impl OutputFormat {
    /// Compiles `text`; positions in errors are relative to the string (line 1).
    pub fn compile(text: &str) -> Result<(OutputFormat, OutputNotes), CompileError> {
        let mut tokens = Vec::new();
        let mut fields: Vec<(String, Operand)> = Vec::new();
        let mut notes = OutputNotes::default();
        let mut literal = String::new();
        // A leading `*` asks Falco to print even when fields are missing; Vigil always does.
        let body = text.strip_prefix('*').unwrap_or(text);
        let mut rest = body;
        while let Some(index) = rest.find('%') {
            literal.push_str(&rest[..index]);
            let after = &rest[index + 1..];
            let token = after.trim_start_matches(|c: char| c.is_ascii_digit());
            if token.starts_with("container.info")
                && !token["container.info".len()..]
                    .starts_with(|c: char| c == '.' || c.is_alphanumeric())
            {
                notes.container_info = true;
                rest = &token["container.info".len()..];
                continue;
            }
            match parser::parse_operand(token) {
                Ok((ast, consumed)) if consumed > 0 => {
                    let name = token[..consumed].to_string();
                    let column = (text.len() - rest.len() + index + 2) as u32;
                    let (operand, _, _) = compile_operand(&ast).map_err(|mut e| {
                        e.pos = Pos {
                            source: 0,
                            line: 1,
                            col: column,
                        };
                        e
                    })?;
                    if !literal.is_empty() {
                        tokens.push(Token::Literal(std::mem::take(&mut literal)));
                    }
                    let slot = match fields.iter().position(|(n, _)| *n == name) {
                        Some(slot) => slot,
                        None => {
                            fields.push((name, operand));
                            fields.len() - 1
                        }
                    };
                    tokens.push(Token::Field(slot));
                    rest = &token[consumed..];
                }
                // A `%` not followed by a field is literal text.
                _ => {
                    literal.push('%');
                    rest = after;
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        Ok((OutputFormat { tokens, fields }, notes))
    }

    /// Renders the string and the map of every referenced field.
    pub fn render(&self, event: &Enriched) -> (String, Map<String, Json>) {
        let values: Vec<Option<Value<'_>>> = self
            .fields
            .iter()
            .map(|(_, operand)| operand.value(event))
            .collect();
        let mut text = String::new();
        for token in &self.tokens {
            match token {
                Token::Literal(literal) => text.push_str(literal),
                Token::Field(slot) => match values.get(*slot).and_then(Option::as_ref) {
                    Some(value) => text.push_str(&value.render()),
                    None => text.push_str(NA),
                },
            }
        }
        let mut map = Map::new();
        for ((name, _), value) in self.fields.iter().zip(values) {
            let json = match value {
                Some(Value::Int(number)) => Json::from(number),
                Some(Value::Bool(flag)) => Json::from(flag),
                Some(other) => Json::from(other.render()),
                None => Json::Null,
            };
            map.insert(name.clone(), json);
        }
        (text, map)
    }

    /// Calls `visit` with every field the string reads.
    pub fn visit_fields(&self, visit: &mut impl FnMut(&'static super::fields::FieldDef)) {
        for (_, operand) in &self.fields {
            operand.visit_fields(visit);
        }
    }

    /// Names of the fields the string references, as written.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(name, _)| name.as_str())
    }
}

/// `HH:MM:SS.nnnnnnnnn` in UTC, Falco's `%evt.time`.
pub fn clock_time(time_ns: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(time_ns)
        .format("%H:%M:%S%.9f")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_clock_time() {
        assert_eq!(clock_time(1_700_000_000_123_456_789), "22:13:20.123456789");
    }

    #[test]
    fn splits_literals_and_fields() {
        let (format, notes) = OutputFormat::compile(
            "Shell spawned (user=%user.name parent=%proc.aname[2] %container.info) 100%",
        )
        .unwrap();
        assert!(notes.container_info);
        let names: Vec<_> = format.field_names().collect();
        assert_eq!(names, vec!["user.name", "proc.aname[2]"]);
    }

    #[test]
    fn rejects_unknown_fields_with_their_column() {
        let error = OutputFormat::compile("x=%proc.nosuch").err().unwrap();
        assert!(error.message.contains("proc.nosuch"), "{}", error.message);
        assert_eq!(error.pos.col, 4);
    }
}
