//! Reloading the rules and the egress policies while `vigil run` runs: on SIGHUP, and when
//! their files change.
//!
//! A new rule set is loaded and compiled off the event loop (on a blocking thread), then put in
//! force by the event loop between two events: every event is evaluated by exactly one set,
//! the old or the new. A set with errors is refused and the running one stays. Either way the
//! outcome is logged, counted in `vigil_reloads_total` and sent to the sinks as an agent
//! record, so a broken edit is visible where the alerts go.

use std::{
    hash::{DefaultHasher, Hash as _, Hasher as _},
    path::PathBuf,
    sync::Arc,
};

use serde_json::{Map, Value};
use tokio::{
    sync::watch,
    task::{JoinError, JoinHandle},
};
use vigil::{
    egress::control::{EgressControl, ReloadError},
    metrics::Metrics,
    pipeline::Pipeline,
    rules::{
        engine::{Capture, Ruleset, rule_files},
        loader::Priority,
    },
    sinks::dispatcher::{AgentNotice, Dispatcher},
};

use super::watch::{Changed, ConfigWatcher};
use crate::cmd::{
    config::RuleOverrides,
    rules::{Reloaded, RuleArgs},
};
use vigil::config::FileConfig;

/// The configuration file the agent started with, for reloading it.
pub struct ConfigSource {
    /// The file.
    pub path: PathBuf,
    /// What of it is in force: its rule settings are replaced at each reload; the other
    /// settings are kept as at start (they need a restart).
    pub running: FileConfig,
    /// The rule settings from flags, variables and defaults, before the file's.
    pub base_rules: RuleArgs,
    /// Which rule settings a flag or variable gave.
    pub overrides: RuleOverrides,
}

/// Rule name of the record sent when a reload is refused.
pub const RELOAD_FAILED: &str = "Vigil configuration reload failed";
/// Rule name of the record sent when a reload is put in force.
pub const RELOADED: &str = "Vigil configuration reloaded";

/// Something for the reloader to handle, from [`Reloader::next`].
pub enum Work {
    /// Watched files changed (debounced).
    Changed(Changed),
    /// A rules load finished.
    Loaded(Result<Loaded, JoinError>),
}

/// A finished rules load.
pub struct Loaded {
    fingerprint: u64,
    /// `None` when the files were as last loaded, so nothing was loaded.
    outcome: Option<Result<Reloaded, Vec<String>>>,
}

/// Reloads the rules and egress policies of a running agent.
pub struct Reloader {
    rules: RuleArgs,
    /// The rules in force; the consumer of events reads it.
    running: watch::Sender<Arc<Ruleset>>,
    /// What the kernel side captures now.
    capture: Capture,
    /// Whether process environments are kept (decided at start: the process table cannot
    /// start keeping them for processes it already holds).
    env_captured: bool,
    dispatcher: Arc<Dispatcher>,
    watcher: Option<ConfigWatcher>,
    loading: Option<JoinHandle<Loaded>>,
    /// A request that came while loading (`true`: forced, by SIGHUP), served once it is done
    /// so the latest files always end up loaded.
    queued: Option<bool>,
    rules_fingerprint: u64,
    egress_files: Vec<PathBuf>,
    egress_fingerprint: u64,
    config: Option<ConfigSource>,
}

impl Reloader {
    /// Starts watching the rules and egress files. `capture` is what the probes were started
    /// with. Must run inside a tokio runtime.
    pub fn start(
        rules: RuleArgs,
        running: watch::Sender<Arc<Ruleset>>,
        capture: Capture,
        dispatcher: Arc<Dispatcher>,
        egress_files: Vec<PathBuf>,
        config: Option<ConfigSource>,
    ) -> Reloader {
        let watcher = watch(&rules, &egress_files, config.as_ref());
        Reloader {
            rules_fingerprint: fingerprint(&rule_files(&rules.paths)),
            egress_fingerprint: fingerprint(&rule_files(&egress_files)),
            rules,
            running,
            env_captured: capture.env,
            capture,
            dispatcher,
            watcher,
            loading: None,
            queued: None,
            egress_files,
            config,
        }
    }

    /// The next thing to handle: a change of the files, or a finished load. Cancel-safe.
    pub async fn next(&mut self) -> Work {
        let Reloader {
            watcher, loading, ..
        } = self;
        tokio::select! {
            Some(changed) = next_change(watcher) => Work::Changed(changed),
            loaded = join(loading) => Work::Loaded(loaded),
        }
    }

