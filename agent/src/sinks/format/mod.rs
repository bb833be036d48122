//! Alert formats: how a [`Record`] looks on the wire.
//!
//! - [`Format::Falco`]: Falco's `json_output` object, so falcosidekick and existing Falco
//!   pipelines consume Vigil unchanged.
//! - [`Format::Ecs`]: an Elastic Common Schema 9.x document.
//! - [`Format::Ocsf`]: an OCSF 1.1.0 event: a Detection Finding, or an Application Lifecycle
//!   event for the agent's heartbeats and starts.
//! - [`Format::Cef`]: an ArcSight Common Event Format line.
//!
//! Rendering never fails: a field the record lacks is left out rather than written as null.

use std::net::IpAddr;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::record::{Record, RecordKind};

mod cef;
mod ecs;
mod falco;
mod ocsf;

/// The agent version, reported as the producing product's version by every format.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How a sink renders records.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Falco's JSON alert, plus `uuid` (the record id) and `output_fields["vigil.seq"]`.
    #[default]
    Falco,
    /// Elastic Common Schema 9.x.
    Ecs,
    /// Open Cybersecurity Schema Framework 1.1.0.
    Ocsf,
    /// ArcSight Common Event Format.
    Cef,
}

impl Format {
    /// The format's name in configuration: `falco`, `ecs`, `ocsf` or `cef`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Falco => "falco",
            Format::Ecs => "ecs",
            Format::Ocsf => "ocsf",
            Format::Cef => "cef",
        }
    }

    /// Whether records render as JSON objects (every format but CEF).
    pub fn is_json(self) -> bool {
        !matches!(self, Format::Cef)
    }

    /// The record as a JSON object, or `None` for CEF, which is not JSON.
    pub fn to_json(self, record: &Record) -> Option<Value> {
        match self {
            Format::Falco => Some(falco::to_json(record)),
            Format::Ecs => Some(ecs::to_json(record)),
            Format::Ocsf => Some(ocsf::to_json(record)),
            Format::Cef => None,
        }
    }

    /// The record as one line without a trailing newline: compact JSON, or the CEF line.
    pub fn render(self, record: &Record) -> String {
        match self {
            Format::Cef => cef::render(record),
            // JSON escapes control characters, so the text is always a single line.
            json => json
                .to_json(record)
                .map(|value| value.to_string())
                .unwrap_or_default(),
        }
    }

    /// A batch as newline-terminated lines, one record each.
    pub fn render_lines(self, batch: &[Record]) -> String {
        let mut lines = String::new();
        for record in batch {
            lines.push_str(&self.render(record));
            lines.push('\n');
        }
        lines
    }
}

/// A JSON object under construction that leaves out absent values, nulls and empty objects, so
/// documents carry only what the record actually has.
#[derive(Clone, Debug, Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn new() -> Obj {
        Obj::default()
    }

    /// Sets `key` to `value`, unless the value is null or an empty object.
    fn set(mut self, key: &str, value: impl Into<Value>) -> Obj {
        let value = value.into();
        let empty = match &value {
            Value::Null => true,
            Value::Object(map) => map.is_empty(),
            _ => false,
        };
        if !empty {
            self.0.insert(key.to_string(), value);
        }
        self
    }

    /// Sets `key` when `value` is present.
    fn opt(self, key: &str, value: Option<impl Into<Value>>) -> Obj {
        match value {
            Some(value) => self.set(key, value),
            None => self,
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The object, or `None` when nothing was set.
    fn into_option(self) -> Option<Value> {
        (!self.is_empty()).then_some(Value::Object(self.0))
    }
}

impl From<Obj> for Value {
    fn from(obj: Obj) -> Value {
        Value::Object(obj.0)
    }
}

/// A context field as non-empty text.
fn text<'a>(record: &'a Record, field: &str) -> Option<&'a str> {
    record.context_str(field).filter(|value| !value.is_empty())
}

