//! Runs the catalog: starts an agent (or listens for a running one), performs each attack in a
//! private sandbox, and waits for the alert that detects it.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::process::Command;

use super::{
    agent::{ChaosSinks, ManagedAgent},
    catalog::{Attack, Kind},
    certs::{CertError, ChaosTls},
    faults::{self, Fault},
    progress::Progress,
    receiver::{AlertReceiver, Received},
    report::{Report, Run, ScenarioReport},
};
use crate::clock::now_unix_ns;

/// How long a scenario's script (or cleanup) may run.
const SCRIPT_LIMIT: Duration = Duration::from_secs(15);
/// Event times are the kernel's; allow for the clock offset between it and our start stamp.
const CLOCK_SLACK_NS: i64 = 50_000_000;
/// After a run, how long its stragglers (a rule raised once per stream, the sandbox's removal)
/// may still arrive before everything received counts as used.
const SETTLE: Duration = Duration::from_millis(150);

/// Why a chaos run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// Setting up (receiver, sandbox, config) failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The agent did not become ready.
    #[error("the agent did not become ready within {0:?}; its log: {1}")]
    AgentNotReady(Duration, String),
    /// The throwaway certificates could not be made.
    #[error(transparent)]
    Certificates(#[from] CertError),
    /// Interrupted (SIGINT); cleanups ran.
    #[error("interrupted; the scenario in progress was cleaned up")]
    Interrupted,
}

/// Which agent is measured.
#[derive(Clone, Debug)]
pub enum AgentUnderTest {
    /// Start `binary run --rules ... --config <generated>` and stop it at the end.
    Start {
        /// The `vigil` binary.
        binary: PathBuf,
        /// Rules files or directories.
        rules: Vec<PathBuf>,
    },
    /// An agent already running, configured with a webhook sink (Falco format) to this
    /// address, where the runner listens.
    Running {
        /// Where to listen.
        listen: SocketAddr,
    },
}

/// What to run.
#[derive(Clone, Debug)]
pub struct ChaosOptions {
    /// The agent.
    pub agent: AgentUnderTest,
    /// The attacks, in order.
    pub attacks: Vec<&'static Attack>,
    /// The fault scenarios, run after the attacks (only against an agent chaos started).
    pub faults: Vec<&'static Fault>,
    /// Runs per attack.
    pub repeat: usize,
    /// How long to wait for a detection after the action ended.
    pub timeout: Duration,
    /// Show progress on stderr: a bar on a terminal, a line per run.
    pub progress: bool,
    /// Set to stop after the scenario in progress (SIGINT).
    pub stop: Arc<AtomicBool>,
}

/// The report and every run's observations (for histograms).
pub struct Outcome {
    /// The report.
    pub report: Report,
    /// Runs per scenario.
    pub runs: Vec<(String, Vec<Run>)>,
}

