//! Elastic Common Schema 9.x documents, ready for an Elasticsearch data stream or any
//! ECS-aware SIEM.

use serde_json::{Map, Value};

use super::{
    Activity, Family, Obj, VERSION, agent_action, base_name, container_id, detected_timestamp,
    dir_name, file_path, flag, iana_number, id_text, in_kubernetes, ip, is_directory, number,
    record_activity, rule_uid, succeeded, text, timestamp,
};
use crate::sinks::record::{Record, RecordKind};

/// The ECS release the documents follow: the one whose field definitions tests/format_schemas.rs
/// validates them against (`process.group.id`, for one, is not in ECS 8.11).
const ECS_VERSION: &str = "9.4.0";

/// The record as an ECS document.
pub(super) fn to_json(record: &Record) -> Value {
    Obj::new()
        .set("@timestamp", timestamp(record))
        .set("ecs", Obj::new().set("version", ECS_VERSION))
        .set("message", record.output.as_str())
        .set("event", event(record, record_activity(record)))
        .set(
            "rule",
            Obj::new()
                .set("id", rule_uid(&record.rule))
                .set("name", record.rule.as_str()),
        )
        .opt(
            "tags",
            (!record.tags.is_empty()).then(|| record.tags.clone()),
        )
        .set(
            "host",
            Obj::new()
                .set("hostname", record.hostname.as_str())
                .set("name", record.hostname.as_str())
                .set("os", Obj::new().set("type", "linux")),
        )
        .set(
            "agent",
            Obj::new().set("type", "vigil").set("version", VERSION),
        )
        .set("process", process(record))
        .set("user", user(record))
        .set("group", Obj::new().opt("id", id_text(record, "group.gid")))
        .set("file", file(record))
        .set("source", endpoint(record, "fd.cip", "fd.cport", None))
        .set(
            "destination",
            endpoint(record, "fd.sip", "fd.sport", Some("fd.sip.name")),
        )
        .set("network", network(record))
        .set("container", container(record))
        .set("orchestrator", orchestrator(record))
        .set("related", related(record))
        .set(
            "vigil",
            Obj::new()
                .set("seq", record.seq)
                .set("priority", record.priority.as_str())
                .set("source", record.source.as_str())
                .set("output_fields", undotted(&record.output_fields)),
        )
        .into()
}

/// The `event` section: what happened, how bad, and where the record comes from.
fn event(record: &Record, activity: Option<Activity>) -> Obj {
    let kind = match record.kind {
        RecordKind::Alert => "alert",
        RecordKind::Heartbeat => "state",
        RecordKind::AgentStarted | RecordKind::AgentHealth => "event",
    };
    let (category, types): (&str, &[&str]) = match (activity, record.kind) {
        (Some(activity), _) => (category(activity.family), activity.ecs_types),
        (None, RecordKind::Alert) => ("intrusion_detection", &["info"]),
        (None, RecordKind::AgentStarted) => ("process", &["start"]),
        (None, RecordKind::Heartbeat | RecordKind::AgentHealth) => ("host", &["info"]),
    };
    // ECS has `unknown` for an outcome that exists but cannot be read; absent stays absent.
    let outcome = record
        .context
        .get("evt.res")
        .filter(|res| !res.is_null())
        .map(|_| match succeeded(record) {
            Some(true) => "success",
            Some(false) => "failure",
            None => "unknown",
        });
    Obj::new()
        .set("kind", kind)
        .set("category", vec![category])
        .set("type", types.to_vec())
        .opt(
            "action",
            text(record, "evt.type").or_else(|| agent_action(record.kind)),
        )
        .opt("outcome", outcome)
        .set("severity", record.severity())
        .set("id", record.id.as_str())
        .set("sequence", record.seq)
        .set("created", detected_timestamp(record))
        .set("module", "vigil")
        .set("dataset", "vigil.alert")
        .set("provider", "vigil")
}

/// The ECS `event.category` of an activity family.
fn category(family: Family) -> &'static str {
    match family {
        Family::Process => "process",
        Family::File => "file",
        Family::Network => "network",
    }
}

fn process(record: &Record) -> Obj {
    let parent = Obj::new()
        .opt("pid", number(record, "proc.ppid"))
        .opt("name", text(record, "proc.pname"))
        .opt("command_line", text(record, "proc.pcmdline"));
    let mut process = Obj::new()
        .opt("pid", number(record, "proc.pid"))
        .opt("name", text(record, "proc.name"))
        .opt("executable", text(record, "proc.exepath"))
        .opt("command_line", text(record, "proc.cmdline"))
        .opt("working_directory", text(record, "proc.cwd"))
        .set("parent", parent)
        .set("user", user(record))
        .set("group", Obj::new().opt("id", id_text(record, "group.gid")));
    // Terminal device numbers are unsigned; a negative value is garbage, not a terminal.
    if let Some(tty) = number(record, "proc.tty").filter(|tty| *tty >= 0) {
        process = process.set("interactive", tty != 0);
        if tty != 0 {
            process = process.set("tty", Obj::new().set("char_device", char_device(tty)));
        }
    }
    process
}

