//! The agent watching itself: another process that signals it or attaches to it with ptrace is
//! reported to the sinks (`Vigil agent signalled`, `Vigil agent traced`), since stopping or
//! tampering with the detector is what an intruder does first.
//!
//! The kernel side drops the agent's own syscalls, not calls of others aimed at it, so this is
//! a look at events that are already there. A SIGKILL cannot be reported by the agent it kills;
//! the next agent's `Vigil agent started` record (previous stop unclean) tells of it.

use std::path::Path;

use serde_json::{Map, Value};

use crate::{
    enrich::Enriched,
    events::{EventKind, ParamValue, syscalls::Syscall},
    rules::loader::Priority,
    sinks::dispatcher::AgentNotice,
};

/// Rule name of the record about a signal sent to the agent.
pub const SIGNALLED: &str = "Vigil agent signalled";
/// Rule name of the record about a ptrace attach to the agent.
pub const TRACED: &str = "Vigil agent traced";

/// ptrace requests that take control of the target.
const ATTACHING: &[u64] = &[
    libc::PTRACE_ATTACH as u64,
    libc::PTRACE_SEIZE as u64,
    libc::PTRACE_INTERRUPT as u64,
];

/// Recognises calls of other processes aimed at this agent.
pub struct SelfWatch {
    pid: u32,
    /// Where to look up whether a thread id is one of ours (`/proc/self/task`).
    tasks: Box<Path>,
}

impl SelfWatch {
    /// Watches for calls aimed at process `pid` (the agent's own).
    pub fn new(pid: u32) -> SelfWatch {
        SelfWatch {
            pid,
            tasks: Path::new(&format!("/proc/{pid}/task")).into(),
        }
    }

    fn is_ours(&self, pid: i32, thread: bool) -> bool {
        if pid <= 0 {
            return false;
        }
        let pid = pid as u32;
        pid == self.pid || (thread && self.tasks.join(pid.to_string()).exists())
    }

    /// The notice for `event`, if it is another process signalling or tracing the agent.
    pub fn check(&self, event: &Enriched) -> Option<AgentNotice> {
        let EventKind::Syscall(call) = &event.event.kind else {
            return None;
        };
        if event.event.task.pid == self.pid || !call.succeeded() {
            return None;
        }
        let num = |name: &str| match call.param(name) {
            Some(ParamValue::Num(value)) => Some(value),
            _ => None,
        };
        match call.spec.syscall {
            Syscall::Kill | Syscall::Tkill | Syscall::Tgkill => {
                let (target, thread) = match call.spec.syscall {
                    Syscall::Kill => (num("pid")? as i32, false),
                    Syscall::Tkill => (num("tid")? as i32, true),
                    _ => (num("pid")? as i32, false),
                };
                let signal = num("sig")? as i32;
                // Signal 0 only asks whether the process exists.
                if signal == 0 || !self.is_ours(target, thread) {
                    return None;
                }
                Some(self.signalled(event, signal))
            }
            Syscall::Ptrace => {
                let request = num("request")?;
                let target = num("pid")? as i32;
                if !ATTACHING.contains(&request) || !self.is_ours(target, true) {
                    return None;
                }
                Some(self.traced(event, request))
            }
            _ => None,
        }
    }

    fn signalled(&self, event: &Enriched, signal: i32) -> AgentNotice {
        let name = signal_name(signal);
        let priority = match signal {
            libc::SIGKILL | libc::SIGSTOP | libc::SIGSEGV | libc::SIGABRT => Priority::Critical,
            libc::SIGTERM | libc::SIGINT | libc::SIGQUIT | libc::SIGTSTP => Priority::Warning,
            _ => Priority::Notice,
        };
        let mut fields = sender_fields(event);
        fields.insert("vigil.signal".into(), name.clone().into());
        AgentNotice {
            rule: SIGNALLED,
            priority,
            tag: "health",
            text: format!(
                "Vigil agent signalled by another process (signal={name} by={} pid={} cmdline={} \
                 user={})",
                event.process.comm,
                event.event.task.pid,
                event.process.cmdline(),
                event.user_name.as_deref().unwrap_or("<NA>"),
            ),
            fields,
        }
    }

