//! A one-line human rendering of an enriched event, for `vigil trace` without `--json`.

use crate::{
    enrich::Enriched,
    events::{EventKind, args, render},
};

use super::json::rfc3339;

/// `time proc(pid) container type args = res [fd]`.
pub fn to_line(event: &Enriched) -> String {
    let proc = &event.process;
    let container = proc
        .container
        .as_ref()
        .map_or("host", |container| container.short_id());
    let mut line = format!(
        "{} {}({}) [{}] {}",
        rfc3339(event.time_ns),
        proc.comm,
        proc.pid,
        container,
        event.event.type_name()
    );
    match &event.event.kind {
        EventKind::Syscall(call) => {
            line.push(' ');
            line.push_str(&args::render_args(call));
            line.push_str(" = ");
            line.push_str(&render::render_res(call.ret));
        }
        EventKind::Fork { child_pid, .. } => line.push_str(&format!(" child={child_pid}")),
        EventKind::Exec { filename, .. } => line.push_str(&format!(" filename={filename}")),
        EventKind::Exit | EventKind::Dns(_) => {}
        EventKind::Egress(decision) => line.push_str(&format!(
            " egress={}:{} policy={} {}",
            decision.addr,
            decision.port,
            decision.policy,
            if decision.blocked {
                "blocked"
            } else {
                "monitored"
            }
        )),
    }
    if let Some(info) = event.fd.as_ref().and_then(|fd| fd.info.as_ref())
        && !info.name.is_empty()
    {
        line.push_str(&format!(" fd={}", info.name));
    }
    line
}
