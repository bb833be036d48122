//! `vigil chaos`: run the attack catalog against an agent and report detection and latency.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use vigil::chaos::{
    catalog::{ATTACKS, Attack},
    faults::{FAULTS, Fault},
    runner::{self, AgentUnderTest, ChaosOptions},
};

/// Options of `vigil chaos`.
#[derive(Args, Debug)]
pub struct ChaosArgs {
    /// List the catalog and exit.
    #[arg(long)]
    pub list: bool,
    /// Run only these scenarios: a name, a tactic or a technique id (repeatable).
    #[arg(long, value_name = "NAME|TACTIC|TECHNIQUE")]
    pub select: Vec<String>,
    /// Leave these scenarios out: a name, a tactic or a technique id (repeatable).
    #[arg(long, value_name = "NAME|TACTIC|TECHNIQUE")]
    pub skip: Vec<String>,
    /// Runs of each scenario.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// How long to wait for a detection after an action, e.g. 5s.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Rules the started agent loads (repeatable).
    #[arg(long = "rules", value_name = "PATH", default_value = "rules")]
    pub rules: Vec<PathBuf>,
    /// Measure an agent that is already running instead of starting one: it must have a
    /// webhook sink (format falco) to this address, where chaos listens.
    #[arg(long, value_name = "ADDR")]
    pub running_agent: Option<SocketAddr>,
    /// Write the report as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the report as Markdown.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write detection latencies as Prometheus histograms (textfile collector format).
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
    /// Exit with status 1 if the detection rate is below this (0.0 to 1.0).
    #[arg(long, value_name = "RATE")]
    pub min_detection: Option<f64>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| error.to_string())
}

/// Runs the command; `Ok(false)` when the detection rate is below `--min-detection`.
pub async fn run(args: ChaosArgs) -> Result<bool> {
    let attacks: Vec<&'static Attack> = select(&args.select)
        .into_iter()
        .filter(|attack| !matches(attack, &args.skip))
        .collect();
    let mut faults: Vec<&'static Fault> = FAULTS
        .iter()
        .filter(|fault| {
            let named = |names: &[String]| {
                names
                    .iter()
                    .any(|name| name == fault.name || name == "fault")
            };
            (args.select.is_empty() || named(&args.select)) && !named(&args.skip)
        })
        .collect();
    if attacks.is_empty() && faults.is_empty() {
        bail!(
            "no scenario matches --select {:?} --skip {:?}; `vigil chaos --list` shows names, \
             tactics and techniques",
            args.select,
            args.skip
        );
    }
    if args.list {
        for attack in &attacks {
            println!(
                "{:<40} {:<22} {:<10} {}",
                attack.name,
                attack.tactic,
                attack.technique,
                attack.expected_rules.join(" | ")
            );
        }
        for fault in &faults {
            println!(
                "{:<40} {:<22} {:<10} {}",
                fault.name, "fault", "-", fault.description
            );
        }
        return Ok(true);
    }
    if let Some(rate) = args.min_detection
        && !(0.0..=1.0).contains(&rate)
    {
        bail!("--min-detection is a rate from 0.0 to 1.0, not {rate}");
    }
    let agent = match args.running_agent {
        Some(listen) => {
            if !faults.is_empty() {
                eprintln!("vigil: fault scenarios need an agent chaos starts; skipping them");
                faults.clear();
            }
            AgentUnderTest::Running { listen }
        }
        None => AgentUnderTest::Start {
            binary: std::env::current_exe().context("finding the vigil binary")?,
            rules: args.rules.clone(),
        },
    };
    let stop = Arc::new(AtomicBool::new(false));
    let interrupt = Arc::clone(&stop);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: finishing the scenario in progress and cleaning up");
            interrupt.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let options = ChaosOptions {
        agent,
        attacks,
        faults,
        repeat: args.repeat,
        timeout: args.timeout,
        progress: true,
        stop,
    };
    let outcome = runner::run(&options)
        .await
        .context("running the chaos scenarios")?;
    let report = &outcome.report;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(report).context("rendering the JSON report")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, report.markdown())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.prometheus {
        let text = report
            .prometheus(&outcome.runs)
            .context("rendering the Prometheus histograms")?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(min) = args.min_detection
        && report.detection_rate < min
    {
        eprintln!(
            "vigil: detection rate {:.3} is below --min-detection {min}",
            report.detection_rate
        );
        return Ok(false);
    }
    Ok(true)
}

/// The attacks `select` names (by name, tactic or technique); all when empty.
fn select(select: &[String]) -> Vec<&'static Attack> {
    ATTACKS
        .iter()
        .filter(|attack| select.is_empty() || matches(attack, select))
        .collect()
}

/// Whether any of `names` is the attack's name, tactic or technique.
fn matches(attack: &Attack, names: &[String]) -> bool {
    names
        .iter()
        .any(|name| name == attack.name || name == attack.tactic || name == attack.technique)
}
