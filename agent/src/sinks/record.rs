//! The unit every sink delivers: an alert (or one of the agent's own events) with a stable id,
//! a per-agent sequence number and the standard context fields every format maps from.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{clock::now_unix_ns, rules::alert::Alert};

/// What a record reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A rule matched an event.
    Alert,
    /// The agent is alive; sent every `heartbeat_interval`.
    Heartbeat,
    /// The agent started; carries how long it was down.
    AgentStarted,
    /// The agent itself detected a problem (alerts dropped, a sink failing).
    AgentHealth,
}

impl RecordKind {
    /// The kind's name, as serialised (`alert`, `heartbeat`, `agent_started`,
    /// `agent_health`).
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Alert => "alert",
            RecordKind::Heartbeat => "heartbeat",
            RecordKind::AgentStarted => "agent_started",
            RecordKind::AgentHealth => "agent_health",
        }
    }
}

/// One alert on its way to the sinks. Serialised as JSON into the spool, so every field
/// survives a restart; formats render it at delivery time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Globally unique and stable across retries (a UUID v7), for receivers to de-duplicate.
    pub id: String,
    /// Per-agent sequence number, increasing by one for every record, so receivers can detect
    /// gaps.
    pub seq: u64,
    /// What the record reports.
    pub kind: RecordKind,
    /// The agent's host name.
    pub hostname: String,
    /// The event's time as nanoseconds since the Unix epoch.
    pub time_unix_ns: i64,
    /// The same time, RFC 3339 with nanoseconds, UTC (Falco's `time`).
    pub time: String,
    /// When the rule engine raised the alert (the record was made), nanoseconds since the Unix
    /// epoch: the gap to `time_unix_ns` is the detection latency. 0 in records spooled by a
    /// version that did not note it.
    #[serde(default)]
    pub detected_unix_ns: i64,
    /// The rule name (for agent events, `Vigil heartbeat` and so on).
    pub rule: String,
    /// Falco's capitalisation: `Emergency` ... `Debug`.
    pub priority: String,
    /// Falco's rendered output line (`<time>: <Priority> <text>`).
    pub output: String,
    /// Every field the rule's output references, keyed by Falco field name.
    pub output_fields: Map<String, Value>,
    /// The rule's tags.
    pub tags: Vec<String>,
    /// Falco's event source (`syscall`, or `vigil` for the agent's own events).
    pub source: String,
    /// Standard fields of the event (see [`CONTEXT_FIELDS`]), keyed by Falco field name; a
    /// field the event does not have is absent.
    pub context: Map<String, Value>,
}

/// Fields captured for every alert regardless of the rule's output, so structured formats (ECS,
/// OCSF, CEF) can fill their process, file, network and container sections.
pub const CONTEXT_FIELDS: &[&str] = &[
    "evt.type",
    "evt.res",
    "proc.pid",
    "proc.ppid",
    "proc.name",
    "proc.exepath",
    "proc.cmdline",
    "proc.pname",
    "proc.pcmdline",
    "proc.cwd",
    "proc.tty",
    "user.uid",
    "user.name",
    "user.loginuid",
    "group.gid",
    "fd.name",
    "fd.typechar",
    "fd.l4proto",
    "fd.cip",
    "fd.cport",
    "fd.sip",
    "fd.sport",
    "fd.sip.name",
    "container.id",
    "container.name",
    "container.image.repository",
    "container.image.tag",
    "container.privileged",
    "k8s.ns.name",
    "k8s.pod.name",
    "k8s.pod.uid",
];

/// Falco priorities, most severe first; the index is the syslog severity (0..=7).
pub const PRIORITIES: [&str; 8] = [
    "Emergency",
    "Alert",
    "Critical",
    "Error",
    "Warning",
    "Notice",
    "Informational",
    "Debug",
];

impl Record {
    /// Builds an alert record; `context` holds the [`CONTEXT_FIELDS`] the event had.
    pub fn from_alert(
        alert: &Alert,
        time_unix_ns: i64,
        context: Map<String, Value>,
        id: String,
        seq: u64,
    ) -> Record {
        Record {
            id,
            seq,
            kind: RecordKind::Alert,
            hostname: alert.hostname.to_string(),
            time_unix_ns,
            time: alert.time.clone(),
            detected_unix_ns: now_unix_ns(),
            rule: alert.rule.to_string(),
            priority: alert.priority.to_string(),
            output: alert.output.clone(),
            output_fields: alert.output_fields.clone(),
            tags: alert.tags.to_vec(),
            source: alert.source.to_string(),
            context,
        }
    }

