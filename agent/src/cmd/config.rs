//! `vigil config check|default`, the delivery flags of `vigil run`, and how a configuration
//! file fills in the settings no flag or `VIGIL_...` variable gave.

use std::{path::PathBuf, time::Duration};

use anyhow::Result;
use clap::{ArgMatches, Args, FromArgMatches as _, Subcommand, parser::ValueSource};
use vigil::{
    config::{DEFAULT_CONFIG, FileConfig, RuleSettings},
    egress::policy::PolicySet,
    rules::engine::Ruleset,
    sinks::config::DeliveryConfig,
};

use super::{agent::AgentArgs, rules::RuleArgs};

/// `vigil config ...`.
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file and everything it names (rules, egress allowlists, sink
    /// TLS files) without starting anything; exit 1 on errors.
    Check {
        /// The configuration file.
        file: PathBuf,
    },
    /// Print a commented configuration with every setting at its default.
    Default,
}

/// Delivery settings of `vigil run` that override the configuration file.
#[derive(Args, Clone, Debug, Default)]
pub struct DeliveryArgs {
    /// Directory of the per-sink spools and the agent's sequence state.
    #[arg(long, env = "VIGIL_SPOOL_DIR", value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
    /// How often a heartbeat record goes to every sink (`30s`; `off` for none).
    #[arg(long, env = "VIGIL_HEARTBEAT_INTERVAL", value_parser = parse_interval)]
    pub heartbeat_interval: Option<Interval>,
    /// On SIGTERM, how long the sinks get to deliver what is queued (`5s`); the rest stays in
    /// the spool.
    #[arg(long, env = "VIGIL_DRAIN_TIMEOUT", value_parser = parse_duration)]
    pub drain_timeout: Option<Duration>,
}

/// A heartbeat interval, or none.
#[derive(Clone, Copy, Debug)]
pub struct Interval(Option<Duration>);

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|error| format!("{text:?}: {error}"))
}

fn parse_interval(text: &str) -> Result<Interval, String> {
    match text.trim() {
        "off" | "0" | "0s" => Ok(Interval(None)),
        other => parse_duration(other).map(|every| Interval(Some(every))),
    }
}

impl DeliveryArgs {
    /// Puts the settings given by flag or variable over those of the file.
    pub fn apply(&self, delivery: &mut DeliveryConfig) {
        if let Some(dir) = &self.spool_dir {
            delivery.spool_dir = Some(dir.clone());
        }
        if let Some(Interval(every)) = self.heartbeat_interval {
            delivery.heartbeat_interval = every;
        }
        if let Some(timeout) = self.drain_timeout {
            delivery.drain_timeout = timeout;
        }
    }
}

/// Whether `id` was left to its default (neither a flag nor a variable gave it), so the
/// configuration file decides.
fn unset(matches: &ArgMatches, id: &str) -> bool {
    matches!(
        matches.value_source(id),
        None | Some(ValueSource::DefaultValue)
    )
}

/// Which rule settings a flag or variable gave (the file cannot change those, at start or at a
/// reload).
#[derive(Clone, Copy, Debug, Default)]
pub struct RuleOverrides {
    paths: bool,
    min_priority: bool,
    disable_rule: bool,
    disable_tag: bool,
    enable_rule: bool,
    enable_tag: bool,
    allow_rule_errors: bool,
}

impl RuleOverrides {
    /// What the command line and environment of `vigil run` gave.
    pub fn from_matches(matches: &ArgMatches) -> RuleOverrides {
        let given = |id: &str| !unset(matches, id);
        RuleOverrides {
            paths: given("paths"),
            min_priority: given("min_priority"),
            disable_rule: given("disable_rule"),
            disable_tag: given("disable_tag"),
            enable_rule: given("enable_rule"),
            enable_tag: given("enable_tag"),
            allow_rule_errors: given("allow_rule_errors"),
        }
    }

