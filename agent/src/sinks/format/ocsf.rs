//! OCSF 1.1.0 events. Alerts, and the agent's reports of its own problems, are Detection
//! Findings; heartbeats and starts are Application Lifecycle events of the agent itself.
//!
//! Only attributes OCSF 1.1.0 defines are used, so strict validators accept the events: the
//! container rides on the process (Evidence Artifacts gained `container` only in 1.2.0), and
//! what 1.1.0 has no place for goes under `unmapped` with its Falco name.

use serde_json::{Map, Value};

use super::{
    Activity, Family, Obj, VERSION, base_name, container_id, dir_name, epoch_ms, file_path,
    iana_number, id_text, image_reference, in_kubernetes, ip, is_directory, number,
    record_activity, rule_uid, text, timestamp,
};
use crate::sinks::record::{Record, RecordKind};

/// The OCSF release the events follow.
const OCSF_VERSION: &str = "1.1.0";

/// An OCSF event class: its uid, caption, and its category's uid and caption.
struct Class {
    uid: u32,
    name: &'static str,
    category_uid: u32,
    category_name: &'static str,
}

const DETECTION_FINDING: Class = Class {
    uid: 2004,
    name: "Detection Finding",
    category_uid: 2,
    category_name: "Findings",
};

const APPLICATION_LIFECYCLE: Class = Class {
    uid: 6002,
    name: "Application Lifecycle",
    category_uid: 6,
    category_name: "Application Activity",
};

/// OCSF `severity_id` and caption for each syslog severity (Falco priority), most severe first.
const SEVERITIES: [(u8, &str); 8] = [
    (6, "Fatal"),
    (5, "Critical"),
    (5, "Critical"),
    (4, "High"),
    (3, "Medium"),
    (2, "Low"),
    (1, "Informational"),
    (1, "Informational"),
];

/// Context fields OCSF 1.1.0 has no attribute for; they travel in `unmapped.context`.
const UNMAPPED: &[&str] = &[
    // The syscall: the related event names only its OCSF class and activity.
    "evt.type",
    "evt.res",
    "proc.cwd",
    "proc.tty",
    "user.loginuid",
    "group.gid",
    "container.privileged",
    "k8s.ns.name",
    "k8s.pod.name",
];

/// The record as an OCSF event.
pub(super) fn to_json(record: &Record) -> Value {
    match record.kind {
        RecordKind::Alert | RecordKind::AgentHealth => detection_finding(record),
        RecordKind::AgentStarted => lifecycle(record, 3, "Start", "Start"),
        // Application Lifecycle has no heartbeat activity; Other with a name is how OCSF
        // carries a source-specific one.
        RecordKind::Heartbeat => lifecycle(record, 99, "Heartbeat", "Other"),
    }
}

/// The attributes every event has. `type_caption` is the caption of `activity_id` in the
/// schema, which differs from `activity_name` only for Other.
fn base(
    record: &Record,
    class: &Class,
    activity_id: u8,
    activity_name: &str,
    type_caption: &str,
) -> Obj {
    let (severity_id, severity) = SEVERITIES
        .get(usize::from(record.severity()))
        .copied()
        .unwrap_or((0, "Unknown"));
    Obj::new()
        .set("category_uid", class.category_uid)
        .set("category_name", class.category_name)
        .set("class_uid", class.uid)
        .set("class_name", class.name)
        .set("activity_id", activity_id)
        .set("activity_name", activity_name)
        .set("type_uid", type_uid(class.uid, activity_id))
        .set("type_name", format!("{}: {type_caption}", class.name))
        .set("time", epoch_ms(record))
        .set("severity_id", severity_id)
        .set("severity", severity)
        .set("message", record.output.as_str())
        .set("metadata", metadata(record))
        .set("device", device(record))
}

fn type_uid(class_uid: u32, activity_id: u8) -> u64 {
    u64::from(class_uid) * 100 + u64::from(activity_id)
}

fn metadata(record: &Record) -> Obj {
    let mut profiles = vec!["host"];
    if container_id(record).is_some() {
        profiles.push("container");
    }
    Obj::new()
        .set("version", OCSF_VERSION)
        .set("product", product())
        .set("uid", record.id.as_str())
        .set("sequence", record.seq)
        .set("log_name", record.source.as_str())
        .set("original_time", timestamp(record))
        .set("profiles", profiles)
}

fn product() -> Obj {
    Obj::new()
        .set("name", "Vigil")
        .set("vendor_name", "Vigil")
        .set("version", VERSION)
}