/// A context field as an integer.
fn number(record: &Record, field: &str) -> Option<i64> {
    record.context_i64(field)
}

/// A context field as identifier text (uids, gids), whether the event stored it as a number or
/// as text; schemas type user and group ids as strings.
fn id_text(record: &Record, field: &str) -> Option<String> {
    match record.context.get(field)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A context field as a boolean, whether stored as a boolean or as `true`/`false` text.
fn flag(record: &Record, field: &str) -> Option<bool> {
    match record.context.get(field)? {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

/// A context field that must be an IP address. Schemas type these as IPs and receivers such as
/// Elasticsearch reject the whole document over one malformed value, so anything else is
/// dropped.
fn ip<'a>(record: &'a Record, field: &str) -> Option<(&'a str, IpAddr)> {
    let text = text(record, field)?;
    Some((text, text.parse().ok()?))
}

/// The event's time as milliseconds since the Unix epoch.
fn epoch_ms(record: &Record) -> i64 {
    record.time_unix_ns.div_euclid(1_000_000)
}

/// The event's time in RFC 3339, recomputed from the nanoseconds if the record has no text.
fn timestamp(record: &Record) -> String {
    if record.time.is_empty() {
        crate::output::json::rfc3339(record.time_unix_ns)
    } else {
        record.time.clone()
    }
}

/// When the rule engine raised the alert, RFC 3339; the event's time for records that did not
/// note it.
fn detected_timestamp(record: &Record) -> String {
    if record.detected_unix_ns == 0 {
        timestamp(record)
    } else {
        crate::output::json::rfc3339(record.detected_unix_ns)
    }
}

/// A stable identifier for a rule: `vigil-` and the first 12 hex digits of the SHA-256 of its
/// name, the same on every host and across restarts, so receivers can group alerts by rule.
fn rule_uid(rule: &str) -> String {
    let digest = Sha256::digest(rule.as_bytes());
    format!("vigil-{}", hex::encode(&digest[..6]))
}

/// The event name for the agent's own records, which have no `evt.type`.
fn agent_action(kind: RecordKind) -> Option<&'static str> {
    match kind {
        RecordKind::Alert => None,
        RecordKind::Heartbeat => Some("heartbeat"),
        RecordKind::AgentStarted => Some("agent_started"),
        RecordKind::AgentHealth => Some("agent_health"),
    }
}

/// The id of the container the process runs in; `None` on the host, which Falco reports as the
/// container id `host`.
fn container_id(record: &Record) -> Option<&str> {
    text(record, "container.id").filter(|id| *id != "host")
}

/// The container image as `repository:tag`, or just the repository.
fn image_reference(record: &Record) -> Option<String> {
    let repository = text(record, "container.image.repository")?;
    Some(match text(record, "container.image.tag") {
        Some(tag) => format!("{repository}:{tag}"),
        None => repository.to_string(),
    })
}

/// Whether the event carries any Kubernetes field.
fn in_kubernetes(record: &Record) -> bool {
    ["k8s.ns.name", "k8s.pod.name", "k8s.pod.uid"]
        .iter()
        .any(|field| text(record, field).is_some())
}

/// The path of the file the event acted on: `fd.name` when the descriptor is a file or a
/// directory, or when a file event has no descriptor type. Other descriptors (sockets, pipes)
/// also have an `fd.name`, which is not a path.
fn file_path(record: &Record) -> Option<&str> {
    let name = text(record, "fd.name")?;
    match text(record, "fd.typechar") {
        Some("f" | "d") => Some(name),
        Some(_) => None,
        None => (record_activity(record)?.family == Family::File).then_some(name),
    }
}

/// Whether the event's descriptor is a directory.
fn is_directory(record: &Record) -> bool {
    text(record, "fd.typechar") == Some("d")
}

/// The last component of a path (`/` for the root).
fn base_name(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((_, name)) => name,
        None if trimmed.is_empty() => path,
        None => trimmed,
    }
}