/// Work space of one chaos run, removed at the end.
struct Workdir(PathBuf);

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the attacks and measures their detection.
pub async fn run(options: &ChaosOptions) -> Result<Outcome, ChaosError> {
    let io = |what: &str| {
        let what = what.to_string();
        move |source| ChaosError::Io { what, source }
    };
    let workdir = Workdir(std::env::temp_dir().join(format!("vigil-chaos-{}", std::process::id())));
    create_private_dir(&workdir.0).map_err(io("creating the work directory"))?;
    let listen = match &options.agent {
        AgentUnderTest::Running { listen } => *listen,
        AgentUnderTest::Start { .. } => SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let receiver = AlertReceiver::bind(listen)
        .await
        .map_err(io("listening for alerts"))?;
    // The agent chaos starts also delivers to a TLS receiver, whose certificate a fault
    // swaps for an expired one.
    let mut tls = None;
    let mut agent = match &options.agent {
        AgentUnderTest::Start { binary, rules } => {
            let certificates = ChaosTls::generate()?;
            let tls_receiver = AlertReceiver::bind_tls(Arc::clone(&certificates.server))
                .await
                .map_err(io("listening for alerts over TLS"))?;
            let sinks = ChaosSinks {
                webhook: &receiver.url(),
                tls_webhook: &tls_receiver.url(),
                ca_pem: &certificates.ca_pem,
            };
            let agent = ManagedAgent::start(binary, rules, &sinks, &workdir.0).await?;
            tls = Some((certificates, tls_receiver));
            Some(agent)
        }
        AgentUnderTest::Running { .. } => None,
    };
    let other_sinks: Vec<(&str, &AlertReceiver)> = tls
        .iter()
        .map(|(_, tls_receiver)| ("chaos-tls", tls_receiver))
        .collect();

    // Alerts before this index belong to earlier runs.
    let mut watermark = 0usize;
    let mut scenarios = Vec::new();
    let mut all_runs = Vec::new();
    let total = options.attacks.len() * options.repeat.max(1);
    let faults_to_run = if agent.is_some() {
        options.faults.len()
    } else {
        0
    };
    let progress = Progress::new(options.progress, total + faults_to_run);
    let mut done = 0;
    let mut interrupted = false;
    'attacks: for attack in &options.attacks {
        let mut runs = Vec::new();
        for _ in 0..options.repeat.max(1) {
            if options.stop.load(Ordering::SeqCst) {
                interrupted = true;
                break 'attacks;
            }
            progress.running(attack.name);
            let run = run_attack(
                attack,
                &workdir.0,
                (&receiver, &other_sinks),
                watermark,
                options.timeout,
            )
            .await?;
            // Whatever this run raised, including late duplicates, is not the next run's.
            tokio::time::sleep(SETTLE).await;
            watermark = receiver.received().len();
            done += 1;
            let outcome = match (&run.rule, run.delivery_ms) {
                (Some(rule), Some(ms)) => format!("detected in {ms:.1} ms by {rule}"),
                _ => "MISSED".to_string(),
            };
            progress.finished(&format!("[{done}/{total}] {}: {outcome}", attack.name));
            runs.push(run);
        }
        scenarios.push(ScenarioReport::new(
            attack.name,
            Kind::Attack,
            attack.tactic,
            attack.technique,
            attack.expected_rules,
            &runs,
        ));
        all_runs.push((attack.name.to_string(), runs));
    }
    if !interrupted && let Some(agent) = agent.as_mut() {
        for fault in &options.faults {
            if options.stop.load(Ordering::SeqCst) {
                interrupted = true;
                break;
            }
            progress.running(fault.name);
            let outcome = match (fault.name, &tls) {
                ("agent-killed", _) => {
                    faults::agent_killed(agent, &receiver, options.timeout).await?
                }
                ("ring-buffer-flood", _) => {
                    faults::ring_buffer_flood(agent, &receiver, &workdir.0, options.timeout).await?
                }
                ("rules-reload-during-attack", _) => {
                    faults::rules_reload_during_attack(
                        agent,
                        &receiver,
                        &workdir.0,
                        options.timeout,
                    )
                    .await?
                }
                ("dns-sinkhole", _) => {
                    faults::dns_sinkhole(&receiver, &workdir.0, options.timeout).await?
                }
                ("tls-certificate-expired", Some((certificates, tls_receiver))) => {
                    faults::tls_certificate_expired(
                        &receiver,
                        tls_receiver,
                        &certificates.certificate,
                        &workdir.0,
                        options.timeout,
                    )
                    .await?
                }
                _ => faults::sink_outage(&receiver, &workdir.0, fault, options.timeout).await?,
            };
            let figures: Vec<String> = outcome
                .figures
                .iter()
                .map(|(name, value)| format!("{name}={value:.1}"))
                .collect();
            progress.finished(&format!(
                "[fault] {}: {} ({})",
                fault.name,
                if outcome.detected {
                    "visible"
                } else {
                    "NOT VISIBLE"
                },
                figures.join(" ")
            ));
            let run = Run {
                rule: outcome
                    .detected
                    .then(|| fault.expected_rules[0].to_string()),
                delivery_ms: outcome.latency_ms,
                event_ms: None,
                engine_ms: None,
                sinks_ms: Vec::new(),
            };
            let mut report = ScenarioReport::new(
                fault.name,
                Kind::Fault,
                "fault",
                "-",
                fault.expected_rules,
                std::slice::from_ref(&run),
            );
            report.figures = outcome
                .figures
                .iter()
                .map(|(name, value)| ((*name).to_string(), *value))
                .collect();
            scenarios.push(report);
            all_runs.push((fault.name.to_string(), vec![run]));
        }
    }
    progress.running("benign workload (false positives)");
    let false_positives = if interrupted {
        Vec::new()
    } else {
        benign_workload(&workdir.0, &receiver, options.timeout).await?
    };
    progress.clear();
    if let Some(agent) = agent.as_mut() {
        agent.stop().await;
    }
    if interrupted {
        return Err(ChaosError::Interrupted);
    }
    Ok(Outcome {
        report: Report::new(scenarios, false_positives),
        runs: all_runs,
    })
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Runs one attack and waits for its alert at `receivers.0` (alerts from index `watermark` on),
/// then for the same alert at each of the other sinks' receivers.
async fn run_attack(
    attack: &Attack,
    workdir: &Path,
    receivers: (&AlertReceiver, &[(&str, &AlertReceiver)]),
    watermark: usize,
    timeout: Duration,
) -> Result<Run, ChaosError> {
    let (receiver, others) = receivers;
    let sandbox = workdir.join(format!("{}-{}", attack.name, now_unix_ns()));
    create_private_dir(&sandbox).map_err(|source| ChaosError::Io {
        what: format!("creating the sandbox {}", sandbox.display()),
        source,
    })?;
    let started = now_unix_ns();
    run_script(attack.script, &sandbox).await;
    // The cleanup runs whatever the script did.
    if !attack.cleanup.is_empty() {
        run_script(attack.cleanup, &sandbox).await;
    }
    let _ = std::fs::remove_dir_all(&sandbox);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let received = receiver.received();
        let found = received.iter().skip(watermark).find(|alert| {
            attack.expected_rules.contains(&alert.rule.as_str())
                && alert
                    .event_unix_ns
                    .is_some_and(|time| time >= started - CLOCK_SLACK_NS)
        });
        if let Some(alert) = found {
            let mut run = detected(alert, started);
            run.sinks_ms = delivered_elsewhere(alert, others, started, timeout).await;
            return Ok(run);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Run {
                rule: None,
                delivery_ms: None,
                event_ms: None,
                engine_ms: None,
                sinks_ms: Vec::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// When the alert arrived at each of the other sinks (those it did not reach in time are left
/// out), milliseconds from `started`.
async fn delivered_elsewhere(
    alert: &Received,
    others: &[(&str, &AlertReceiver)],
    started: i64,
    timeout: Duration,
) -> Vec<(String, f64)> {
    let Some(id) = alert.alert["uuid"].as_str() else {
        return Vec::new();
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut arrivals = Vec::new();
    for (sink, receiver) in others {
        loop {
            let arrived = receiver
                .received()
                .into_iter()
                .find(|other| other.alert["uuid"].as_str() == Some(id));
            if let Some(other) = arrived {
                let ms = (other.arrived_unix_ns - started).max(0) as f64 / 1e6;
                arrivals.push(((*sink).to_string(), ms));
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    arrivals
}

fn detected(alert: &Received, started: i64) -> Run {
    let ms = |ns: i64| (ns - started).max(0) as f64 / 1e6;
    Run {
        rule: Some(alert.rule.clone()),
        delivery_ms: Some(ms(alert.arrived_unix_ns)),
        event_ms: alert.event_unix_ns.map(ms),
        engine_ms: alert.detected_unix_ns.map(ms),
        sinks_ms: Vec::new(),
    }
}

/// Runs a script under /bin/sh in the sandbox, killed if it outlives [`SCRIPT_LIMIT`].
pub(crate) async fn run_script(script: &str, sandbox: &Path) {
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .current_dir(sandbox)
        .env("SANDBOX", sandbox)
        .env("PYTHON", "/usr/bin/python3")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let Ok(mut child) = child else {
        tracing::warn!("could not start /bin/sh for a chaos script");
        return;
    };
    if tokio::time::timeout(SCRIPT_LIMIT, child.wait())
        .await
        .is_err()
    {
        tracing::warn!(limit = ?SCRIPT_LIMIT, "a chaos script ran too long; killed");
        let _ = child.kill().await;
    }
}

/// Ordinary activity; any alert it raises is a false positive.
const BENIGN: &str = "ls -la /etc > /dev/null; cat /etc/hostname > /dev/null; \
    grep root /etc/passwd > /dev/null; date > /dev/null; echo data > \"$SANDBOX/file\"; \
    cp \"$SANDBOX/file\" \"$SANDBOX/copy\"; tar -cf \"$SANDBOX/a.tar\" -C \"$SANDBOX\" file; \
    rm \"$SANDBOX/copy\"; \"$PYTHON\" -c 'print(sum(range(10)))' > /dev/null; \
    ps aux > /dev/null; uname -a > /dev/null; sleep 0.2";

/// Runs [`BENIGN`] and returns the rules of the alerts raised meanwhile (the agent's own
/// records aside).
async fn benign_workload(
    workdir: &Path,
    receiver: &AlertReceiver,
    settle: Duration,
) -> Result<Vec<String>, ChaosError> {
    let sandbox = workdir.join("benign");
    create_private_dir(&sandbox).map_err(|source| ChaosError::Io {
        what: "creating the benign workload's sandbox".into(),
        source,
    })?;
    let seen_before = receiver.received().len();
    let started = now_unix_ns();
    run_script(BENIGN, &sandbox).await;
    let ended = now_unix_ns();
    tokio::time::sleep(settle.min(Duration::from_secs(3))).await;
    Ok(receiver
        .received()
        .into_iter()
        .skip(seen_before)
        .filter(|alert| alert.alert["source"] != "vigil")
        .filter(|alert| {
            alert
                .event_unix_ns
                .is_some_and(|time| time >= started - CLOCK_SLACK_NS && time <= ended)
        })
        .map(|alert| alert.rule)
        .collect())
}
