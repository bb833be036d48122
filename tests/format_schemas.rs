//! ECS and OCSF output checked against the official definitions: Elastic's generated field
//! table (`@elastic/ecs` on npm) and the OCSF 1.1.0 JSON Schemas (`ocsf-json-schema` on PyPI,
//! validated with `jsonschema`). `cargo xtask bootstrap` installs both under the target
//! directory and `cargo xtask test` passes their location in `VIGIL_SCHEMA_TOOLS`; the
//! validators themselves live in `tests/schemas/`.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::{Map, Value, json};
use vigil::sinks::{
    format::Format,
    record::{Record, RecordKind, sample_record},
};

/// Where `cargo xtask bootstrap` installed the validators' dependencies.
const TOOLS_ENV: &str = "VIGIL_SCHEMA_TOOLS";

#[test]
fn ecs_documents_follow_the_ecs_field_definitions() {
    let node_modules = installed(&["ecs", "node_modules"], "@elastic/ecs/package.json");
    let documents = Documents::write(Format::Ecs);
    let mut cmd = Command::new("node");
    cmd.env("NODE_PATH", node_modules)
        .arg(validator("validate_ecs.js"))
        .arg(&documents.path);
    documents.expect_valid("ECS", &mut cmd);
}

#[test]
fn ocsf_events_follow_the_ocsf_1_1_0_schemas() {
    let bin = installed(&["venv", "bin"], "python3");
    let documents = Documents::write(Format::Ocsf);
    let mut cmd = Command::new(bin.join("python3"));
    cmd.arg(validator("validate_ocsf.py")).arg(&documents.path);
    documents.expect_valid("OCSF", &mut cmd);
}

/// The directory `parts` under the schema tools, checked to hold `needed`. Fails loudly when the
/// tools are not installed: a schema test that quietly skipped would vouch for formats nobody
/// checked.
fn installed(parts: &[&str], needed: &str) -> PathBuf {
    let Some(tools) = std::env::var_os(TOOLS_ENV).filter(|dir| !dir.is_empty()) else {
        panic!(
            "{TOOLS_ENV} is not set: it names the directory where `cargo xtask bootstrap` \
             installs the schema validators' dependencies; run these tests with \
             `cargo xtask test`, or run `cargo xtask bootstrap` and set {TOOLS_ENV} to \
             <target dir>/schema-tools"
        );
    };
    let tools = PathBuf::from(tools);
    let dir = parts.iter().fold(tools.clone(), |dir, part| dir.join(part));
    assert!(
        dir.join(needed).exists(),
        "{} is missing: {TOOLS_ENV}={} does not hold the schema tools; run \
         `cargo xtask bootstrap` (or `cargo xtask test`, which runs it)",
        dir.join(needed).display(),
        tools.display()
    );
    dir
}

fn validator(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name)
}

