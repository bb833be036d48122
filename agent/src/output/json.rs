//! Enriched events as JSON objects keyed by Falco field names (`evt.type`, `proc.name`,
//! `fd.name`, ...), one object per line.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::{
    enrich::Enriched,
    events::{EventKind, args, render},
    state::fd::FdInfo,
};

/// Falco's `evt.time` rendering for JSON: RFC 3339, nanoseconds, UTC.
pub fn rfc3339(time_ns: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(time_ns).to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// The key under which a trace line carries the whole event, for `vigil replay`.
pub const RECORD_KEY: &str = "vigil.event";

/// The event as a JSON object: Falco-named fields for people and tools, plus the complete event
/// under [`RECORD_KEY`] so rules can be replayed over it exactly.
pub fn to_json(event: &Enriched) -> Value {
    let mut value = to_fields(event);
    if let (Value::Object(map), Ok(record)) = (&mut value, serde_json::to_value(event)) {
        map.insert(RECORD_KEY.to_string(), record);
    }
    value
}

/// Reads back an event written by [`to_json`].
pub fn from_json(line: &Value) -> Result<Enriched, serde_json::Error> {
    let record = line.get(RECORD_KEY).cloned().unwrap_or(Value::Null);
    serde_json::from_value(record)
}

/// The Falco-named fields of the event.
pub fn to_fields(event: &Enriched) -> Value {
    let mut out = Map::new();
    let mut put = |key: &str, value: Value| {
        out.insert(key.to_string(), value);
    };
    let task = &event.event.task;
    let proc = &event.process;
    put("evt.num", json!(event.num));
    put("evt.time", json!(rfc3339(event.time_ns)));
    put("evt.rawtime", json!(event.time_ns));
    put("evt.type", json!(event.event.type_name()));
    put("evt.dir", json!("<"));
    if event.event.flags != 0 {
        put("evt.flags", json!(event.event.flags));
    }
    match &event.event.kind {
        EventKind::Syscall(call) => {
            put("evt.res", json!(render::render_res(call.ret)));
            put("evt.rawres", json!(call.ret));
            put("evt.args", json!(args::render_args(call)));
            for param in call.spec.params {
                put(
                    &format!("evt.arg.{}", param.name),
                    json!(args::render_param(call, param)),
                );
            }
        }
        EventKind::Fork {
            child_pid,
            child_ppid,
        } => {
            put("evt.arg.child_pid", json!(child_pid));
            put("evt.arg.child_ppid", json!(child_ppid));
        }
        EventKind::Exec { old_tid, filename } => {
            put("evt.arg.filename", json!(filename));
            put("evt.arg.old_tid", json!(old_tid));
        }
        EventKind::Exit | EventKind::Dns(_) => {}
        EventKind::Egress(decision) => {
            put("fd.sip", json!(decision.addr.to_string()));
            put("fd.sport", json!(decision.port));
            put("evt.arg.policy", json!(decision.policy));
            put("evt.arg.syscall", json!(decision.hook.syscall()));
            put(
                "evt.arg.verdict",
                json!(if decision.blocked {
                    "blocked"
                } else {
                    "monitored"
                }),
            );
        }
    }

    put("proc.pid", json!(proc.pid));
    put("thread.tid", json!(task.tid));
    put("proc.vpid", json!(proc.vpid));
    put("proc.ppid", json!(proc.ppid));
    put("proc.name", json!(proc.comm));
    put("proc.exe", json!(proc.exe));
    put("proc.exepath", json!(proc.exepath));
    put("proc.args", json!(proc.args_line()));
    put("proc.cmdline", json!(proc.cmdline()));
    put("proc.cwd", json!(proc.cwd));
    put("proc.tty", json!(proc.tty));
    put("proc.sid", json!(proc.sid));
    put("proc.is_exe_from_memfd", json!(proc.exe_from_memfd));
    let parent = event.ancestors.first();
    put("proc.pname", json!(parent.map(|p| p.comm.as_str())));
    put("proc.pexepath", json!(parent.map(|p| p.exepath.as_str())));
    put("proc.pcmdline", json!(parent.map(|p| p.cmdline())));
    put(
        "proc.aname",
        Value::Array(event.ancestors.iter().map(|p| json!(p.comm)).collect()),
    );
    put(
        "proc.apid",
        Value::Array(event.ancestors.iter().map(|p| json!(p.pid)).collect()),
    );
    put(
        "thread.cap_effective",
        json!(render::capabilities(proc.caps.effective)),
    );
    put(
        "thread.cap_permitted",
        json!(render::capabilities(proc.caps.permitted)),
    );

    put("user.uid", json!(proc.uid));
    put("user.name", json!(event.user_name.as_deref()));
    put("user.loginuid", json!(proc.loginuid.map_or(-1, i64::from)));
    put("user.loginname", json!(event.login_name.as_deref()));
    put("group.gid", json!(proc.gid));
    put("group.name", json!(event.group_name.as_deref()));

    match &proc.container {
        Some(container) => {
            put("container.id", json!(container.short_id()));
            put("container.full_id", json!(container.full_id));
            put("container.type", json!(container.runtime.as_str()));
        }
        None => put("container.id", json!("host")),
    }
    put("cgroup.id", json!(task.cgroup_id));
    put("cgroup.path", json!(proc.cgroup_path.as_deref()));

    if let Some(fd) = &event.fd {
        put("fd.num", json!(fd.num));
        if let Some(info) = &fd.info {
            put_fd(&mut out, info, fd.filename());
        }
    }
    Value::Object(out)
}

fn put_fd(out: &mut Map<String, Value>, info: &FdInfo, filename: Option<&str>) {
    let mut put = |key: &str, value: Value| {
        out.insert(key.to_string(), value);
    };
    put("fd.name", json!(info.name));
    put("fd.nameraw", json!(info.nameraw));
    put("fd.type", json!(info.kind.name()));
    put("fd.typechar", json!(info.kind.typechar().to_string()));
    if let Some(directory) = info.directory() {
        put("fd.directory", json!(directory));
    }
    if let Some(filename) = filename {
        put("fd.filename", json!(filename));
    }
    if let Some(socket) = &info.socket {
        if info.kind.is_inet() {
            put("fd.sockfamily", json!("ip"));
        } else if info.kind == crate::state::fd::FdType::Unix {
            put("fd.sockfamily", json!("unix"));
        }
        if let Some(proto) = socket.proto {
            put("fd.l4proto", json!(proto.as_str()));
        }
        if let Some(client) = socket.client() {
            put("fd.cip", json!(client.ip().to_string()));
            put("fd.cport", json!(client.port()));
        }
        if let Some(server) = socket.server() {
            put("fd.sip", json!(server.ip().to_string()));
            put("fd.sport", json!(server.port()));
        }
        if let Some(local) = socket.local {
            put("fd.lip", json!(local.ip().to_string()));
            put("fd.lport", json!(local.port()));
        }
        if let Some(remote) = socket.remote {
            put("fd.rip", json!(remote.ip().to_string()));
            put("fd.rport", json!(remote.port()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        use crate::events::{decode::decode, synth::RecordBuilder, syscalls::Syscall};
        let mut enricher = crate::testing::detached_enricher();
        let record = RecordBuilder::new(Syscall::Openat, 9, 3)
            .arg(0, -100i64 as u64)
            .string(0, "/etc/passwd")
            .build();
        let event = enricher.enrich(decode(&record).unwrap());
        let line = to_json(&event);
        assert_eq!(line["fd.name"], "/etc/passwd");
        let back = from_json(&serde_json::from_str(&line.to_string()).unwrap()).unwrap();
        assert_eq!(back.event, event.event);
        assert_eq!(back.process, event.process);
        assert_eq!(back.fd, event.fd);
    }

    #[test]
    fn a_failed_open_shows_the_path_it_tried_without_a_file_name() {
        use crate::events::{decode::decode, synth::RecordBuilder, syscalls::Syscall};
        let mut enricher = crate::testing::detached_enricher();
        let record = RecordBuilder::new(Syscall::Openat, 9, -(libc::ENOENT as i64))
            .arg(0, -100i64 as u64)
            .string(0, "/etc/missing")
            .build();
        let line = to_json(&enricher.enrich(decode(&record).unwrap()));
        assert_eq!(line["fd.num"], -1);
        assert_eq!(line["fd.name"], "/etc/missing");
        assert_eq!(line["fd.directory"], "/etc");
        assert!(line.get("fd.filename").is_none(), "{line}");
    }

    #[test]
    fn formats_time_like_falco() {
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
    }
}