    /// SIGHUP: reloads the rules and the egress policies, even if their files look unchanged.
    pub fn on_signal(&mut self, egress: Option<&mut EgressControl>, metrics: &Metrics) {
        tracing::info!("SIGHUP: reloading the configuration, rules and egress policies");
        self.reload_config(metrics);
        self.request_rules(true);
        self.reload_egress(egress, metrics, true);
    }

    /// Handles what [`Reloader::next`] returned.
    pub fn handle(
        &mut self,
        work: Work,
        pipeline: &mut Pipeline,
        egress: Option<&mut EgressControl>,
        metrics: &Metrics,
    ) {
        match work {
            Work::Changed(changed) => {
                if changed.config && self.reload_config(metrics) {
                    tracing::info!(
                        "the configuration's rule settings changed: reloading the rules"
                    );
                    self.request_rules(true);
                }
                if changed.rules {
                    tracing::info!("rules files changed: reloading them");
                    self.request_rules(false);
                }
                if changed.egress {
                    self.reload_egress(egress, metrics, false);
                }
            }
            Work::Loaded(loaded) => self.finish_rules(loaded, pipeline, metrics),
        }
    }

    /// Loads the rules on a blocking thread; `forced` loads them even if the files are as last
    /// loaded.
    fn request_rules(&mut self, forced: bool) {
        if self.loading.is_some() {
            self.queued = Some(self.queued.unwrap_or(false) || forced);
            return;
        }
        let args = self.rules.clone();
        let previous = (!forced).then_some(self.rules_fingerprint);
        self.loading = Some(tokio::task::spawn_blocking(move || {
            let fingerprint = fingerprint(&rule_files(&args.paths));
            let outcome = (previous != Some(fingerprint)).then(|| args.reload());
            Loaded {
                fingerprint,
                outcome,
            }
        }));
    }

    fn finish_rules(
        &mut self,
        loaded: Result<Loaded, JoinError>,
        pipeline: &mut Pipeline,
        metrics: &Metrics,
    ) {
        match loaded {
            Err(error) => self.refuse(
                "rules",
                vec![format!("loading the rules failed: {error}")],
                metrics,
            ),
            Ok(loaded) => {
                // Remembered even when refused: the same broken files are not reported again
                // for every event of the watcher, only when they change (or on SIGHUP).
                self.rules_fingerprint = loaded.fingerprint;
                match loaded.outcome {
                    None => tracing::debug!("rules files unchanged: nothing to reload"),
                    Some(Err(errors)) => self.refuse("rules", errors, metrics),
                    Some(Ok(reloaded)) => self.put_in_force(reloaded, pipeline, metrics),
                }
            }
        }
        if let Some(forced) = self.queued.take() {
            self.request_rules(forced);
        }
    }

    fn put_in_force(&mut self, reloaded: Reloaded, pipeline: &mut Pipeline, metrics: &Metrics) {
        let capture = reloaded.ruleset.capture();
        if capture.syscalls != self.capture.syscalls
            || capture.buffers != self.capture.buffers
            || capture.skip_failed != self.capture.skip_failed
        {
            // Before the swap: the new rules must see the syscalls they need from their first
            // event on. The old rules simply ignore event types they have no rule for.
            if let Err(error) = pipeline.set_interest(
                capture.syscalls.iter().copied(),
                capture.buffers,
                &capture.skip_failed,
            ) {
                // What was written may be partial: put back what the running rules need.
                if let Err(error) = pipeline.set_interest(
                    self.capture.syscalls.iter().copied(),
                    self.capture.buffers,
                    &self.capture.skip_failed,
                ) {
                    tracing::error!(%error, "restoring the traced syscalls failed");
                }
                return self.refuse(
                    "rules",
                    vec![format!(
                        "updating the traced syscalls in the kernel failed: {error}"
                    )],
                    metrics,
                );
            }
            tracing::info!(
                syscalls = capture.syscalls.len(),
                skip_failed = capture.skip_failed.len(),
                capture_buffers = capture.buffers,
                "the kernel side now captures what the new rules need"
            );
        }
        if capture.env && !self.env_captured {
            tracing::warn!(
                "a reloaded rule reads proc.env, but process environments are kept only when a rule needs them at start: restart vigil for proc.env to have values"
            );
        }
        self.capture = capture;
        let rules = reloaded.ruleset.len();
        // The event loop does not deliver an event while this runs: the next event is the
        // first one the new rules see.
        self.running.send_replace(Arc::new(reloaded.ruleset));
        metrics.rules_loaded.set(rules as i64);
        metrics.count_reload("rules", true);
        tracing::info!(rules, errors = reloaded.tolerated.len(), "rules reloaded");
        let mut fields = Map::new();
        fields.insert("vigil.reload".into(), "rules".into());
        fields.insert("vigil.rules".into(), rules.into());
        // Only under --allow-rule-errors: the valid rules run, the others are named.
        let priority = if reloaded.tolerated.is_empty() {
            Priority::Notice
        } else {
            fields.insert("vigil.errors".into(), strings(&reloaded.tolerated));
            Priority::Warning
        };
        self.dispatcher.submit_health(AgentNotice {
            rule: RELOADED,
            priority,
            tag: "lifecycle",
            text: format!(
                "Vigil reloaded its configuration (reload=rules rules={rules} errors={})",
                reloaded.tolerated.len()
            ),
            fields,
        });
    }

