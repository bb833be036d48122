//! Which failed calls no rule can match, so the kernel side may count them instead of
//! recording them.
//!
//! A rule can match a failed call unless its condition is false for every failed call
//! whatever the rest of the event holds. That is decided on the compiled condition with
//! three-valued logic: the checks on the result (`evt.failed`, `evt.res`, `evt.rawres`) are
//! evaluated for every possible error (-1 to -4095, the kernel's range), `fd.name_changed` is
//! false, and the other `fd.*` checks follow what a failed call leaves of its fd ([`FailedFd`]):
//! a missing field fails every operator. Every other check may go either way. `open_read` and
//! `open_write` (they require `fd.num >= 0`) and `evt.rawres >= 0` are thus false for failed
//! calls; `evt.res startswith E`, Falco's `open_file_failed` (`fd.num = -1`) or a bare
//! `evt.type = execve` is not.

use std::borrow::Cow;

use super::{
    fields::Value,
    filter::{CompiledCheck, Filter, Matcher, Operand},
};
use crate::events::{
    render::render_res,
    syscalls::{OPENS, Source, SyscallSpec},
};

/// Errors the kernel returns are -1 to -4095 (`MAX_ERRNO`).
const MAX_ERRNO: i64 = 4095;

/// What the `fd.*` fields of a failed call hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailedFd {
    /// The fd is an argument (close, connect, fchmod): its fields are there, failed or not.
    Argument,
    /// The fd is the call's result (socket, accept, dup): a failed call has none, so every
    /// field is missing.
    Missing,
    /// A failed open: `fd.num` is -1 and the file it tried is named (`fd.name`, `fd.nameraw`,
    /// `fd.directory`, `fd.type`, `fd.typechar`), as in Falco; every other field is missing.
    TriedFile,
}

impl FailedFd {
    /// What a failed call of `spec` leaves of its fd.
    pub fn of(spec: &SyscallSpec) -> FailedFd {
        if OPENS.contains(&spec.syscall) {
            FailedFd::TriedFile
        } else if spec
            .param("fd")
            .is_some_and(|param| param.source == Source::Ret)
        {
            FailedFd::Missing
        } else {
            FailedFd::Argument
        }
    }
}

/// Whether `filter` can hold for a failed call whose fd is `fd`.
pub fn may_match_failed(filter: &Filter, fd: FailedFd) -> bool {
    eval(filter, fd) != Truth::No
}

/// A condition's value over every failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Truth {
    /// True for every failed call.
    Yes,
    /// False for every failed call.
    No,
    /// Depends on the call.
    Maybe,
}

fn eval(filter: &Filter, fd: FailedFd) -> Truth {
    match filter {
        // A false part decides a conjunction, a true one a disjunction.
        Filter::And(all) => combine(all, Truth::No, fd),
        Filter::Or(any) => combine(any, Truth::Yes, fd),
        Filter::Not(inner) => match eval(inner, fd) {
            Truth::Yes => Truth::No,
            Truth::No => Truth::Yes,
            Truth::Maybe => Truth::Maybe,
        },
        Filter::Check(check) => eval_check(check, fd),
    }
}

/// The value of a conjunction (`decisive` = `No`) or a disjunction (`decisive` = `Yes`) of
/// `parts`: `decisive` if one part is, otherwise `Maybe` if one part is, otherwise the other
/// value.
fn combine(parts: &[Filter], decisive: Truth, fd: FailedFd) -> Truth {
    let mut truth = match decisive {
        Truth::No => Truth::Yes,
        _ => Truth::No,
    };
    for part in parts {
        match eval(part, fd) {
            value if value == decisive => return decisive,
            Truth::Maybe => truth = Truth::Maybe,
            _ => {}
        }
    }
    truth
}

fn eval_check(check: &CompiledCheck, fd: FailedFd) -> Truth {
    let field = innermost_field(&check.lhs);
    if field == "fd.name_changed" {
        // Computed from the call, not the fd: false for every failed call.
        return match check.lhs {
            Operand::Field(..) => over(&check.matcher, std::iter::once(Value::Bool(false))),
            Operand::Transform(..) => Truth::Maybe,
        };
    }
    if field.starts_with("fd.") {
        match (fd, field) {
            (FailedFd::Argument, _) => {}
            (FailedFd::TriedFile, "fd.num") => {
                return match check.lhs {
                    Operand::Field(..) => over(&check.matcher, std::iter::once(Value::Int(-1))),
                    Operand::Transform(..) => Truth::Maybe,
                };
            }
            (
                FailedFd::TriedFile,
                "fd.name" | "fd.nameraw" | "fd.directory" | "fd.type" | "fd.typechar",
            ) => return Truth::Maybe,
            // Missing: every operator is false, `!=` and `exists` included.
            (FailedFd::Missing | FailedFd::TriedFile, _) => return Truth::No,
        }
    }
    let Operand::Field(..) = check.lhs else {
        // A transformer of a result field: not worth modelling.
        return Truth::Maybe;
    };
    match field {
        "evt.failed" => over(&check.matcher, std::iter::once(Value::Bool(true))),
        "evt.rawres" => over(&check.matcher, (1..=MAX_ERRNO).map(|n| Value::Int(-n))),
        "evt.res" => over(
            &check.matcher,
            (1..=MAX_ERRNO).map(|n| Value::Str(Cow::Owned(render_res(-n)))),
        ),
        _ => Truth::Maybe,
    }
}