/// Every record variant rendered in one format, one JSON document a line, in a temporary
/// directory that lives as long as this value.
struct Documents {
    /// Which variant each line is.
    names: Vec<&'static str>,
    /// The lines, for the failure message: the file is gone once the test ends.
    lines: Vec<String>,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Documents {
    fn write(format: Format) -> Documents {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let path = dir.path().join(format!("{}.jsonl", format.name()));
        let (names, lines): (Vec<_>, Vec<_>) = records()
            .into_iter()
            .map(|(name, record)| (name, format.render(&record)))
            .unzip();
        for (name, line) in names.iter().zip(&lines) {
            assert!(!line.is_empty(), "{format:?} rendered nothing for {name}");
        }
        let mut file = std::fs::File::create(&path).expect("create the documents file");
        for line in &lines {
            writeln!(file, "{line}").expect("write a document");
        }
        file.flush().expect("flush the documents file");
        Documents {
            names,
            lines,
            path,
            _dir: dir,
        }
    }

    /// Runs a validator on the documents and fails with everything it printed, and the
    /// documents themselves, unless it accepted every one.
    fn expect_valid(&self, schema: &str, cmd: &mut Command) {
        let output: Output = cmd
            .output()
            .unwrap_or_else(|err| panic!("could not start the {schema} validator {cmd:?}: {err}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let listing: String = self
            .names
            .iter()
            .zip(&self.lines)
            .enumerate()
            .map(|(index, (name, line))| format!("document {index} ({name}):\n  {line}\n"))
            .collect();
        assert!(
            output.status.success(),
            "{schema} validation failed ({}):\n{stdout}{stderr}\n{listing}",
            output.status
        );
        // A validator that read nothing would succeed too, so it reports how many it checked.
        let expected = format!(": {} documents valid", self.lines.len());
        assert!(
            stdout.contains(&expected),
            "the {schema} validator did not report `{expected}`:\n{stdout}{stderr}"
        );
    }
}

/// Every shape of record the agent emits: alerts of each activity family, in a container and
/// on the host, and the agent's own heartbeat, start and health reports.
fn records() -> Vec<(&'static str, Record)> {
    vec![
        ("exec in a container", sample_record(1)),
        ("file open in a container", file_open()),
        ("IPv6 connect on the host", host_connect()),
        ("heartbeat", heartbeat()),
        ("first start (down time unknown)", agent_started(None)),
        ("start after an unclean stop", agent_started(Some(42.125))),
        ("sink delivery failing", agent_health()),
    ]
}

/// `openat` of a file that failed with EACCES; the descriptor is a file, so no network fields.
fn file_open() -> Record {
    let mut record = sample_record(2);
    record.rule = "Read sensitive file untrusted".into();
    record.output = "22:13:20.123456789: Warning Sensitive file opened for reading \
                     (file=/etc/shadow)"
        .into();
    set(&mut record, "evt.type", "openat");
    set(&mut record, "evt.res", "EACCES");
    set(&mut record, "fd.name", "/etc/shadow");
    set(&mut record, "fd.typechar", "f");
    remove(&mut record, NETWORK_FIELDS);
    record.output_fields = fields([("fd.name", json!("/etc/shadow"))]);
    record
}

/// A non-blocking `connect` over IPv6 by a process on the host (Falco's container id `host`).
fn host_connect() -> Record {
    let mut record = sample_record(3);
    record.rule = "Outbound connection to C2 server".into();
    record.output = "22:13:20.123456789: Warning Outbound connection \
                     (connection=[2001:db8::5]:40000->[2001:db8::7]:443)"
        .into();
    set(&mut record, "evt.type", "connect");
    set(&mut record, "evt.res", "EINPROGRESS");
    set(&mut record, "proc.name", "curl");
    set(&mut record, "proc.exepath", "/usr/bin/curl");
    set(&mut record, "proc.cmdline", "curl https://c2.example.net/");
    set(&mut record, "proc.tty", 0);
    set(
        &mut record,
        "fd.name",
        "[2001:db8::5]:40000->[2001:db8::7]:443",
    );
    set(&mut record, "fd.typechar", "6");
    set(&mut record, "fd.cip", "2001:db8::5");
    set(&mut record, "fd.cport", 40000);
    set(&mut record, "fd.sip", "2001:db8::7");
    set(&mut record, "fd.sport", 443);
    set(&mut record, "container.id", "host");
    remove(
        &mut record,
        &[
            "container.name",
            "container.image.repository",
            "container.image.tag",
            "container.privileged",
            "k8s.ns.name",
            "k8s.pod.name",
            "k8s.pod.uid",
        ],
    );
    record.tags = vec!["network".into(), "mitre_command_and_control".into()];
    record.output_fields = fields([
        ("fd.name", json!("[2001:db8::5]:40000->[2001:db8::7]:443")),
        ("proc.name", json!("curl")),
    ]);
    record
}

/// The agent's own records, as the dispatcher builds them: source `vigil`, no context.
fn agent_record(kind: RecordKind, rule: &str, priority: &str, tag: &str) -> Record {
    let mut record = sample_record(10);
    record.kind = kind;
    record.rule = rule.into();
    record.priority = priority.into();
    record.output = format!("22:13:20.123456789: {priority} {rule}");
    record.tags = vec!["vigil".into(), tag.into()];
    record.source = "vigil".into();
    record.context = Map::new();
    record.output_fields = fields([("vigil.version", json!("0.1.0"))]);
    record
}

fn heartbeat() -> Record {
    let mut record = agent_record(
        RecordKind::Heartbeat,
        "Vigil heartbeat",
        "Informational",
        "heartbeat",
    );
    record.output_fields.extend(fields([
        ("vigil.seq", json!(10)),
        ("vigil.uptime_seconds", json!(3600)),
    ]));
    record
}

fn agent_started(down_seconds: Option<f64>) -> Record {
    let (priority, stop) = match down_seconds {
        Some(_) => ("Warning", "unclean"),
        None => ("Notice", "unknown"),
    };
    let mut record = agent_record(
        RecordKind::AgentStarted,
        "Vigil agent started",
        priority,
        "lifecycle",
    );
    record.output_fields.extend(fields([
        ("vigil.down_seconds", json!(down_seconds)),
        ("vigil.previous_stop", json!(stop)),
    ]));
    record
}

fn agent_health() -> Record {
    let mut record = agent_record(
        RecordKind::AgentHealth,
        "Vigil sink delivery failing",
        "Error",
        "health",
    );
    record.output_fields.extend(fields([
        ("vigil.sink", json!("siem")),
        ("vigil.error", json!("connection refused")),
        ("vigil.failing_seconds", json!(30.5)),
        ("vigil.queued", json!(12)),
    ]));
    record
}

const NETWORK_FIELDS: &[&str] = &[
    "fd.l4proto",
    "fd.cip",
    "fd.cport",
    "fd.sip",
    "fd.sport",
    "fd.sip.name",
];

fn set(record: &mut Record, field: &str, value: impl Into<Value>) {
    record.context.insert(field.to_string(), value.into());
}

fn remove(record: &mut Record, names: &[&str]) {
    for name in names {
        record.context.remove(*name);
    }
}

fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
}