fn device(record: &Record) -> Obj {
    Obj::new()
        .set("hostname", record.hostname.as_str())
        // The agent cannot tell a server from a laptop or a VM.
        .set("type_id", 0)
        .set("type", "Unknown")
        .set(
            "os",
            Obj::new()
                .set("name", "Linux")
                .set("type_id", 200)
                .set("type", "Linux"),
        )
}

/// A Detection Finding (2004): Create, status New.
fn detection_finding(record: &Record) -> Value {
    let activity = record_activity(record);
    let process = process(record);
    let evidence = Obj::new()
        .set("process", process.clone())
        .set("file", file(record))
        .set("src_endpoint", endpoint(record, "fd.cip", "fd.cport", None))
        .set(
            "dst_endpoint",
            endpoint(record, "fd.sip", "fd.sport", Some("fd.sip.name")),
        )
        .set("connection_info", connection_info(record));
    base(record, &DETECTION_FINDING, 1, "Create", "Create")
        .set("status_id", 1)
        .set("status", "New")
        .set("finding_info", finding_info(record, activity))
        .opt("evidences", evidence.into_option().map(|e| vec![e]))
        .set(
            "actor",
            Obj::new().set("process", process).set("user", user(record)),
        )
        .set("unmapped", unmapped(record))
        .into()
}

/// An Application Lifecycle event (6002) of the agent itself.
fn lifecycle(record: &Record, activity_id: u8, activity_name: &str, type_caption: &str) -> Value {
    base(
        record,
        &APPLICATION_LIFECYCLE,
        activity_id,
        activity_name,
        type_caption,
    )
    .set("status_id", 1)
    .set("status", "Success")
    .set("app", product())
    .set("unmapped", unmapped(record))
    .into()
}

fn finding_info(record: &Record, activity: Option<Activity>) -> Obj {
    let analytic = Obj::new()
        .set("uid", rule_uid(&record.rule))
        .set("name", record.rule.as_str())
        .set("type_id", 1)
        .set("type", "Rule");
    Obj::new()
        .set("uid", record.id.as_str())
        .set("title", record.rule.as_str())
        .set("desc", record.output.as_str())
        .opt(
            "types",
            (!record.tags.is_empty()).then(|| record.tags.clone()),
        )
        .set("created_time", epoch_ms(record))
        .set("analytic", analytic)
        .opt(
            "related_events",
            activity.map(|activity| vec![related_event(record, activity)]),
        )
}

/// The event that triggered the finding, named by the activity class it belongs to. It has no
/// identity of its own outside this alert, so it shares the record's id. In 1.1.0 `type` holds
/// the type's caption ("Process Activity: Launch"): `type_name` arrived only in 1.2.0.
fn related_event(record: &Record, activity: Activity) -> Obj {
    let (class_uid, class_name) = match activity.family {
        Family::Process => (1007, "Process Activity"),
        Family::File => (1001, "File System Activity"),
        Family::Network => (4001, "Network Activity"),
    };
    Obj::new()
        .set("uid", record.id.as_str())
        .set("type_uid", type_uid(class_uid, activity.ocsf_id))
        .set("type", format!("{class_name}: {}", activity.ocsf_name))
}

fn process(record: &Record) -> Obj {
    let file = text(record, "proc.exepath").map(|path| {
        Obj::new()
            .set("name", base_name(path))
            .set("path", path)
            .set("type_id", 1)
            .set("type", "Regular File")
    });
    let parent = Obj::new()
        .opt("pid", number(record, "proc.ppid"))
        .opt("name", text(record, "proc.pname"))
        .opt("cmd_line", text(record, "proc.pcmdline"));
    Obj::new()
        .opt("pid", number(record, "proc.pid"))
        .opt("name", text(record, "proc.name"))
        .opt("cmd_line", text(record, "proc.cmdline"))
        .opt("file", file)
        .set("parent_process", parent)
        .set("user", user(record))
        .set("container", container(record))
}

fn user(record: &Record) -> Obj {
    Obj::new()
        .opt("uid", id_text(record, "user.uid"))
        .opt("name", text(record, "user.name"))
}

