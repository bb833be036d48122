//! The standard fields captured with every alert ([`CONTEXT_FIELDS`]), resolved once at start.

use serde_json::{Map, Value as Json};

use super::record::CONTEXT_FIELDS;
use crate::{
    enrich::Enriched,
    rules::fields::{self, FieldArg, FieldDef, Value},
};

/// Extracts the context fields of an event.
pub struct ContextExtractor {
    fields: Vec<(&'static str, &'static FieldDef, FieldArg)>,
}

impl ContextExtractor {
    /// Resolves every context field Vigil supplies (others are left out).
    pub fn new() -> ContextExtractor {
        let fields = CONTEXT_FIELDS
            .iter()
            .filter_map(|&name| {
                let (def, arg) = fields::lookup(name, None).ok()?;
                def.supported().then_some((name, def, arg))
            })
            .collect();
        ContextExtractor { fields }
    }

    /// The fields the event has, as JSON values.
    pub fn extract(&self, event: &Enriched) -> Map<String, Json> {
        let mut context = Map::new();
        for (name, def, arg) in &self.fields {
            if let Some(value) = fields::extract_one(def, arg, event) {
                context.insert((*name).to_string(), to_json(value));
            }
        }
        context
    }
}

impl Default for ContextExtractor {
    fn default() -> Self {
        ContextExtractor::new()
    }
}

fn to_json(value: Value<'_>) -> Json {
    match value {
        Value::Str(text) => Json::String(text.into_owned()),
        Value::Int(number) => Json::from(number),
        Value::Bool(flag) => Json::Bool(flag),
        Value::Ip(ip) => Json::String(ip.to_string()),
        Value::Bytes(bytes) => Json::String(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_context_field_is_known() {
        let extractor = ContextExtractor::new();
        assert_eq!(
            extractor.fields.len(),
            CONTEXT_FIELDS.len(),
            "a context field is unknown or unsupported"
        );
    }
}
