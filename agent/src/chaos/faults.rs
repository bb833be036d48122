//! Faults of the detection system itself, each with the figure an operator wants to know:
//! how long the agent is blind when it is killed and how soon that shows downstream, and how
//! long a sink outage delays alerts and whether any is lost.

use std::{path::Path, time::Duration};

use super::{
    agent::ManagedAgent,
    catalog::{ATTACKS, Attack},
    receiver::AlertReceiver,
    runner::{ChaosError, run_script},
};
use crate::clock::now_unix_ns;

/// A fault scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Unique, kebab-case.
    pub name: &'static str,
    /// What it does and what counts as detecting it.
    pub description: &'static str,
    /// The records (rules) whose arrival counts as detection.
    pub expected_rules: &'static [&'static str],
}

/// Every fault scenario.
pub const FAULTS: &[Fault] = &[
    Fault {
        name: "agent-killed",
        description: "SIGKILL the agent and start it again: the blind window lasts until the new \
                      agent is ready; the gap shows downstream when `Vigil agent started` \
                      (previous stop unclean) arrives",
        expected_rules: &["Vigil agent started"],
    },
    Fault {
        name: "sink-outage",
        description: "the sink answers 503 while three attacks run, then recovers: every alert \
                      must arrive, and the time from recovery to the last one is measured",
        expected_rules: &[
            "Account Secrets File Read",
            "Private Key Hunting",
            "Symbolic Link To Sensitive File",
        ],
    },
];

/// What a fault run found.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultOutcome {
    /// Whether it was detected (the gap became visible; nothing was lost).
    pub detected: bool,
    /// The headline latency, milliseconds.
    pub latency_ms: Option<f64>,
    /// Named figures, milliseconds or counts.
    pub figures: Vec<(&'static str, f64)>,
}

fn ms(from: i64, to: i64) -> f64 {
    (to - from).max(0) as f64 / 1e6
}

/// Kills the agent and starts it again.
pub async fn agent_killed(
    agent: &mut ManagedAgent,
    receiver: &AlertReceiver,
    timeout: Duration,
) -> Result<FaultOutcome, ChaosError> {
    let killed = now_unix_ns();
    agent.kill().await;
    agent.launch().await?;
    let ready = now_unix_ns();
    let deadline = tokio::time::Instant::now() + timeout;
    let visible = loop {
        let found = receiver.received().into_iter().find(|alert| {
            alert.arrived_unix_ns >= killed
                && alert.rule == "Vigil agent started"
                && alert.alert["output_fields"]["vigil.previous_stop"] == "unclean"
        });
        if let Some(alert) = found {
            break Some(alert.arrived_unix_ns);
        }
        if tokio::time::Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut figures = vec![("blind_window_ms", ms(killed, ready))];
    if let Some(at) = visible {
        figures.push(("gap_visible_ms", ms(killed, at)));
    }
    Ok(FaultOutcome {
        detected: visible.is_some(),
        latency_ms: visible.map(|at| ms(killed, at)),
        figures,
    })
}

/// Runs three attacks while the sink is down, then lets it recover.
pub async fn sink_outage(
    receiver: &AlertReceiver,
    workdir: &Path,
    fault: &Fault,
    timeout: Duration,
) -> Result<FaultOutcome, ChaosError> {
    let attacks: Vec<&Attack> = ["read-shadow-file", "grep-private-keys", "symlink-to-shadow"]
        .iter()
        .filter_map(|name| ATTACKS.iter().find(|attack| attack.name == *name))
        .collect();
    let started = now_unix_ns();
    receiver.set_down(true);
    for attack in &attacks {
        let sandbox = workdir.join(format!("outage-{}", attack.name));
        std::fs::create_dir_all(&sandbox).map_err(|source| ChaosError::Io {
            what: format!("creating {}", sandbox.display()),
            source,
        })?;
        run_script(attack.script, &sandbox).await;
        let _ = std::fs::remove_dir_all(&sandbox);
    }
    // Long enough for the agent to try, fail and start backing off.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let recovered = now_unix_ns();
    receiver.set_down(false);
    let deadline = tokio::time::Instant::now() + timeout + Duration::from_secs(5);
    let (delivered, last) = loop {
        let received = receiver.received();
        let arrivals: Vec<i64> = fault
            .expected_rules
            .iter()
            .filter_map(|rule| {
                received
                    .iter()
                    .find(|alert| {
                        alert.rule == *rule
                            && alert.event_unix_ns.is_some_and(|time| time >= started)
                    })
                    .map(|alert| alert.arrived_unix_ns)
            })
            .collect();
        if arrivals.len() == fault.expected_rules.len() || tokio::time::Instant::now() >= deadline {
            break (arrivals.len(), arrivals.into_iter().max());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let lost = fault.expected_rules.len() - delivered;
    let mut figures = vec![
        ("outage_ms", ms(started, recovered)),
        ("alerts_lost", lost as f64),
    ];
    if let Some(last) = last {
        figures.push(("backlog_delivered_ms", ms(recovered, last)));
    }
    Ok(FaultOutcome {
        detected: lost == 0,
        latency_ms: last.map(|last| ms(recovered, last)),
        figures,
    })
}