fn container(record: &Record) -> Obj {
    let Some(id) = container_id(record) else {
        return Obj::new();
    };
    // The image's `uid` is required but Vigil knows no image id; the reference
    // (repository:tag) is the identifier it has.
    let image = image_reference(record).map(|reference| {
        Obj::new()
            .set("uid", reference)
            .opt("name", text(record, "container.image.repository"))
            .opt("tag", text(record, "container.image.tag"))
    });
    let kubernetes = in_kubernetes(record);
    Obj::new()
        .set("uid", id)
        .opt("name", text(record, "container.name"))
        .opt("image", image)
        .opt("orchestrator", kubernetes.then_some("Kubernetes"))
        .opt("pod_uuid", text(record, "k8s.pod.uid"))
}

fn file(record: &Record) -> Obj {
    let Some(path) = file_path(record) else {
        return Obj::new();
    };
    let (type_id, type_name) = if is_directory(record) {
        (2, "Folder")
    } else {
        (1, "Regular File")
    };
    Obj::new()
        .set("name", base_name(path))
        .set("path", path)
        .opt("parent_folder", dir_name(path))
        .set("type_id", type_id)
        .set("type", type_name)
}

fn endpoint(record: &Record, ip_field: &str, port_field: &str, hostname: Option<&str>) -> Obj {
    Obj::new()
        .opt("ip", ip(record, ip_field).map(|(text, _)| text))
        .opt("port", number(record, port_field))
        .opt("hostname", hostname.and_then(|field| text(record, field)))
}

fn connection_info(record: &Record) -> Obj {
    let protocol = text(record, "fd.l4proto").map(str::to_ascii_lowercase);
    let version = ip(record, "fd.sip")
        .or_else(|| ip(record, "fd.cip"))
        .map(|(_, ip)| if ip.is_ipv4() { 4 } else { 6 });
    if protocol.is_none() && version.is_none() {
        return Obj::new();
    }
    // The traced process accepted (inbound) or initiated (outbound) the connection.
    let (direction_id, direction) = match text(record, "evt.type") {
        Some("accept" | "accept4") => (1, "Inbound"),
        Some("connect") => (2, "Outbound"),
        _ => (0, "Unknown"),
    };
    Obj::new()
        .opt("protocol_num", protocol.as_deref().and_then(iana_number))
        .opt("protocol_name", protocol)
        .opt("protocol_ver_id", version)
        .set("direction_id", direction_id)
        .set("direction", direction)
}

