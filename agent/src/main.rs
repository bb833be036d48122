//! The `vigil` command: the agent daemon and its tools.

mod cmd;

use std::{io, path::PathBuf, process::ExitCode};

use anyhow::{Context as _, Result};
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use cmd::{
    agent::AgentArgs,
    config::{ConfigCommand, DeliveryArgs},
    rules::RuleArgs,
};
use vigil::{config::FileConfig, egress::policy::PolicySet, sinks::config::DeliveryConfig};

#[derive(Parser)]
#[command(name = "vigil", version, about = "eBPF runtime security agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (tracing's EnvFilter syntax); logs go to stderr.
    #[arg(long, global = true, env = "VIGIL_LOG", default_value = "info")]
    log: String,
    /// Log line format.
    #[arg(long, global = true, env = "VIGIL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum EgressCommand {
    /// Check allowlist files without starting anything (exit 1 on errors).
    Validate {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Detach egress programs a stopped agent left pinned (ends their enforcement).
    Unpin,
}

#[derive(Subcommand)]
enum Command {
    /// Print every traced event, enriched with process, fd and container state.
    Trace {
        #[command(flatten)]
        agent: AgentArgs,
        /// One JSON object per line, keyed by Falco field names.
        #[arg(long)]
        json: bool,
    },
    /// Run the agent: evaluate the rules on every event, print alerts as JSON lines.
    Run {
        #[command(flatten)]
        agent: AgentArgs,
        #[command(flatten)]
        rules: RuleArgs,
        #[command(flatten)]
        delivery: DeliveryArgs,
        /// Configuration file (YAML: agent, rules, egress, sinks, spool; `vigil config
        /// default` prints one). Flags and VIGIL_* variables override what it says. Without
        /// it, alerts go to stdout as Falco JSON lines.
        #[arg(long, env = "VIGIL_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Egress allowlist file or directory (repeatable; after those the config file names).
        #[arg(
            long = "egress",
            env = "VIGIL_EGRESS",
            value_delimiter = ',',
            value_name = "PATH"
        )]
        egress: Vec<PathBuf>,
        /// Pin the egress programs in bpffs so enforcement outlives the agent (until the next
        /// agent takes over, or `vigil egress unpin`).
        #[arg(long, env = "VIGIL_EGRESS_PIN")]
        egress_pin: bool,
    },
    /// Check a configuration file, or print the default one.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Perform attacker behaviours safely and measure how fast the agent detects them.
    Chaos(cmd::chaos::ChaosArgs),
    /// Work with egress allowlists.
    Egress {
        #[command(subcommand)]
        command: EgressCommand,
    },
    /// Work with rules files.
    Rules {
        #[command(subcommand)]
        command: cmd::rules::RulesCommand,
    },
    /// List the fields rules can use.
    Fields {
        /// One JSON object per field.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate rules over events recorded with `vigil trace --json` (no probes, no root).
    Replay {
        /// The recording (`-` for stdin).
        file: PathBuf,
        #[command(flatten)]
        rules: RuleArgs,
    },
}

fn main() -> ExitCode {
    // The matches tell which settings were given by flag or variable, so a configuration file
    // fills in only the others.
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    if let Err(error) = init_logging(&cli.log, cli.log_format) {
        eprintln!("vigil: {error:#}");
        return ExitCode::FAILURE;
    }
    let run_matches = matches.subcommand_matches("run");
    match dispatch(cli.command, run_matches) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("vigil: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command; `Ok(false)` means it ran but found a problem (invalid rules).
fn dispatch(command: Command, run_matches: Option<&clap::ArgMatches>) -> Result<bool> {
    match command {
        Command::Config { command } => cmd::config::run(command),
        Command::Rules { command } => cmd::rules::run(command),
        Command::Fields { json } => match cmd::fields::run(json) {
            // `vigil fields | head` closing the pipe early is not an error.
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(true),
            other => other.map(|()| true).context("writing the field list"),
        },
        Command::Replay { file, rules } => cmd::replay::run(&file, &rules).map(|_| true),
        Command::Trace { agent, json } => {
            runtime()?.block_on(cmd::agent::trace(agent, json))?;
            Ok(true)
        }
        Command::Chaos(args) => runtime()?.block_on(cmd::chaos::run(args)),
        Command::Egress { command } => match command {
            EgressCommand::Validate { paths } => match PolicySet::load(&paths) {
                Ok(set) => {
                    println!(
                        "{} policies{}, 0 errors",
                        set.policies.len(),
                        if set.default.is_some() {
                            " and a default"
                        } else {
                            ""
                        }
                    );
                    Ok(true)
                }
                Err(errors) => {
                    for error in &errors {
                        println!("{error}");
                    }
                    println!("{} error(s)", errors.len());
                    Ok(false)
                }
            },
            EgressCommand::Unpin => {
                let released = vigil::probes::egress::release_foreign_pins()
                    .context("releasing pinned egress programs")?;
                println!("released {released} pinned egress link(s)");
                Ok(true)
            }
        },
        Command::Run {
            mut agent,
            mut rules,
            delivery: delivery_args,
            config,
            egress,
            mut egress_pin,
        } => {
            // Configuration, rules and policies are checked before anything touches the kernel.
            let mut source = None;
            let mut delivery = match &config {
                Some(path) => {
                    let file = FileConfig::load(path)?;
                    if let Some(matches) = run_matches {
                        let base_rules = rules.clone();
                        cmd::config::apply(&file, matches, &mut agent, &mut rules, &mut egress_pin);
                        source = Some(cmd::agent::ConfigSource {
                            path: path.clone(),
                            running: file.clone(),
                            base_rules,
                            overrides: cmd::config::RuleOverrides::from_matches(matches),
                        });
                    }
                    file.delivery
                }
                None => DeliveryConfig::stdout_only(),
            };
            delivery_args.apply(&mut delivery);
            let policy_files: Vec<PathBuf> =
                delivery.egress.iter().chain(&egress).cloned().collect();
            let policies = load_policies(&policy_files)?;
            // The rules are loaded by `run` itself, which loads them again on reloads; still
            // before anything touches the kernel.
            runtime()?.block_on(cmd::agent::run(
                agent,
                rules,
                delivery,
                policies,
                policy_files,
                egress_pin,
                source,
            ))?;
            Ok(true)
        }
    }
}

/// Loads the egress policies, printing every error before refusing to start.
fn load_policies(paths: &[PathBuf]) -> Result<PolicySet> {
    if paths.is_empty() {
        return Ok(PolicySet::empty());
    }
    PolicySet::load(paths).map_err(|errors| {
        for error in &errors {
            eprintln!("{error}");
        }
        anyhow::anyhow!("{} error(s) in the egress policies", errors.len())
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn init_logging(filter: &str, format: LogFormat) -> Result<()> {
    let filter =
        EnvFilter::try_new(filter).with_context(|| format!("bad log filter {filter:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}