    /// `base` (flags, variables, defaults) with the file's rule settings where no flag or
    /// variable gave one.
    pub fn resolve(&self, base: &RuleArgs, wanted: &RuleSettings) -> RuleArgs {
        let mut rules = base.clone();
        if let (false, Some(paths)) = (self.paths, &wanted.paths) {
            rules.paths = paths.clone();
        }
        if let (false, Some(priority)) = (self.min_priority, wanted.min_priority) {
            rules.min_priority = priority;
        }
        let lists = [
            (
                self.disable_rule,
                &mut rules.disable_rule,
                &wanted.disable_rules,
            ),
            (
                self.disable_tag,
                &mut rules.disable_tag,
                &wanted.disable_tags,
            ),
            (
                self.enable_rule,
                &mut rules.enable_rule,
                &wanted.enable_rules,
            ),
            (self.enable_tag, &mut rules.enable_tag, &wanted.enable_tags),
        ];
        for (given, list, from_file) in lists {
            if !given && !from_file.is_empty() {
                *list = from_file.clone();
            }
        }
        if let (false, Some(allow)) = (self.allow_rule_errors, wanted.allow_errors) {
            rules.allow_rule_errors = allow;
        }
        rules
    }
}

/// Fills the settings no flag or variable gave from the configuration file.
pub fn apply(
    file: &FileConfig,
    matches: &ArgMatches,
    agent: &mut AgentArgs,
    rules: &mut RuleArgs,
    egress_pin: &mut bool,
) {
    let settings = &file.agent;
    if let (true, Some(addr)) = (unset(matches, "metrics_addr"), settings.metrics_addr) {
        agent.metrics_addr = addr;
    }
    if let (true, Some(bytes)) = (
        unset(matches, "ring_buffer_bytes"),
        settings.ring_buffer_bytes,
    ) {
        agent.ring_buffer_bytes = bytes;
    }
    if let (true, Some(count)) = (unset(matches, "max_processes"), settings.max_processes) {
        agent.max_processes = count;
    }
    if let (true, Some(include)) = (unset(matches, "include_self"), settings.include_self) {
        agent.include_self = include;
    }
    if let (true, Some(root)) = (unset(matches, "host_root"), &settings.host_root) {
        agent.host_root = Some(root.clone());
    }
    *rules = RuleOverrides::from_matches(matches).resolve(rules, &file.rules);
    if let (true, Some(pin)) = (unset(matches, "egress_pin"), file.egress_pin) {
        *egress_pin = pin;
    }
}

/// Runs `vigil config ...`; `Ok(false)` when the file has errors.
pub fn run(command: ConfigCommand) -> Result<bool> {
    match command {
        ConfigCommand::Default => {
            print!("{DEFAULT_CONFIG}");
            Ok(true)
        }
        ConfigCommand::Check { file } => Ok(check(&file)),
    }
}

/// Validates the file and what it names, printing every problem; whether all is well.
fn check(path: &std::path::Path) -> bool {
    let config = match FileConfig::load(path) {
        Ok(config) => config,
        Err(error) => {
            println!("{error}");
            return false;
        }
    };
    // The rule settings as `vigil run --config FILE` would resolve them: the file over the
    // variables and the defaults of the rule options.
    let matches =
        RuleArgs::augment_args(clap::Command::new("vigil")).try_get_matches_from(["vigil"]);
    let (base, overrides) = match matches.and_then(|m| {
        RuleArgs::from_arg_matches(&m).map(|args| (args, RuleOverrides::from_matches(&m)))
    }) {
        Ok(resolved) => resolved,
        Err(error) => {
            println!("{error}");
            return false;
        }
    };
    let rules = overrides.resolve(&base, &config.rules);
    let mut ok = true;
    let rule_paths = &rules.paths;
    let (ruleset, report) = Ruleset::load(rule_paths, &rules.selection());
    for error in &report.errors {
        println!("{error}");
    }
    if !report.ok() && !rules.allow_rule_errors {
        ok = false;
    }
    if ruleset.is_empty() {
        println!("no rule to run in {rule_paths:?}");
        ok = false;
    }
    let policies = if config.delivery.egress.is_empty() {
        0
    } else {
        match PolicySet::load(&config.delivery.egress) {
            Ok(set) => set.policies.len() + usize::from(set.default.is_some()),
            Err(errors) => {
                for error in &errors {
                    println!("{error}");
                }
                ok = false;
                0
            }
        }
    };
    println!(
        "{}: {} sink(s), {} rule(s) from {}, {} egress polic{}{}",
        path.display(),
        config.delivery.sinks.len(),
        ruleset.len(),
        rule_paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        policies,
        if policies == 1 { "y" } else { "ies" },
        if ok { "; ok" } else { "; errors above" }
    );
    ok
}