/// Splits Falco's `proc.tty` (the kernel's encoded `dev_t`, as in `/proc/<pid>/stat`) into the
/// major and minor numbers ECS records.
fn char_device(tty: i64) -> Obj {
    let major = (tty >> 8) & 0xfff;
    let minor = (tty & 0xff) | ((tty >> 12) & 0xfff00);
    Obj::new().set("major", major).set("minor", minor)
}

fn user(record: &Record) -> Obj {
    Obj::new()
        .opt("id", id_text(record, "user.uid"))
        .opt("name", text(record, "user.name"))
}

fn file(record: &Record) -> Obj {
    let Some(path) = file_path(record) else {
        return Obj::new();
    };
    Obj::new()
        .set("path", path)
        .set("name", base_name(path))
        .opt("directory", dir_name(path))
        .set("type", if is_directory(record) { "dir" } else { "file" })
}

/// `source` (the connection's client) or `destination` (its server), as ECS defines them:
/// the initiator and the responder, whichever end the traced process is.
fn endpoint(record: &Record, ip_field: &str, port_field: &str, domain: Option<&str>) -> Obj {
    Obj::new()
        .opt("ip", ip(record, ip_field).map(|(text, _)| text))
        .opt("port", number(record, port_field))
        .opt("domain", domain.and_then(|field| text(record, field)))
}

fn network(record: &Record) -> Obj {
    let transport = text(record, "fd.l4proto").map(str::to_ascii_lowercase);
    let version = ip(record, "fd.sip")
        .or_else(|| ip(record, "fd.cip"))
        .map(|(_, ip)| if ip.is_ipv4() { "ipv4" } else { "ipv6" });
    Obj::new()
        .opt(
            "iana_number",
            transport
                .as_deref()
                .and_then(iana_number)
                .map(|n| n.to_string()),
        )
        .opt("transport", transport)
        .opt("type", version)
}

fn container(record: &Record) -> Obj {
    let Some(id) = container_id(record) else {
        return Obj::new();
    };
    let image = Obj::new()
        .opt("name", text(record, "container.image.repository"))
        .opt(
            "tag",
            text(record, "container.image.tag").map(|tag| vec![tag]),
        );
    Obj::new()
        .set("id", id)
        .opt("name", text(record, "container.name"))
        .set("image", image)
        .set(
            "security_context",
            Obj::new().opt("privileged", flag(record, "container.privileged")),
        )
}

fn orchestrator(record: &Record) -> Obj {
    if !in_kubernetes(record) {
        return Obj::new();
    }
    let pod = Obj::new()
        .opt("name", text(record, "k8s.pod.name"))
        .opt("id", text(record, "k8s.pod.uid"));
    let resource = if pod.is_empty() {
        pod
    } else {
        pod.set("type", "pod")
    };
    Obj::new()
        .set("type", "kubernetes")
        .opt("namespace", text(record, "k8s.ns.name"))
        .set("resource", resource)
}

/// `related.*`, the fields Kibana pivots on across every document that mentions an entity.
fn related(record: &Record) -> Obj {
    fn unique(values: impl IntoIterator<Item = Option<String>>) -> Option<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for value in values.into_iter().flatten() {
            if !out.contains(&value) {
                out.push(value);
            }
        }
        (!out.is_empty()).then_some(out)
    }
    let ips = ["fd.cip", "fd.sip"].map(|field| ip(record, field).map(|(text, _)| text.to_string()));
    let users = [
        text(record, "user.name").map(str::to_string),
        id_text(record, "user.uid"),
    ];
    let hosts = [
        Some(record.hostname.clone()).filter(|host| !host.is_empty()),
        text(record, "fd.sip.name").map(str::to_string),
    ];
    Obj::new()
        .opt("ip", unique(ips))
        .opt("user", unique(users))
        .opt("hosts", unique(hosts))
}

