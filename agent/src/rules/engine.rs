//! The rule engine: loads rules files, compiles every rule once, indexes rules by the event
//! types they can match, and evaluates events against the rules that could fire on them.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::Serialize;

use super::{
    alert::{Alert, hostname},
    compile::{CompileError, compile},
    evttypes::{self, TypeSet},
    filter::Filter,
    loader::{self, Diagnostic, LoadResult, Priority, Rule, Severity, Source},
    output::{OutputFormat, clock_time},
};
use crate::{
    enrich::Enriched,
    events::syscalls::{self, Syscall},
    output::json::rfc3339,
};

/// Which loaded rules run.
#[derive(Clone, Debug)]
pub struct Selection {
    /// Rules below this priority do not run.
    pub min_priority: Priority,
    /// Rules switched off by name.
    pub disabled_rules: Vec<String>,
    /// Rules switched off by tag.
    pub disabled_tags: Vec<String>,
    /// Rules switched on by name (even if the file disables them).
    pub enabled_rules: Vec<String>,
    /// Rules switched on by tag.
    pub enabled_tags: Vec<String>,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            min_priority: Priority::Debug,
            disabled_rules: Vec::new(),
            disabled_tags: Vec::new(),
            enabled_rules: Vec::new(),
            enabled_tags: Vec::new(),
        }
    }
}

impl Selection {
    fn runs(&self, rule: &Rule) -> bool {
        let tagged = |tags: &[String]| rule.tags.iter().any(|t| tags.contains(t));
        let enabled =
            (rule.enabled || self.enabled_rules.contains(&rule.name) || tagged(&self.enabled_tags))
                && !self.disabled_rules.contains(&rule.name)
                && !tagged(&self.disabled_tags);
        enabled && rule.priority <= self.min_priority
    }
}

/// What loading found: the summary `vigil rules validate` prints.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Rules loaded (compiled without error).
    pub rules: usize,
    /// Macros defined.
    pub macros: usize,
    /// Lists defined.
    pub lists: usize,
    /// Errors.
    pub errors: Vec<Diagnostic>,
    /// Warnings.
    pub warnings: Vec<Diagnostic>,
}

impl Report {
    /// Whether the files are valid.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// What the kernel side and the state must capture for a rule set to see what it can match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture {
    /// Syscalls to trace: those the rules can match and those the state needs.
    pub syscalls: Vec<Syscall>,
    /// Some rule reads `proc.env`: process environments are kept.
    pub env: bool,
    /// Some rule reads `evt.buffer`: the first bytes of I/O buffers are copied.
    pub buffers: bool,
    /// Traced syscalls whose failed calls no rule can match and the state ignores: the kernel
    /// counts them (`vigil_kernel_skipped_total{reason="failed_call"}`) instead of recording
    /// them.
    pub skip_failed: Vec<Syscall>,
}

struct CompiledRule {
    name: Arc<str>,
    priority: Priority,
    tags: Arc<[String]>,
    filter: Filter,
    output: OutputFormat,
}

/// Compiled, indexed rules.
pub struct Ruleset {
    rules: Vec<CompiledRule>,
    by_type: HashMap<&'static str, Vec<usize>>,
    hostname: Arc<str>,
}

/// The event types Vigil produces, as `evt.type` names them.
pub fn produced_types() -> impl Iterator<Item = &'static str> {
    syscalls::SYSCALLS
        .iter()
        .filter(|spec| spec.emits_records())
        .map(|spec| spec.name)
        .chain(["procfork", "procexec", "procexit"])
}

/// Rules files in `paths`: files as given, directories expanded to their `*.yaml`/`*.yml`
/// files in name order.
pub fn rule_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|entry| entry.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    files
}

impl Ruleset {
    /// Loads and compiles the rules in `paths` (files or directories, in order). Rules with
    /// errors are left out; the report lists every problem.
    pub fn load(paths: &[PathBuf], selection: &Selection) -> (Ruleset, Report) {
        let mut read_errors = Vec::new();
        let mut sources = Vec::new();
        for file in rule_files(paths) {
            match std::fs::read_to_string(&file) {
                Ok(text) => sources.push(Source {
                    name: file.display().to_string(),
                    text,
                }),
                Err(error) => read_errors.push(read_error(&file, &error)),
            }
        }
        let loaded = loader::load(&sources);
        let (ruleset, mut report) = Ruleset::compile(&loaded, selection);
        report.errors.splice(0..0, read_errors);
        (ruleset, report)
    }