/// Everything the event carries that OCSF 1.1.0 has no attribute for, under Falco names.
fn unmapped(record: &Record) -> Obj {
    let mut context = Map::new();
    for field in UNMAPPED {
        if let Some(value) = record.context.get(*field).filter(|v| !v.is_null()) {
            context.insert((*field).to_string(), value.clone());
        }
    }
    // A socket's or pipe's fd.name is not a file path, so no OCSF file carries it.
    if file_path(record).is_none()
        && let Some(name) = text(record, "fd.name")
    {
        context.insert("fd.name".into(), name.into());
    }
    Obj::new()
        .set("priority", record.priority.as_str())
        .set("source", record.source.as_str())
        .set("output_fields", record.output_fields.clone())
        .set("context", context)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sinks::format::tests::{file_record, heartbeat};
    use crate::sinks::record::sample_record;

    #[test]
    fn maps_the_sample_alert_to_a_detection_finding() {
        let record = sample_record(7);
        let event = to_json(&record);
        assert_eq!(event["class_uid"], 2004);
        assert_eq!(event["class_name"], "Detection Finding");
        assert_eq!(event["category_uid"], 2);
        assert_eq!(event["category_name"], "Findings");
        assert_eq!(event["activity_id"], 1);
        assert_eq!(event["activity_name"], "Create");
        assert_eq!(event["type_uid"], 200401);
        assert_eq!(event["type_name"], "Detection Finding: Create");
        assert_eq!(event["time"], 1_700_000_000_123_i64);
        assert_eq!(event["severity_id"], 3);
        assert_eq!(event["severity"], "Medium");
        assert_eq!(event["status_id"], 1);
        assert_eq!(event["status"], "New");
        assert_eq!(event["message"], record.output.as_str());

        let metadata = &event["metadata"];
        assert_eq!(metadata["version"], "1.1.0");
        assert_eq!(
            metadata["product"],
            json!({"name": "Vigil", "vendor_name": "Vigil", "version": VERSION})
        );
        assert_eq!(metadata["uid"], record.id.as_str());
        assert_eq!(metadata["sequence"], 7);
        assert_eq!(metadata["log_name"], "syscall");
        assert_eq!(metadata["profiles"], json!(["host", "container"]));

        let info = &event["finding_info"];
        assert_eq!(info["uid"], record.id.as_str());
        assert_eq!(info["title"], "Shell Launched By Network Service");
        assert_eq!(info["desc"], record.output.as_str());
        assert_eq!(
            info["types"],
            json!(["container", "shell", "mitre_execution"])
        );
        assert_eq!(
            info["analytic"],
            json!({
                "uid": rule_uid(&record.rule),
                "name": "Shell Launched By Network Service",
                "type_id": 1,
                "type": "Rule",
            })
        );
        assert_eq!(
            info["related_events"],
            json!([{
                "uid": record.id,
                "type_uid": 100701,
                "type": "Process Activity: Launch",
            }])
        );

        let evidence = &event["evidences"][0];
        let process = &evidence["process"];
        assert_eq!(process["pid"], 4242);
        assert_eq!(process["name"], "bash");
        assert_eq!(process["cmd_line"], "bash -i");
        assert_eq!(
            process["file"],
            json!({"name": "bash", "path": "/usr/bin/bash", "type_id": 1, "type": "Regular File"})
        );
        assert_eq!(
            process["parent_process"],
            json!({"pid": 4200, "name": "nginx", "cmd_line": "nginx -g daemon off;"})
        );
        assert_eq!(process["user"], json!({"uid": "0", "name": "root"}));
        assert_eq!(
            process["container"],
            json!({
                "uid": "3ad7b26ded6d",
                "name": "web-7f9c",
                "image": {
                    "uid": "registry.example/web:1.4.2",
                    "name": "registry.example/web",
                    "tag": "1.4.2",
                },
                "orchestrator": "Kubernetes",
                "pod_uuid": "8d0c3b1e-2f59-4a57-9d7a-0c1e2f3a4b5c",
            })
        );
        assert!(evidence.get("file").is_none());
        assert_eq!(
            evidence["src_endpoint"],
            json!({"ip": "10.0.0.5", "port": 51234})
        );
        assert_eq!(
            evidence["dst_endpoint"],
            json!({"ip": "203.0.113.7", "port": 4444, "hostname": "c2.example.net"})
        );
        assert_eq!(
            evidence["connection_info"],
            json!({
                "protocol_name": "tcp",
                "protocol_num": 6,
                "protocol_ver_id": 4,
                "direction_id": 0,
                "direction": "Unknown",
            })
        );

        assert_eq!(event["actor"]["process"], *process);
        assert_eq!(event["actor"]["user"], json!({"uid": "0", "name": "root"}));
        assert_eq!(event["device"]["hostname"], "node-1");
        assert_eq!(event["device"]["type_id"], 0);
        assert_eq!(event["device"]["os"]["type_id"], 200);

        let unmapped = &event["unmapped"];
        assert_eq!(unmapped["priority"], "Warning");
        assert_eq!(unmapped["source"], "syscall");
        assert_eq!(unmapped["output_fields"]["proc.cmdline"], "bash -i");
        let context = &unmapped["context"];
        assert_eq!(context["k8s.ns.name"], "shop");
        assert_eq!(context["k8s.pod.name"], "web-7f9c-abcde");
        assert_eq!(context["proc.cwd"], "/var/www/");
        assert_eq!(context["container.privileged"], false);
        assert_eq!(context["fd.name"], "10.0.0.5:51234->203.0.113.7:4444");
        assert_eq!(context["evt.type"], "execve");
        assert!(context.get("proc.name").is_none());
    }

    #[test]
    fn maps_file_events() {
        let event = to_json(&file_record());
        assert_eq!(
            event["finding_info"]["related_events"][0]["type"],
            "File System Activity: Open"
        );
        assert_eq!(
            event["finding_info"]["related_events"][0]["type_uid"],
            100114
        );
        let evidence = &event["evidences"][0];
        assert_eq!(
            evidence["file"],
            json!({
                "name": "shadow",
                "path": "/etc/shadow",
                "parent_folder": "/etc",
                "type_id": 1,
                "type": "Regular File",
            })
        );
        for absent in ["src_endpoint", "dst_endpoint", "connection_info"] {
            assert!(evidence.get(absent).is_none(), "{absent}");
        }
        assert!(event["unmapped"]["context"].get("fd.name").is_none());
        assert_eq!(event["unmapped"]["context"]["evt.res"], "EACCES");
    }

    #[test]
    fn maps_connection_direction_and_ipv6() {
        let mut record = sample_record(1);
        record.context.insert("evt.type".into(), "connect".into());
        record.context.insert("fd.sip".into(), "2001:db8::7".into());
        let event = to_json(&record);
        assert_eq!(
            event["finding_info"]["related_events"][0]["type"],
            "Network Activity: Open"
        );
        let connection = &event["evidences"][0]["connection_info"];
        assert_eq!(connection["direction_id"], 2);
        assert_eq!(connection["direction"], "Outbound");
        assert_eq!(connection["protocol_ver_id"], 6);
    }

    #[test]
    fn omits_absent_context() {
        let mut record = sample_record(1);
        for field in [
            "container.id",
            "k8s.ns.name",
            "k8s.pod.name",
            "k8s.pod.uid",
            "proc.ppid",
            "proc.pname",
            "proc.pcmdline",
            "proc.exepath",
            "fd.sip.name",
            "evt.type",
        ] {
            record.context.remove(field);
        }
        let event = to_json(&record);
        let process = &event["evidences"][0]["process"];
        for absent in ["container", "parent_process", "file"] {
            assert!(process.get(absent).is_none(), "{absent}");
        }
        assert!(
            event["evidences"][0]["dst_endpoint"]
                .get("hostname")
                .is_none()
        );
        assert!(event["finding_info"].get("related_events").is_none());
        assert_eq!(event["metadata"]["profiles"], json!(["host"]));
        assert!(!event.to_string().contains("null"));
    }

    #[test]
    fn maps_heartbeats_and_starts_to_application_lifecycle() {
        let event = to_json(&heartbeat(42));
        assert_eq!(event["class_uid"], 6002);
        assert_eq!(event["class_name"], "Application Lifecycle");
        assert_eq!(event["category_uid"], 6);
        assert_eq!(event["category_name"], "Application Activity");
        assert_eq!(event["activity_id"], 99);
        assert_eq!(event["activity_name"], "Heartbeat");
        assert_eq!(event["type_uid"], 600299);
        assert_eq!(event["type_name"], "Application Lifecycle: Other");
        assert_eq!(event["severity_id"], 1);
        assert_eq!(event["status"], "Success");
        assert_eq!(event["app"]["name"], "Vigil");
        assert_eq!(event["metadata"]["sequence"], 42);
        assert_eq!(event["metadata"]["log_name"], "vigil");
        assert_eq!(event["unmapped"]["output_fields"]["vigil.seq"], 42);
        for absent in ["finding_info", "evidences", "actor"] {
            assert!(event.get(absent).is_none(), "{absent}");
        }
        assert!(event["unmapped"].get("context").is_none());

        let mut started = heartbeat(43);
        started.kind = RecordKind::AgentStarted;
        let event = to_json(&started);
        assert_eq!(event["class_uid"], 6002);
        assert_eq!(event["activity_id"], 3);
        assert_eq!(event["activity_name"], "Start");
        assert_eq!(event["type_uid"], 600203);
        assert_eq!(event["type_name"], "Application Lifecycle: Start");
    }

    #[test]
    fn maps_agent_health_to_a_detection_finding() {
        let mut health = heartbeat(44);
        health.kind = RecordKind::AgentHealth;
        health.rule = "Vigil alerts dropped".into();
        health.priority = "Error".into();
        health
            .output_fields
            .insert("vigil.dropped".into(), 17.into());
        let event = to_json(&health);
        assert_eq!(event["class_uid"], 2004);
        assert_eq!(event["severity_id"], 4);
        assert_eq!(event["severity"], "High");
        assert_eq!(event["finding_info"]["title"], "Vigil alerts dropped");
        assert_eq!(event["unmapped"]["output_fields"]["vigil.dropped"], 17);
        for absent in ["evidences", "actor"] {
            assert!(event.get(absent).is_none(), "{absent}");
        }
        assert!(event["finding_info"].get("related_events").is_none());
        assert!(event["finding_info"].get("types").is_none());
    }

    #[test]
    fn maps_every_priority() {
        let mut record = sample_record(1);
        for (priority, id, caption) in [
            ("Emergency", 6, "Fatal"),
            ("Alert", 5, "Critical"),
            ("Critical", 5, "Critical"),
            ("Error", 4, "High"),
            ("Warning", 3, "Medium"),
            ("Notice", 2, "Low"),
            ("Informational", 1, "Informational"),
            ("Debug", 1, "Informational"),
        ] {
            record.priority = priority.into();
            let event = to_json(&record);
            assert_eq!(event["severity_id"], id, "{priority}");
            assert_eq!(event["severity"], caption, "{priority}");
        }
    }
}