    /// Reloads the egress policies (on the event loop: they are written to the kernel maps the
    /// loop also updates for new containers); `forced` reloads them even if the files are as
    /// last loaded.
    fn reload_egress(
        &mut self,
        egress: Option<&mut EgressControl>,
        metrics: &Metrics,
        forced: bool,
    ) {
        if self.egress_files.is_empty() {
            return;
        }
        let fingerprint = fingerprint(&rule_files(&self.egress_files));
        if !forced && fingerprint == self.egress_fingerprint {
            tracing::debug!("egress policy files unchanged: nothing to reload");
            return;
        }
        self.egress_fingerprint = fingerprint;
        let Some(egress) = egress else {
            tracing::warn!(
                "the egress policy files changed, but vigil started without egress policies (so without its egress programs): restart it to put them in force"
            );
            return;
        };
        match egress.reload() {
            Ok(policies) => {
                metrics.egress_policies.set(policies as i64);
                metrics.count_reload("egress", true);
                tracing::info!(policies, "egress policies reloaded");
                let mut fields = Map::new();
                fields.insert("vigil.reload".into(), "egress".into());
                fields.insert("vigil.policies".into(), policies.into());
                self.dispatcher.submit_health(AgentNotice {
                    rule: RELOADED,
                    priority: Priority::Notice,
                    tag: "lifecycle",
                    text: format!(
                        "Vigil reloaded its configuration (reload=egress policies={policies})"
                    ),
                    fields,
                });
            }
            Err(error) => {
                let errors = match error {
                    ReloadError::Policy(errors) => errors.iter().map(ToString::to_string).collect(),
                    other => vec![other.to_string()],
                };
                self.refuse("egress", errors, metrics);
            }
        }
    }

    /// Reads the configuration file again. Its rule settings (paths, selection) take effect
    /// with the next rules load; changes elsewhere need a restart and are reported as such. A
    /// file with errors is refused and what runs stays. Returns whether the rule settings
    /// changed.
    fn reload_config(&mut self, metrics: &Metrics) -> bool {
        let Some(source) = &mut self.config else {
            return false;
        };
        let file = match FileConfig::load(&source.path) {
            Ok(file) => file,
            Err(error) => {
                let errors = vec![error.to_string()];
                self.refuse("config", errors, metrics);
                return false;
            }
        };
        let running = &source.running;
        let mut restart = Vec::new();
        if file.agent != running.agent {
            restart.push("agent");
        }
        if file.delivery.egress != running.delivery.egress || file.egress_pin != running.egress_pin
        {
            restart.push("egress");
        }
        let mut delivery = file.delivery.clone();
        delivery.egress.clone_from(&running.delivery.egress);
        if delivery != running.delivery {
            restart.push("sinks");
        }
        let rules = source.overrides.resolve(&source.base_rules, &file.rules);
        let rules_changed = rules != self.rules;
        source.running.rules = file.rules;
        if !restart.is_empty() {
            tracing::warn!(
                sections = ?restart,
                "the configuration changed where a reload cannot apply it: restart vigil to put it in force"
            );
            let mut fields = Map::new();
            fields.insert("vigil.reload".into(), "config".into());
            fields.insert(
                "vigil.restart_required".into(),
                Value::Array(restart.iter().map(|&s| Value::from(s)).collect()),
            );
            self.dispatcher.submit_health(AgentNotice {
                rule: RELOADED,
                priority: Priority::Warning,
                tag: "lifecycle",
                text: format!(
                    "Vigil reloaded its configuration; these settings need a restart (reload=config restart_required={})",
                    restart.join(",")
                ),
                fields,
            });
        }
        metrics.count_reload("config", true);
        if rules_changed {
            self.rules = rules;
            self.watcher = watch(&self.rules, &self.egress_files, self.config.as_ref());
        }
        rules_changed
    }