    /// Compiles what the loader produced.
    pub fn compile(loaded: &LoadResult, selection: &Selection) -> (Ruleset, Report) {
        let mut errors: Vec<Diagnostic> = loaded.errors().cloned().collect();
        let mut warnings: Vec<Diagnostic> = loaded.warnings().cloned().collect();
        let mut rules = Vec::new();
        let mut by_type: HashMap<&'static str, Vec<usize>> = HashMap::new();
        let mut valid = 0;
        for rule in &loaded.rules {
            let item = Some(format!("rule '{}'", rule.name));
            let compiled = compile(&rule.condition)
                .map_err(|e| (e, "LOAD_ERR_COMPILE_CONDITION"))
                .and_then(|filter| {
                    let (output, notes) = OutputFormat::compile(&rule.output).map_err(|e| {
                        let pos = offset_in(rule.output_pos, e.pos);
                        (CompileError { pos, ..e }, "LOAD_ERR_COMPILE_OUTPUT")
                    })?;
                    Ok((filter, output, notes))
                });
            let (filter, output) = match compiled {
                Ok((filter, output, notes)) => {
                    if notes.container_info {
                        warnings.push(loaded.diagnostic_at(
                            Severity::Warning,
                            "LOAD_DEPRECATED_ITEM",
                            "%container.info is deprecated and renders as nothing".into(),
                            rule.output_pos,
                            item.clone(),
                        ));
                    }
                    (filter, output)
                }
                Err((error, _)) if error.unknown_filter && rule.skip_if_unknown_filter => {
                    warnings.push(loaded.diagnostic_at(
                        Severity::Warning,
                        "LOAD_UNKNOWN_FILTER",
                        format!("rule skipped: {}", error.message),
                        error.pos,
                        item,
                    ));
                    continue;
                }
                Err((error, code)) => {
                    errors.push(loaded.diagnostic_at(
                        Severity::Error,
                        code,
                        error.message,
                        error.pos,
                        item,
                    ));
                    continue;
                }
            };
            valid += 1;
            let types = evttypes::type_set(&rule.condition);
            let matched: Vec<&'static str> =
                produced_types().filter(|t| types.contains(t)).collect();
            if matched.is_empty() {
                warnings.push(loaded.diagnostic_at(
                    Severity::Warning,
                    "LOAD_NO_TRACED_EVTTYPE",
                    format!(
                        "rule can never fire: Vigil does not trace the event types it needs ({})",
                        describe(&types)
                    ),
                    rule.pos,
                    item.clone(),
                ));
            } else if matches!(&types, TypeSet::Except(set) if set.is_empty()) && rule.warn_evttypes
            {
                warnings.push(loaded.diagnostic_at(
                    Severity::Warning,
                    "LOAD_NO_EVTTYPE",
                    "rule matches all event types: it is evaluated for every event".into(),
                    rule.pos,
                    item.clone(),
                ));
            }
            if !selection.runs(rule) {
                continue;
            }
            let index = rules.len();
            for event_type in matched {
                by_type.entry(event_type).or_default().push(index);
            }
            rules.push(CompiledRule {
                name: Arc::from(rule.name.as_str()),
                priority: rule.priority,
                tags: Arc::from(rule.tags.clone()),
                filter,
                output,
            });
        }
        let report = Report {
            rules: valid,
            macros: loaded.macros,
            lists: loaded.lists,
            errors,
            warnings,
        };
        (
            Ruleset {
                rules,
                by_type,
                hostname: hostname(),
            },
            report,
        )
    }

    /// Number of rules that run.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether any running rule reads the field called `name` (in its condition or output).
    pub fn uses_field(&self, name: &str) -> bool {
        self.uses_field_where(|field| field == name)
    }