/// The directory holding a path, if the path names one.
fn dir_name(path: &str) -> Option<&str> {
    let (dir, _) = path.trim_end_matches('/').rsplit_once('/')?;
    Some(if dir.is_empty() { "/" } else { dir })
}

/// The IANA protocol number of a Falco `fd.l4proto`.
fn iana_number(l4proto: &str) -> Option<u8> {
    match l4proto.to_ascii_lowercase().as_str() {
        "icmp" => Some(1),
        "tcp" => Some(6),
        "udp" => Some(17),
        _ => None,
    }
}

/// Whether the syscall succeeded, from Falco's `evt.res` (`SUCCESS`, an errno name, or a
/// number). `None` when unknown: absent, unreadable, or `EINPROGRESS`, a non-blocking connect
/// still under way.
fn succeeded(record: &Record) -> Option<bool> {
    match record.context.get("evt.res")? {
        Value::String(res) if res == "SUCCESS" => Some(true),
        Value::String(res) if res == "EINPROGRESS" => None,
        Value::String(res) => match res.parse::<i64>() {
            Ok(code) => Some(code >= 0),
            Err(_) => res.starts_with('E').then_some(false),
        },
        Value::Number(code) => code.as_i64().map(|code| code >= 0),
        _ => None,
    }
}

/// The kind of system activity behind an event type; structured formats categorise by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Process,
    File,
    Network,
}

/// What an event type does, in each schema's vocabulary.
#[derive(Clone, Copy, Debug)]
struct Activity {
    family: Family,
    /// The OCSF `activity_id` within the family's class (99 is Other).
    ocsf_id: u8,
    /// The OCSF caption of that activity.
    ocsf_name: &'static str,
    /// ECS `event.type` values, all allowed for the family's `event.category`.
    ecs_types: &'static [&'static str],
}

/// The activity of a Falco event type; `None` for types no schema category fits (`bpf`,
/// `init_module`, `dup`, ...).
fn activity(evt_type: &str) -> Option<Activity> {
    use Family::{File, Network, Process};
    let (family, ocsf_id, ocsf_name, ecs_types): (Family, u8, &str, &[&str]) = match evt_type {
        "execve" | "execveat" | "procexec" | "fork" | "vfork" | "clone" | "clone3" | "procfork" => {
            (Process, 1, "Launch", &["start"])
        }
        "procexit" | "exit" | "exit_group" => (Process, 2, "Terminate", &["end"]),
        "ptrace" | "process_vm_writev" => (Process, 4, "Inject", &["change"]),
        "setuid" | "setreuid" | "setresuid" => (Process, 5, "Set User ID", &["change"]),
        "setgid" | "setregid" | "setresgid" | "setns" | "unshare" | "capset" => {
            (Process, 99, "Other", &["change"])
        }
        "open" | "openat" | "openat2" | "open_by_handle_at" => (File, 14, "Open", &["access"]),
        "creat" | "mkdir" | "mkdirat" | "link" | "linkat" | "symlink" | "symlinkat" | "mknod"
        | "mknodat" | "memfd_create" => (File, 1, "Create", &["creation"]),
        "truncate" | "ftruncate" => (File, 3, "Update", &["change"]),
        "unlink" | "unlinkat" | "rmdir" => (File, 4, "Delete", &["deletion"]),
        "rename" | "renameat" | "renameat2" => (File, 5, "Rename", &["change"]),
        "utimes" | "utimensat" | "setxattr" | "lsetxattr" | "fsetxattr" => {
            (File, 6, "Set Attributes", &["change"])
        }
        // Mode and ownership are a Unix file's security descriptor.
        "chmod" | "fchmod" | "fchmodat" | "chown" | "fchown" | "fchownat" | "lchown" => {
            (File, 7, "Set Security", &["change"])
        }
        "mount" => (File, 12, "Mount", &["change"]),
        "umount" | "umount2" => (File, 13, "Unmount", &["change"]),
        "connect" | "accept" | "accept4" => (Network, 1, "Open", &["connection", "start"]),
        "shutdown" => (Network, 2, "Close", &["connection", "end"]),
        "sendto" | "sendmsg" | "sendmmsg" | "recvfrom" | "recvmsg" | "recvmmsg" => {
            (Network, 6, "Traffic", &["connection"])
        }
        // OCSF 1.1.0 has no Listen activity (it arrived in 1.3.0).
        "listen" => (Network, 99, "Other", &["start"]),
        "bind" | "socket" => (Network, 99, "Other", &["info"]),
        _ => return None,
    };
    Some(Activity {
        family,
        ocsf_id,
        ocsf_name,
        ecs_types,
    })
}

