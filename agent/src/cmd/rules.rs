//! `vigil rules validate` and the rule options shared by `run` and `replay`.

use std::{io::Write, path::PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use vigil::rules::{
    engine::{Report, Ruleset, Selection},
    loader::{Diagnostic, Priority},
};

/// Which rules to load and run.
#[derive(Args, Clone, Debug, PartialEq)]
pub struct RuleArgs {
    /// Rules file or directory of *.yaml files; repeat to load several, later ones override
    /// earlier ones.
    #[arg(
        long = "rules",
        env = "VIGIL_RULES",
        value_delimiter = ',',
        value_name = "PATH",
        default_value = "rules"
    )]
    pub paths: Vec<PathBuf>,
    /// Only run rules of this priority or more severe (emergency .. debug).
    #[arg(long, env = "VIGIL_MIN_PRIORITY", default_value = "debug", value_parser = parse_priority)]
    pub min_priority: Priority,
    /// Switch a rule off by name (repeatable).
    #[arg(long, env = "VIGIL_DISABLE_RULE", value_name = "RULE")]
    pub disable_rule: Vec<String>,
    /// Switch off every rule with this tag (repeatable).
    #[arg(
        long,
        env = "VIGIL_DISABLE_TAGS",
        value_delimiter = ',',
        value_name = "TAG"
    )]
    pub disable_tag: Vec<String>,
    /// Switch a rule on by name, even if its file disables it (repeatable).
    #[arg(long, env = "VIGIL_ENABLE_RULE", value_name = "RULE")]
    pub enable_rule: Vec<String>,
    /// Switch on every rule with this tag (repeatable).
    #[arg(
        long,
        env = "VIGIL_ENABLE_TAGS",
        value_delimiter = ',',
        value_name = "TAG"
    )]
    pub enable_tag: Vec<String>,
    /// Start with the valid rules even when some rules have errors (they are logged).
    #[arg(long, env = "VIGIL_ALLOW_RULE_ERRORS")]
    pub allow_rule_errors: bool,
}

fn parse_priority(text: &str) -> Result<Priority, String> {
    text.parse::<Priority>().map_err(|e| e.to_string())
}

impl RuleArgs {
    pub(crate) fn selection(&self) -> Selection {
        Selection {
            min_priority: self.min_priority,
            disabled_rules: self.disable_rule.clone(),
            disabled_tags: self.disable_tag.clone(),
            enabled_rules: self.enable_rule.clone(),
            enabled_tags: self.enable_tag.clone(),
        }
    }

    /// Loads the rules; refuses rules with errors unless `--allow-rule-errors`.
    pub fn load(&self) -> Result<Ruleset> {
        let (ruleset, report) = Ruleset::load(&self.paths, &self.selection());
        for warning in &report.warnings {
            tracing::warn!(file = %warning.file, line = warning.line, code = warning.code, "{}", warning.message);
        }
        for error in &report.errors {
            eprintln!("{error}");
        }
        if !report.ok() && !self.allow_rule_errors {
            bail!(
                "{} error(s) in the rules; fix them, or start anyway with --allow-rule-errors",
                report.errors.len()
            );
        }
        if ruleset.is_empty() {
            bail!(
                "no rule to run in {:?} (check --rules, --min-priority and the enable/disable options)",
                self.paths
            );
        }
        tracing::info!(
            rules = ruleset.len(),
            errors = report.errors.len(),
            "rules loaded"
        );
        Ok(ruleset)
    }
}

/// Rules loaded again while the agent runs, ready to be put in force.
pub struct Reloaded {
    /// The compiled rules.
    pub ruleset: Ruleset,
    /// Errors left out under `--allow-rule-errors` (one line each, located).
    pub tolerated: Vec<String>,
}

impl RuleArgs {
    /// Loads the rules again for a reload, logging every problem with its location. Any error
    /// refuses the new set (the running rules stay, and the errors, one line each, are
    /// returned), unless `--allow-rule-errors` was given: then, as at start, the valid rules
    /// run. A set with no rule to run is always refused.
    pub fn reload(&self) -> Result<Reloaded, Vec<String>> {
        let (ruleset, report) = Ruleset::load(&self.paths, &self.selection());
        for warning in &report.warnings {
            tracing::warn!(
                file = %warning.file,
                line = warning.line,
                column = warning.column,
                code = warning.code,
                "rules reload: {}",
                warning.message
            );
        }
        for error in &report.errors {
            tracing::error!(
                file = %error.file,
                line = error.line,
                column = error.column,
                code = error.code,
                item = error.item.as_deref().unwrap_or_default(),
                snippet = %error.snippet,
                "rules reload: {}",
                error.message
            );
        }
        let errors: Vec<String> = report.errors.iter().map(one_line).collect();
        if !errors.is_empty() && !self.allow_rule_errors {
            return Err(errors);
        }
        if ruleset.is_empty() {
            let mut errors = errors;
            errors.push(format!(
                "no rule to run in {:?} (check --rules, --min-priority and the enable/disable options)",
                self.paths
            ));
            return Err(errors);
        }
        Ok(Reloaded {
            ruleset,
            tolerated: errors,
        })
    }
}

/// A diagnostic on one line: `file:line:column: error CODE: message (in item)`, without the
/// snippet (which the log carries), so it reads well as a field of an alert record.
pub fn one_line(diagnostic: &Diagnostic) -> String {
    let text = diagnostic.to_string();
    match text.split_once('\n') {
        Some((first, _)) => first.to_string(),
        None => text,
    }
}

/// `vigil rules ...`.
#[derive(Subcommand)]
pub enum RulesCommand {
    /// Load rules files without starting probes and report every problem.
    Validate {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `rules` subcommand; returns whether the files were valid.
pub fn run(command: RulesCommand) -> Result<bool> {
    match command {
        RulesCommand::Validate { paths, json } => {
            let (_, report) = Ruleset::load(&paths, &Selection::default());
            let mut out = std::io::stdout().lock();
            let written = if json {
                serde_json::to_writer_pretty(&mut out, &report)
                    .map_err(std::io::Error::from)
                    .and_then(|()| writeln!(out))
            } else {
                print_report(&mut out, &report)
            };
            match written {
                // `vigil rules validate ... | head` closing the pipe is not an error.
                Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(error).context("writing the report");
                }
                _ => {}
            }
            Ok(report.ok())
        }
    }
}

fn print_report(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    for diagnostic in report.errors.iter().chain(&report.warnings) {
        writeln!(out, "{diagnostic}")?;
    }
    writeln!(
        out,
        "{} rules, {} macros, {} lists: {} error(s), {} warning(s)",
        report.rules,
        report.macros,
        report.lists,
        report.errors.len(),
        report.warnings.len()
    )
}