    /// What must be captured for these rules: the syscalls to trace and the optional state.
    ///
    /// Traced: the syscalls a rule can match, those the process state needs whatever the
    /// rules ([`syscalls::PROCESS_STATE`]), and, when a rule reads any `fd.*` field, those
    /// that keep the file descriptor table ([`syscalls::FD_STATE`]). Every other syscall is
    /// left untraced in the kernel, and costs nothing.
    pub fn capture(&self) -> Capture {
        let needed: Vec<&str> = self.event_types().collect();
        let fds = self.uses_field_where(|field| field.starts_with("fd."));
        let syscalls: Vec<Syscall> = syscalls::SYSCALLS
            .iter()
            .filter(|spec| {
                syscalls::PROCESS_STATE.contains(&spec.syscall)
                    || (fds && syscalls::FD_STATE.contains(&spec.syscall))
                    || needed.contains(&spec.name)
            })
            .map(|spec| spec.syscall)
            .collect();
        let skip_failed = syscalls
            .iter()
            .copied()
            .filter(|syscall| !syscalls::KEEP_FAILED.contains(syscall))
            .filter(|syscall| !self.may_match_failed(*syscall))
            .collect();
        Capture {
            syscalls,
            env: self.uses_field("proc.env"),
            buffers: self.uses_field("evt.buffer"),
            skip_failed,
        }
    }

    /// Whether a running rule can match a failed call of `syscall`.
    fn may_match_failed(&self, syscall: Syscall) -> bool {
        let spec = syscalls::spec(syscall);
        let fd = super::failures::FailedFd::of(spec);
        self.by_type.get(spec.name).is_some_and(|rules| {
            rules.iter().any(|&index| {
                self.rules
                    .get(index)
                    .is_some_and(|rule| super::failures::may_match_failed(&rule.filter, fd))
            })
        })
    }

    /// Whether any running rule reads a field whose name passes `wanted` (in its condition
    /// or output).
    fn uses_field_where(&self, wanted: impl Fn(&str) -> bool) -> bool {
        let mut found = false;
        for rule in &self.rules {
            let mut visit = |def: &'static super::fields::FieldDef| found |= wanted(def.name);
            rule.filter.visit_fields(&mut visit);
            rule.output.visit_fields(&mut visit);
        }
        found
    }

    /// The event types at least one running rule can match.
    pub fn event_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_type
            .iter()
            .filter(|(_, rules)| !rules.is_empty())
            .map(|(name, _)| *name)
    }

    /// Whether no rule runs.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Names of the rules that run.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_ref())
    }

    /// Evaluates `event` and appends an alert for every matching rule.
    pub fn evaluate(&self, event: &Enriched, alerts: &mut Vec<Alert>) {
        let Some(candidates) = self.by_type.get(event.event.type_name()) else {
            return;
        };
        for &index in candidates {
            let rule = &self.rules[index];
            if rule.filter.matches(event) {
                alerts.push(self.alert(rule, event));
            }
        }
    }

    fn alert(&self, rule: &CompiledRule, event: &Enriched) -> Alert {
        let (text, output_fields) = rule.output.render(event);
        Alert {
            hostname: Arc::clone(&self.hostname),
            output: format!(
                "{}: {} {}",
                clock_time(event.time_ns),
                rule.priority.as_str(),
                text
            ),
            output_fields,
            priority: rule.priority.as_str(),
            rule: Arc::clone(&rule.name),
            source: "syscall",
            tags: Arc::clone(&rule.tags),
            time: rfc3339(event.time_ns),
        }
    }
}

/// Maps a position inside an output string (line 1, column n) to the file.
fn offset_in(
    base: super::condition::ast::Pos,
    inner: super::condition::ast::Pos,
) -> super::condition::ast::Pos {
    super::condition::ast::Pos {
        source: base.source,
        line: base.line,
        col: base.col + inner.col.saturating_sub(1),
    }
}