/// The field an operand reads, through any transformers.
fn innermost_field(operand: &Operand) -> &'static str {
    match operand {
        Operand::Field(def, _) => def.name,
        Operand::Transform(_, inner) => innermost_field(inner),
    }
}

/// The matcher's verdict on every value: the same for all of them, or `Maybe`.
fn over<'a>(matcher: &Matcher, values: impl Iterator<Item = Value<'a>>) -> Truth {
    if let Matcher::Dynamic(..) = matcher {
        return Truth::Maybe;
    }
    let mut seen = None;
    for value in values {
        let verdict = matches!(matcher, Matcher::Exists) || matcher.test(&value);
        match seen {
            None => seen = Some(verdict),
            Some(previous) if previous != verdict => return Truth::Maybe,
            Some(_) => {}
        }
    }
    match seen {
        Some(true) => Truth::Yes,
        Some(false) => Truth::No,
        None => Truth::Maybe,
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::{
        engine::{Ruleset, Selection},
        loader::{self, Source},
    };

    /// The syscalls whose failed calls the rules leave to the kernel to count.
    fn skipped(condition: &str) -> Vec<&'static str> {
        let text = format!(
            "- rule: R\n  desc: d\n  condition: {condition}\n  output: o %proc.name %fd.name\n  priority: INFO\n"
        );
        let sources = [Source {
            name: "t.yaml".into(),
            text,
        }];
        let (ruleset, report) = Ruleset::compile(&loader::load(&sources), &Selection::default());
        assert!(report.ok(), "{:?}", report.errors);
        ruleset
            .capture()
            .skip_failed
            .iter()
            .map(|s| crate::events::syscalls::spec(*s).name)
            .collect()
    }

    #[test]
    fn success_only_conditions_let_failures_be_skipped() {
        for condition in [
            "evt.type = openat and fd.num >= 0",
            "evt.type = openat and fd.filename = shadow",
            "evt.type = openat and fd.sip = 127.0.0.1",
            "evt.type = openat and evt.rawres >= 0",
            "evt.type = openat and evt.res = SUCCESS",
            "evt.type = openat and not evt.failed = true",
            "evt.type = openat and (evt.failed = false or fd.filename = shadow)",
        ] {
            assert!(skipped(condition).contains(&"openat"), "{condition}");
        }
        // A failed socket has no fd at all.
        assert!(skipped("evt.type = socket and fd.typechar = 4").contains(&"socket"));
    }

    #[test]
    fn conditions_a_failure_can_meet_keep_failures() {
        for condition in [
            "evt.type = openat",
            "evt.type = openat and evt.res startswith E",
            "evt.type = openat and evt.res = EACCES",
            "evt.type = openat and evt.rawres < 0",
            "evt.type = openat and (evt.rawres >= 0 or proc.name = cat)",
            "evt.type = openat and not fd.num >= 0",
            "evt.type = openat and evt.failed = true",
            "evt.type = openat and fd.typechar = f",
            "evt.type = openat and fd.name startswith /etc",
            // Falco's `open_file_failed`.
            "evt.type in (open, openat, openat2) and fd.typechar = 'f' and fd.num = -1 \
             and evt.res startswith E",
        ] {
            assert!(!skipped(condition).contains(&"openat"), "{condition}");
        }
        // close's fd is its argument, not its result: fd.* fields exist when it fails.
        assert!(!skipped("evt.type = close and fd.num >= 0").contains(&"close"));
    }

    #[test]
    fn state_and_self_observation_keep_their_failures() {
        let list = skipped("evt.type = execve and evt.rawres = 0");
        assert!(list.contains(&"execve"));
        // A connect in progress (EINPROGRESS) is state; an attempt to signal or trace the
        // agent is reported even when it fails.
        for kept in ["connect", "kill", "tkill", "tgkill", "ptrace"] {
            assert!(!list.contains(&kept), "{kept}");
        }
        // Syscalls no rule matches, traced for the state only: their failures change nothing.
        assert!(skipped("evt.type = openat and fd.num >= 0").contains(&"close"));
    }
}