    /// A reload of `what` was refused: what runs stays in force.
    fn refuse(&self, what: &'static str, errors: Vec<String>, metrics: &Metrics) {
        metrics.count_reload(what, false);
        for error in &errors {
            tracing::error!(reload = what, %error, "reload refused");
        }
        tracing::error!(
            reload = what,
            errors = errors.len(),
            "reload failed: the running {what} stay in force"
        );
        let mut fields = Map::new();
        fields.insert("vigil.reload".into(), what.into());
        fields.insert("vigil.errors".into(), strings(&errors));
        self.dispatcher.submit_health(AgentNotice {
            rule: RELOAD_FAILED,
            priority: Priority::Error,
            tag: "health",
            text: format!(
                "Vigil could not reload its configuration; the running {what} stay in force (reload={what} errors={} first={})",
                errors.len(),
                errors.first().map(String::as_str).unwrap_or_default()
            ),
            fields,
        });
    }
}

/// Watches the rules, egress and configuration files; `None` (changes need a SIGHUP) when
/// the watch cannot start.
fn watch(
    rules: &RuleArgs,
    egress: &[PathBuf],
    config: Option<&ConfigSource>,
) -> Option<ConfigWatcher> {
    match ConfigWatcher::start(&rules.paths, egress, config.map(|c| c.path.as_path())) {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            tracing::warn!(%error, "cannot watch the configuration files: changes need a SIGHUP");
            None
        }
    }
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::from).collect())
}

async fn next_change(watcher: &mut Option<ConfigWatcher>) -> Option<Changed> {
    match watcher {
        Some(watcher) => watcher.next().await,
        None => std::future::pending().await,
    }
}

/// Waits for the load in progress (forever if there is none), and clears it once done.
async fn join(loading: &mut Option<JoinHandle<Loaded>>) -> Result<Loaded, JoinError> {
    let Some(handle) = loading else {
        return std::future::pending().await;
    };
    let loaded = handle.await;
    *loading = None;
    loaded
}

/// A digest of the files' names and contents, to tell a real change from events that left
/// them as they were (an editor's save of unchanged text, a second event of the same save).
fn fingerprint(files: &[PathBuf]) -> u64 {
    // SipHash with fixed keys: the same bytes give the same digest for the life of the process.
    let mut hasher = DefaultHasher::new();
    for file in files {
        file.hash(&mut hasher);
        match std::fs::read(file) {
            Ok(bytes) => bytes.hash(&mut hasher),
            Err(error) => error.kind().hash(&mut hasher),
        }
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_follows_contents_and_names() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = dir.path().join("a.yaml");
        let b = dir.path().join("b.yaml");
        std::fs::write(&a, "one").expect("a");
        std::fs::write(&b, "two").expect("b");
        let files = rule_files(&[dir.path().to_path_buf()]);
        let first = fingerprint(&files);
        assert_eq!(fingerprint(&files), first, "stable");
        std::fs::write(&a, "one").expect("rewrite");
        assert_eq!(fingerprint(&rule_files(&[dir.path().to_path_buf()])), first);
        std::fs::write(&a, "ONE").expect("edit");
        assert_ne!(fingerprint(&rule_files(&[dir.path().to_path_buf()])), first);
        std::fs::write(&a, "one").expect("back");
        std::fs::rename(&b, dir.path().join("c.yaml")).expect("rename");
        assert_ne!(fingerprint(&rule_files(&[dir.path().to_path_buf()])), first);
        std::fs::remove_file(&a).expect("remove");
        assert_ne!(
            fingerprint(std::slice::from_ref(&a)),
            fingerprint(&[b]),
            "missing files differ by name"
        );
    }
}