fn describe(types: &TypeSet) -> String {
    match types {
        TypeSet::Only(set) if set.is_empty() => "none".into(),
        TypeSet::Only(set) => set.iter().cloned().collect::<Vec<_>>().join(", "),
        TypeSet::Except(set) => format!(
            "all but {}",
            set.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

fn read_error(file: &Path, error: &std::io::Error) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        code: "LOAD_ERR_FILE_READ",
        message: format!("cannot read rules file: {error}"),
        file: file.display().to_string(),
        line: 0,
        column: 0,
        item: None,
        snippet: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::falco_rules_dir;

    /// Rules of the official files that need a field Vigil does not supply yet. Anything else
    /// failing to compile is a regression.
    const KNOWN_UNSUPPORTED: &[&str] = &[];

    #[test]
    fn official_falco_files_compile() {
        let dir = falco_rules_dir();
        for (file, defined) in [
            ("falco_rules.yaml", 25),
            ("falco-incubating_rules.yaml", 31),
            ("falco-sandbox_rules.yaml", 37),
        ] {
            let (_, report) = Ruleset::load(&[dir.join(file)], &Selection::default());
            for error in &report.errors {
                assert!(
                    error.message.contains("is not supported by Vigil yet")
                        && KNOWN_UNSUPPORTED
                            .iter()
                            .any(|rule| error.item.as_deref() == Some(&format!("rule '{rule}'"))),
                    "unexpected error: {error}"
                );
            }
            assert_eq!(report.rules + report.errors.len(), defined, "{file}");
        }
    }

    fn ruleset_of(text: &str) -> Ruleset {
        let sources = [Source {
            name: "test.yaml".into(),
            text: text.into(),
        }];
        let (ruleset, report) = Ruleset::compile(&loader::load(&sources), &Selection::default());
        assert!(report.ok(), "{:?}", report.errors);
        ruleset
    }

    #[test]
    fn capture_traces_what_the_rules_and_the_state_need() {
        let execs = ruleset_of(
            "- rule: Execs\n  desc: d\n  condition: evt.type = execve and proc.name = sh\n  output: o %proc.cmdline\n  priority: INFO\n",
        )
        .capture();
        // Process state only: no file descriptor table is kept for a rule that reads none.
        assert_eq!(
            execs.syscalls,
            syscalls::SYSCALLS
                .iter()
                .map(|spec| spec.syscall)
                .filter(|s| syscalls::PROCESS_STATE.contains(s))
                .collect::<Vec<_>>()
        );
        assert!(execs.syscalls.contains(&Syscall::Execve));
        assert!(!execs.syscalls.contains(&Syscall::Openat));
        assert!(!execs.syscalls.contains(&Syscall::Close));

        let plain = ruleset_of(
            "- rule: Opens\n  desc: d\n  condition: evt.type = openat\n  output: o %fd.name\n  priority: INFO\n",
        )
        .capture();
        for syscall in syscalls::FD_STATE.iter().chain(syscalls::PROCESS_STATE) {
            assert!(plain.syscalls.contains(syscall), "{syscall:?}");
        }
        // Nothing reads mkdir or chmod: they stay untraced.
        assert!(!plain.syscalls.contains(&Syscall::Mkdir));
        assert!(!plain.syscalls.contains(&Syscall::Chmod));
        assert!(!plain.env && !plain.buffers);
        assert!(!plain.syscalls.contains(&Syscall::Recvfrom));

        let costly = ruleset_of(
            "- rule: Receives\n  desc: d\n  condition: evt.type = recvfrom and evt.buffer contains x\n  output: o %proc.env\n  priority: INFO\n",
        )
        .capture();
        assert!(costly.syscalls.contains(&Syscall::Recvfrom));
        assert!(costly.env && costly.buffers);
        assert_ne!(plain, costly);
    }

    #[test]
    fn evaluates_only_rules_indexed_for_the_event_type() {
        let dir = falco_rules_dir();
        let (ruleset, report) = Ruleset::load(
            &[dir.join("falco_rules.yaml")],
            &Selection {
                min_priority: Priority::Warning,
                ..Selection::default()
            },
        );
        assert!(report.rules >= 23);
        assert!(ruleset.len() < report.rules, "min priority filters rules");
        let execs = ruleset.by_type.get("execve").map_or(0, Vec::len);
        let closes = ruleset.by_type.get("close").map_or(0, Vec::len);
        assert!(execs > 0);
        assert!(closes < execs, "close events see fewer rules than execve");
    }
}