    /// The syslog severity of the priority (0 = Emergency ... 7 = Debug); unknown priorities
    /// count as Warning.
    pub fn severity(&self) -> u8 {
        PRIORITIES
            .iter()
            .position(|p| p.eq_ignore_ascii_case(&self.priority))
            .map_or(4, |index| index as u8)
    }

    /// A context field as text, if present and not null.
    pub fn context_str(&self, field: &str) -> Option<&str> {
        self.context.get(field).and_then(Value::as_str)
    }

    /// A context field as an integer, whether stored as a number or as numeric text.
    pub fn context_i64(&self, field: &str) -> Option<i64> {
        match self.context.get(field)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }
}

/// A record for tests of formats and sinks: an alert of a shell spawned in a container with a
/// connection, every context field filled.
#[doc(hidden)]
pub fn sample_record(seq: u64) -> Record {
    let mut context = Map::new();
    let mut put = |name: &str, value: Value| {
        context.insert(name.to_string(), value);
    };
    put("evt.type", "execve".into());
    put("evt.res", "SUCCESS".into());
    put("proc.pid", 4242.into());
    put("proc.ppid", 4200.into());
    put("proc.name", "bash".into());
    put("proc.exepath", "/usr/bin/bash".into());
    put("proc.cmdline", "bash -i".into());
    put("proc.pname", "nginx".into());
    put("proc.pcmdline", "nginx -g daemon off;".into());
    put("proc.cwd", "/var/www/".into());
    put("proc.tty", 34816.into());
    put("user.uid", 0.into());
    put("user.name", "root".into());
    put("user.loginuid", (-1).into());
    put("group.gid", 0.into());
    put("fd.name", "10.0.0.5:51234->203.0.113.7:4444".into());
    put("fd.typechar", "4".into());
    put("fd.l4proto", "tcp".into());
    put("fd.cip", "10.0.0.5".into());
    put("fd.cport", 51234.into());
    put("fd.sip", "203.0.113.7".into());
    put("fd.sport", 4444.into());
    put("fd.sip.name", "c2.example.net".into());
    put("container.id", "3ad7b26ded6d".into());
    put("container.name", "web-7f9c".into());
    put("container.image.repository", "registry.example/web".into());
    put("container.image.tag", "1.4.2".into());
    put("container.privileged", false.into());
    put("k8s.ns.name", "shop".into());
    put("k8s.pod.name", "web-7f9c-abcde".into());
    put("k8s.pod.uid", "8d0c3b1e-2f59-4a57-9d7a-0c1e2f3a4b5c".into());
    let mut output_fields = Map::new();
    output_fields.insert("proc.cmdline".into(), "bash -i".into());
    output_fields.insert("user.name".into(), "root".into());
    output_fields.insert("container.id".into(), "3ad7b26ded6d".into());
    Record {
        id: format!("0190c1f2-7e4a-7b3c-8d2e-{seq:012x}"),
        seq,
        kind: RecordKind::Alert,
        hostname: "node-1".into(),
        time_unix_ns: 1_700_000_000_123_456_789,
        time: "2023-11-14T22:13:20.123456789Z".into(),
        detected_unix_ns: 1_700_000_000_125_456_789,
        rule: "Shell Launched By Network Service".into(),
        priority: "Warning".into(),
        output: "22:13:20.123456789: Warning Shell spawned under nginx (user=root \
                 cmdline=bash -i container=3ad7b26ded6d)"
            .into(),
        output_fields,
        tags: vec!["container".into(), "shell".into(), "mitre_execution".into()],
        source: "syscall".into(),
        context,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        let record = sample_record(7);
        let text = serde_json::to_string(&record).unwrap();
        let back: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn kind_names_match_their_serialisation() {
        for kind in [
            RecordKind::Alert,
            RecordKind::Heartbeat,
            RecordKind::AgentStarted,
            RecordKind::AgentHealth,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
    }

    #[test]
    fn maps_priorities_to_syslog_severities() {
        let mut record = sample_record(1);
        assert_eq!(record.severity(), 4);
        record.priority = "Critical".into();
        assert_eq!(record.severity(), 2);
        record.priority = "Debug".into();
        assert_eq!(record.severity(), 7);
    }
}