    fn traced(&self, event: &Enriched, request: u64) -> AgentNotice {
        let request = match request {
            r if r == libc::PTRACE_ATTACH as u64 => "PTRACE_ATTACH",
            r if r == libc::PTRACE_SEIZE as u64 => "PTRACE_SEIZE",
            _ => "PTRACE_INTERRUPT",
        };
        let mut fields = sender_fields(event);
        fields.insert("vigil.ptrace_request".into(), request.into());
        AgentNotice {
            rule: TRACED,
            priority: Priority::Critical,
            tag: "health",
            text: format!(
                "Vigil agent attached with ptrace by another process (request={request} by={} \
                 pid={} cmdline={} user={})",
                event.process.comm,
                event.event.task.pid,
                event.process.cmdline(),
                event.user_name.as_deref().unwrap_or("<NA>"),
            ),
            fields,
        }
    }
}

/// Who did it, keyed like Falco fields.
fn sender_fields(event: &Enriched) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("proc.pid".into(), event.event.task.pid.into());
    fields.insert("proc.name".into(), event.process.comm.clone().into());
    fields.insert("proc.cmdline".into(), event.process.cmdline().into());
    fields.insert("user.uid".into(), event.event.task.uid.into());
    fields.insert(
        "user.name".into(),
        event
            .user_name
            .as_deref()
            .map_or(Value::Null, |name| name.into()),
    );
    fields.insert(
        "container.id".into(),
        event
            .process
            .container
            .as_ref()
            .map_or_else(|| "host".into(), |c| c.short_id().into()),
    );
    fields
}

/// `SIGTERM` for 15, `SIG37` for a number without a name.
fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        libc::SIGPWR => "SIGPWR",
        libc::SIGSYS => "SIGSYS",
        other => return format!("SIG{other}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        events::{decode::decode, synth::RecordBuilder},
        testing::detached_enricher,
    };

    fn call(syscall: Syscall, sender: u32, args: &[u64]) -> Enriched {
        let mut builder = RecordBuilder::new(syscall, sender, 0);
        for (index, value) in args.iter().enumerate() {
            builder = builder.arg(index, *value);
        }
        detached_enricher().enrich(decode(&builder.build()).unwrap())
    }

    #[test]
    fn signals_and_ptrace_aimed_at_the_agent_are_reported() {
        let watch = SelfWatch::new(4242);
        let term = watch
            .check(&call(Syscall::Kill, 100, &[4242, libc::SIGTERM as u64]))
            .expect("SIGTERM to the agent");
        assert_eq!(term.rule, SIGNALLED);
        assert_eq!(term.fields["vigil.signal"], "SIGTERM");
        assert_eq!(term.fields["proc.pid"], 100);
        assert_eq!(term.priority, Priority::Warning);
        let stop = watch
            .check(&call(
                Syscall::Tgkill,
                100,
                &[4242, 4242, libc::SIGSTOP as u64],
            ))
            .expect("SIGSTOP to the agent");
        assert_eq!(stop.priority, Priority::Critical);
        let traced = watch
            .check(&call(
                Syscall::Ptrace,
                100,
                &[libc::PTRACE_SEIZE as u64, 4242],
            ))
            .expect("a seize of the agent");
        assert_eq!(traced.rule, TRACED);
        assert_eq!(traced.fields["vigil.ptrace_request"], "PTRACE_SEIZE");
    }

    #[test]
    fn other_targets_probes_and_the_agent_itself_are_not() {
        let watch = SelfWatch::new(4242);
        // Another process, signal 0 (a liveness probe), a process group, a ptrace peek.
        assert!(watch.check(&call(Syscall::Kill, 100, &[999, 9])).is_none());
        assert!(watch.check(&call(Syscall::Kill, 100, &[4242, 0])).is_none());
        assert!(watch.check(&call(Syscall::Kill, 100, &[0, 15])).is_none());
        assert!(
            watch
                .check(&call(
                    Syscall::Ptrace,
                    100,
                    &[libc::PTRACE_PEEKDATA as u64, 4242]
                ))
                .is_none()
        );
        // The agent signalling itself.
        assert!(
            watch
                .check(&call(Syscall::Kill, 4242, &[4242, 15]))
                .is_none()
        );
    }
}
