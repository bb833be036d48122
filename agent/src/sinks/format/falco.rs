//! Falco's `json_output` alert, key for key, so falcosidekick and pipelines built for Falco
//! consume Vigil unchanged. Three additions ride along where Falco consumers already look or
//! ignore: `uuid` (the name falcosidekick gives an alert's id), `output_fields["vigil.seq"]` and
//! `output_fields["vigil.detected_time"]` (when the rule engine raised the alert).

use serde_json::Value;

use super::Obj;
use crate::sinks::record::Record;

/// The record as Falco's JSON alert.
pub(super) fn to_json(record: &Record) -> Value {
    let mut output_fields = record.output_fields.clone();
    output_fields.insert("vigil.seq".into(), record.seq.into());
    output_fields.insert(
        "vigil.detected_time".into(),
        super::detected_timestamp(record).into(),
    );
    // Obj::set skips empty objects, but Falco always writes `output_fields`; build the map
    // directly so an alert with none still has the key.
    let mut object = Obj::new()
        .set("hostname", record.hostname.as_str())
        .set("output", record.output.as_str())
        .set("priority", record.priority.as_str())
        .set("rule", record.rule.as_str())
        .set("source", record.source.as_str())
        .set("tags", record.tags.clone())
        .set("time", record.time.as_str())
        .set("uuid", record.id.as_str());
    object
        .0
        .insert("output_fields".into(), Value::Object(output_fields));
    object.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::format::tests::heartbeat;
    use crate::sinks::record::sample_record;

    #[test]
    fn matches_falco_json_output() {
        let record = sample_record(7);
        let value = to_json(&record);
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "hostname",
                "output",
                "output_fields",
                "priority",
                "rule",
                "source",
                "tags",
                "time",
                "uuid"
            ]
        );
        assert_eq!(value["hostname"], "node-1");
        assert_eq!(value["rule"], "Shell Launched By Network Service");
        assert_eq!(value["priority"], "Warning");
        assert_eq!(value["source"], "syscall");
        assert_eq!(value["time"], "2023-11-14T22:13:20.123456789Z");
        assert_eq!(value["uuid"], record.id.as_str());
        assert_eq!(value["output"], record.output.as_str());
        assert_eq!(
            value["tags"],
            serde_json::json!(["container", "shell", "mitre_execution"])
        );
        assert_eq!(value["output_fields"]["proc.cmdline"], "bash -i");
        assert_eq!(value["output_fields"]["vigil.seq"], 7);
        assert_eq!(
            value["output_fields"]["vigil.detected_time"],
            "2023-11-14T22:13:20.125456789Z"
        );
        // Context fields are Vigil's, not Falco's: they stay out of the Falco object.
        assert!(value.get("context").is_none());
        assert!(value["output_fields"].get("proc.exepath").is_none());
    }

    #[test]
    fn keeps_empty_collections() {
        let mut record = sample_record(1);
        record.tags.clear();
        record.output_fields.clear();
        let value = to_json(&record);
        assert_eq!(value["tags"], serde_json::json!([]));
        assert_eq!(
            value["output_fields"],
            serde_json::json!({"vigil.seq": 1, "vigil.detected_time": "2023-11-14T22:13:20.125456789Z"})
        );
    }

    #[test]
    fn renders_agent_events() {
        let value = to_json(&heartbeat(42));
        assert_eq!(value["rule"], "Vigil heartbeat");
        assert_eq!(value["source"], "vigil");
        assert_eq!(value["priority"], "Informational");
        assert_eq!(value["output_fields"]["vigil.seq"], 42);
    }
}