/// Falco field names with `_` for `.`. Elasticsearch reads dots in names as object paths, and
/// Falco has fields that are both a value and a prefix (`fd.sip` and `fd.sip.name`), which
/// would make it reject the document over a mapping conflict.
fn undotted(fields: &Map<String, Value>) -> Map<String, Value> {
    fields
        .iter()
        .map(|(name, value)| (name.replace('.', "_"), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sinks::format::tests::{file_record, heartbeat};
    use crate::sinks::record::sample_record;

    #[test]
    fn maps_the_sample_alert() {
        let record = sample_record(7);
        let doc = to_json(&record);
        assert_eq!(doc["@timestamp"], "2023-11-14T22:13:20.123456789Z");
        assert_eq!(doc["ecs"]["version"], ECS_VERSION);
        assert_eq!(doc["message"], record.output.as_str());

        let event = &doc["event"];
        assert_eq!(event["kind"], "alert");
        assert_eq!(event["category"], json!(["process"]));
        assert_eq!(event["type"], json!(["start"]));
        assert_eq!(event["action"], "execve");
        assert_eq!(event["outcome"], "success");
        assert_eq!(event["severity"], 4);
        assert_eq!(event["id"], record.id.as_str());
        assert_eq!(event["sequence"], 7);
        assert_eq!(event["created"], "2023-11-14T22:13:20.125456789Z");
        assert_eq!(event["module"], "vigil");
        assert_eq!(event["dataset"], "vigil.alert");
        assert_eq!(event["provider"], "vigil");

        assert_eq!(doc["rule"]["name"], "Shell Launched By Network Service");
        assert_eq!(
            doc["rule"]["id"],
            rule_uid("Shell Launched By Network Service")
        );
        assert_eq!(
            doc["tags"],
            json!(["container", "shell", "mitre_execution"])
        );
        assert_eq!(
            doc["host"],
            json!({"hostname": "node-1", "name": "node-1", "os": {"type": "linux"}})
        );
        assert_eq!(doc["agent"], json!({"type": "vigil", "version": VERSION}));

        let process = &doc["process"];
        assert_eq!(process["pid"], 4242);
        assert_eq!(process["name"], "bash");
        assert_eq!(process["executable"], "/usr/bin/bash");
        assert_eq!(process["command_line"], "bash -i");
        assert_eq!(process["working_directory"], "/var/www/");
        assert_eq!(
            process["parent"],
            json!({"pid": 4200, "name": "nginx", "command_line": "nginx -g daemon off;"})
        );
        assert_eq!(process["user"], json!({"id": "0", "name": "root"}));
        assert_eq!(process["group"], json!({"id": "0"}));
        assert_eq!(process["interactive"], true);
        // 34816 is /dev/pts/0: major 136, minor 0.
        assert_eq!(
            process["tty"]["char_device"],
            json!({"major": 136, "minor": 0})
        );

        assert_eq!(doc["user"], json!({"id": "0", "name": "root"}));
        assert_eq!(doc["group"], json!({"id": "0"}));
        // The descriptor is a socket: no file section.
        assert!(doc.get("file").is_none());
        assert_eq!(doc["source"], json!({"ip": "10.0.0.5", "port": 51234}));
        assert_eq!(
            doc["destination"],
            json!({"ip": "203.0.113.7", "port": 4444, "domain": "c2.example.net"})
        );
        assert_eq!(
            doc["network"],
            json!({"transport": "tcp", "type": "ipv4", "iana_number": "6"})
        );
        assert_eq!(
            doc["container"],
            json!({
                "id": "3ad7b26ded6d",
                "name": "web-7f9c",
                "image": {"name": "registry.example/web", "tag": ["1.4.2"]},
                "security_context": {"privileged": false},
            })
        );
        assert_eq!(
            doc["orchestrator"],
            json!({
                "type": "kubernetes",
                "namespace": "shop",
                "resource": {
                    "type": "pod",
                    "name": "web-7f9c-abcde",
                    "id": "8d0c3b1e-2f59-4a57-9d7a-0c1e2f3a4b5c",
                },
            })
        );
        assert_eq!(doc["related"]["ip"], json!(["10.0.0.5", "203.0.113.7"]));
        assert_eq!(doc["related"]["user"], json!(["root", "0"]));
        assert_eq!(doc["related"]["hosts"], json!(["node-1", "c2.example.net"]));

        let vigil = &doc["vigil"];
        assert_eq!(vigil["seq"], 7);
        assert_eq!(vigil["priority"], "Warning");
        assert_eq!(vigil["source"], "syscall");
        assert_eq!(vigil["output_fields"]["proc_cmdline"], "bash -i");
        assert_eq!(vigil["output_fields"]["container_id"], "3ad7b26ded6d");
    }

    #[test]
    fn maps_file_events() {
        let doc = to_json(&file_record());
        assert_eq!(doc["event"]["category"], json!(["file"]));
        assert_eq!(doc["event"]["type"], json!(["access"]));
        assert_eq!(doc["event"]["action"], "openat");
        assert_eq!(doc["event"]["outcome"], "failure");
        assert_eq!(
            doc["file"],
            json!({"path": "/etc/shadow", "name": "shadow", "directory": "/etc", "type": "file"})
        );
        for absent in ["source", "destination", "network"] {
            assert!(doc.get(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn omits_absent_context() {
        let mut record = sample_record(1);
        for field in [
            "proc.ppid",
            "proc.pname",
            "proc.pcmdline",
            "proc.cwd",
            "proc.tty",
            "group.gid",
            "fd.sip.name",
            "container.privileged",
            "k8s.ns.name",
            "k8s.pod.name",
            "k8s.pod.uid",
        ] {
            record.context.remove(field);
        }
        record.context.insert("evt.res".into(), Value::Null);
        record.context.insert("proc.exepath".into(), Value::Null);
        record.context.insert("user.name".into(), "".into());
        let doc = to_json(&record);
        let process = doc["process"].as_object().unwrap();
        for absent in [
            "parent",
            "working_directory",
            "executable",
            "tty",
            "interactive",
            "group",
        ] {
            assert!(!process.contains_key(absent), "process.{absent}");
        }
        assert_eq!(doc["user"], json!({"id": "0"}));
        assert!(doc["destination"].get("domain").is_none());
        assert!(doc["container"].get("security_context").is_none());
        assert!(doc["event"].get("outcome").is_none());
        for absent in ["group", "orchestrator"] {
            assert!(doc.get(absent).is_none(), "{absent}");
        }
        // Nothing anywhere is null.
        assert!(!doc.to_string().contains("null"));
    }

    #[test]
    fn host_processes_have_no_container() {
        let mut record = sample_record(1);
        record.context.insert("container.id".into(), "host".into());
        record
            .context
            .insert("container.name".into(), "host".into());
        assert!(to_json(&record).get("container").is_none());
    }

    #[test]
    fn drops_malformed_ips() {
        let mut record = sample_record(1);
        record.context.insert("fd.sip".into(), "not-an-ip".into());
        let doc = to_json(&record);
        assert!(doc["destination"].get("ip").is_none());
        assert_eq!(doc["destination"]["port"], 4444);
        assert_eq!(doc["related"]["ip"], json!(["10.0.0.5"]));
    }

    #[test]
    fn maps_agent_events() {
        let doc = to_json(&heartbeat(42));
        assert_eq!(doc["event"]["kind"], "state");
        assert_eq!(doc["event"]["category"], json!(["host"]));
        assert_eq!(doc["event"]["type"], json!(["info"]));
        assert_eq!(doc["event"]["action"], "heartbeat");
        assert_eq!(doc["event"]["severity"], 6);
        assert_eq!(doc["event"]["sequence"], 42);
        assert_eq!(doc["rule"]["name"], "Vigil heartbeat");
        assert_eq!(doc["vigil"]["output_fields"]["vigil_seq"], 42);
        assert_eq!(doc["vigil"]["source"], "vigil");
        for absent in [
            "process",
            "user",
            "group",
            "file",
            "source",
            "destination",
            "network",
            "container",
            "orchestrator",
            "tags",
        ] {
            assert!(doc.get(absent).is_none(), "{absent}");
        }
        assert!(doc["event"].get("outcome").is_none());

        let mut started = heartbeat(43);
        started.kind = RecordKind::AgentStarted;
        started
            .output_fields
            .insert("vigil.down_seconds".into(), 12.into());
        let doc = to_json(&started);
        assert_eq!(doc["event"]["kind"], "event");
        assert_eq!(doc["event"]["category"], json!(["process"]));
        assert_eq!(doc["event"]["type"], json!(["start"]));
        assert_eq!(doc["event"]["action"], "agent_started");
        assert_eq!(doc["vigil"]["output_fields"]["vigil_down_seconds"], 12);

        let mut health = heartbeat(44);
        health.kind = RecordKind::AgentHealth;
        health.priority = "Error".into();
        let doc = to_json(&health);
        assert_eq!(doc["event"]["kind"], "event");
        assert_eq!(doc["event"]["action"], "agent_health");
        assert_eq!(doc["event"]["severity"], 3);
    }

    #[test]
    fn unclassified_alerts_are_intrusion_detections() {
        let mut record = sample_record(1);
        record.context.insert("evt.type".into(), "bpf".into());
        let doc = to_json(&record);
        assert_eq!(doc["event"]["category"], json!(["intrusion_detection"]));
        assert_eq!(doc["event"]["type"], json!(["info"]));
        assert_eq!(doc["event"]["action"], "bpf");
    }

    #[test]
    fn undots_output_field_names() {
        let mut record = sample_record(1);
        record
            .output_fields
            .insert("fd.sip".into(), "203.0.113.7".into());
        record
            .output_fields
            .insert("fd.sip.name".into(), "c2.example.net".into());
        let fields = &to_json(&record)["vigil"]["output_fields"];
        assert_eq!(fields["fd_sip"], "203.0.113.7");
        assert_eq!(fields["fd_sip_name"], "c2.example.net");
        assert!(fields.as_object().unwrap().keys().all(|k| !k.contains('.')));
    }
}