/// The activity of the record's event, if it has a classifiable `evt.type`.
fn record_activity(record: &Record) -> Option<Activity> {
    text(record, "evt.type").and_then(activity)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sinks::record::sample_record;

    /// A heartbeat as the agent emits it: no context, source `vigil`.
    pub(crate) fn heartbeat(seq: u64) -> Record {
        let mut output_fields = Map::new();
        output_fields.insert("vigil.seq".into(), seq.into());
        Record {
            id: format!("0190c1f2-7e4a-7b3c-8d2e-{seq:012x}"),
            seq,
            kind: RecordKind::Heartbeat,
            hostname: "node-1".into(),
            time_unix_ns: 1_700_000_060_000_000_000,
            time: "2023-11-14T22:14:20.000000000Z".into(),
            detected_unix_ns: 1_700_000_060_000_000_000,
            rule: "Vigil heartbeat".into(),
            priority: "Informational".into(),
            output: "22:14:20.000000000: Informational Vigil heartbeat".into(),
            output_fields,
            tags: Vec::new(),
            source: "vigil".into(),
            context: Map::new(),
        }
    }

    /// The sample alert reworked into a file event: `openat` of `/etc/shadow`, failed.
    pub(crate) fn file_record() -> Record {
        let mut record = sample_record(3);
        let mut put = |name: &str, value: Value| {
            record.context.insert(name.to_string(), value);
        };
        put("evt.type", "openat".into());
        put("evt.res", "EACCES".into());
        put("fd.name", "/etc/shadow".into());
        put("fd.typechar", "f".into());
        for field in [
            "fd.l4proto",
            "fd.cip",
            "fd.cport",
            "fd.sip",
            "fd.sport",
            "fd.sip.name",
        ] {
            record.context.remove(field);
        }
        record
    }

    #[test]
    fn names_and_kinds() {
        assert_eq!(Format::default(), Format::Falco);
        for (format, name) in [
            (Format::Falco, "falco"),
            (Format::Ecs, "ecs"),
            (Format::Ocsf, "ocsf"),
            (Format::Cef, "cef"),
        ] {
            assert_eq!(format.name(), name);
            assert_eq!(format.is_json(), format != Format::Cef);
            let parsed: Format = serde_json::from_value(Value::from(name)).unwrap();
            assert_eq!(parsed, format);
            assert_eq!(serde_json::to_value(format).unwrap(), Value::from(name));
        }
        assert!(serde_json::from_value::<Format>(Value::from("xml")).is_err());
    }

    #[test]
    fn json_formats_render_one_parseable_line() {
        let mut hostile = sample_record(9);
        hostile.rule = "quote \" newline \n tab \t nul \u{0} bell \u{7}".into();
        hostile.output = "line one\r\nline two".into();
        hostile
            .context
            .insert("proc.cmdline".into(), "sh -c 'echo \"x\"\n'".into());
        for format in [Format::Falco, Format::Ecs, Format::Ocsf] {
            for record in [
                sample_record(1),
                heartbeat(2),
                file_record(),
                hostile.clone(),
            ] {
                let line = format.render(&record);
                assert!(!line.contains(['\n', '\r']), "{format:?}: {line}");
                let parsed: Value = serde_json::from_str(&line).unwrap();
                assert_eq!(Some(parsed), format.to_json(&record));
            }
        }
        assert_eq!(Format::Cef.to_json(&sample_record(1)), None);
        assert!(Format::Cef.render(&sample_record(1)).starts_with("CEF:0|"));
    }

    #[test]
    fn renders_records_without_any_context() {
        let mut bare = sample_record(1);
        bare.context.clear();
        bare.output_fields.clear();
        bare.tags.clear();
        bare.time.clear();
        for format in [Format::Falco, Format::Ecs, Format::Ocsf, Format::Cef] {
            assert!(!format.render(&bare).is_empty());
        }
    }

    #[test]
    fn rule_uid_is_stable_and_short() {
        let uid = rule_uid("Shell Launched By Network Service");
        assert_eq!(uid.len(), "vigil-".len() + 12);
        assert!(uid.starts_with("vigil-"));
        assert!(uid[6..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(uid, rule_uid("Shell Launched By Network Service"));
        assert_ne!(uid, rule_uid("Another rule"));
        // SHA-256("") starts e3b0c44298fc.
        assert_eq!(rule_uid(""), "vigil-e3b0c44298fc");
    }

    #[test]
    fn splits_paths() {
        assert_eq!(base_name("/etc/shadow"), "shadow");
        assert_eq!(dir_name("/etc/shadow"), Some("/etc"));
        assert_eq!(base_name("/var/www/"), "www");
        assert_eq!(dir_name("/var/www/"), Some("/var"));
        assert_eq!(base_name("/shadow"), "shadow");
        assert_eq!(dir_name("/shadow"), Some("/"));
        assert_eq!(base_name("/"), "/");
        assert_eq!(dir_name("/"), None);
        assert_eq!(base_name("relative"), "relative");
        assert_eq!(dir_name("relative"), None);
    }

    #[test]
    fn reads_syscall_outcomes() {
        let mut record = sample_record(1);
        assert_eq!(succeeded(&record), Some(true));
        for (res, outcome) in [
            (Value::from("ENOENT"), Some(false)),
            (Value::from("EINPROGRESS"), None),
            (Value::from("-41"), Some(false)),
            (Value::from("3"), Some(true)),
            (Value::from(-13), Some(false)),
            (Value::from(0), Some(true)),
            (Value::Null, None),
            (Value::from("garbage"), None),
        ] {
            record.context.insert("evt.res".into(), res);
            assert_eq!(succeeded(&record), outcome);
        }
        record.context.remove("evt.res");
        assert_eq!(succeeded(&record), None);
    }

    #[test]
    fn classifies_event_types() {
        let exec = activity("execve").unwrap();
        assert_eq!(
            (exec.family, exec.ocsf_id, exec.ocsf_name),
            (Family::Process, 1, "Launch")
        );
        assert_eq!(activity("openat").unwrap().family, Family::File);
        assert_eq!(activity("connect").unwrap().family, Family::Network);
        assert!(activity("bpf").is_none());
        assert!(activity("").is_none());
    }

    #[test]
    fn finds_file_paths_only_for_files() {
        assert_eq!(file_path(&file_record()), Some("/etc/shadow"));
        // A socket's fd.name is a connection tuple, not a path.
        assert_eq!(file_path(&sample_record(1)), None);
        let mut untyped = file_record();
        untyped.context.remove("fd.typechar");
        assert_eq!(file_path(&untyped), Some("/etc/shadow"));
        untyped.context.insert("evt.type".into(), "connect".into());
        assert_eq!(file_path(&untyped), None);
    }

    #[test]
    fn obj_drops_absent_values() {
        let value: Value = Obj::new()
            .set("a", 1)
            .set("null", Value::Null)
            .set("empty", Obj::new())
            .opt("none", None::<i64>)
            .opt("some", Some("x"))
            .into();
        assert_eq!(value, serde_json::json!({"a": 1, "some": "x"}));
        assert_eq!(Obj::new().into_option(), None);
    }
}
