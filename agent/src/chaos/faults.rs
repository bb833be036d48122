//! Faults of the detection system itself, each with the figure an operator wants to know:
//! how long the agent is blind when it is killed and how soon that shows downstream, how long
//! a sink outage delays alerts and whether any is lost, how soon a workload that resolves a
//! sinkholed name and connects raises an egress alert, and how soon a TLS sink whose
//! certificate expired is reported.

use std::{path::Path, time::Duration};

use super::{
    agent::{IMPLANT, ManagedAgent},
    catalog::{ATTACKS, Attack},
    certs::SwitchableCertificate,
    receiver::{AlertReceiver, Received},
    runner::{ChaosError, run_script},
    sinkhole::{self, Sinkhole},
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
    Fault {
        name: "dns-sinkhole",
        description: "an implant asks a resolver that sinkholes its C2 name (answer 0.0.0.0) and \
                      connects to the answer: the egress policy refuses the connection in the \
                      kernel and `Egress not allowlisted` must arrive, naming the C2 domain",
        expected_rules: &[crate::egress::alert::RULE],
    },
    Fault {
        name: "tls-certificate-expired",
        description: "the TLS sink starts presenting an expired certificate while an attack \
                      runs: `Vigil sink delivery failing` must reach the other sink while the \
                      alert waits in the spool, and arrive once a valid certificate is back",
        expected_rules: &["Vigil sink delivery failing"],
    },
    Fault {
        name: "ring-buffer-flood",
        description: "the agent restarts with a 64 KiB ring buffer and four processes flood it \
                      with opens for two seconds: every kernel drop must be reported by \
                      `Vigil kernel events dropped`, and an attack right after the flood must \
                      be detected (the time from the flood's end is the recovery)",
        expected_rules: &[DROPPED],
    },
    Fault {
        name: "rules-reload-during-attack",
        description: "SIGHUP reloads the rules while an attack repeats every 50 ms: every \
                      repetition must be detected (no gap), and `Vigil configuration reloaded` \
                      must arrive",
        expected_rules: &[RELOADED],
    },
];

/// The agent's record of kernel drops.
const DROPPED: &str = "Vigil kernel events dropped";
/// The agent's record of a successful reload.
const RELOADED: &str = "Vigil configuration reloaded";
/// The ring buffer of the flood fault's agent: small enough that a flood overflows it.
const FLOOD_RING_BYTES: u32 = 64 * 1024;
/// Four processes opening and closing a file as fast as they can for two seconds.
const FLOOD: &str = r#"for i in 1 2 3 4; do
  "$PYTHON" -c 'import os, sys, time
path = sys.argv[1]
open(path, "w").close()
end = time.time() + 2
while time.time() < end:
    for _ in range(1000):
        os.close(os.open(path, os.O_RDONLY))' "${SANDBOX:?}/flood-$i" &
done
wait
"#;
/// Repetitions of the attack during the reload fault.
const REPETITIONS: usize = 30;
/// The attack, repeated every 50 ms; each repetition is its own `cat` process, told apart by a
/// second (missing) file in its command line.
const REPEATED_ATTACK: &str = "for i in $(seq 30); do cat /etc/shadow ./repetition-$i > /dev/null 2>&1; \
                               sleep 0.05; done\n";

/// The C2 domain the sinkhole fault's implant resolves.
const C2_NAME: &str = "c2.vigil-chaos.test";

/// The implant: asks the sinkhole for its C2 name with a hand-made query (as malware with its
/// own resolver code does), then connects to the answer on a C2-like port.
const IMPLANT_PROGRAM: &str = r#"
import socket, struct, sys
name, resolver = sys.argv[1], sys.argv[2]
question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
query = struct.pack(">HHHHHH", 0x5647, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.settimeout(2)
udp.sendto(query, (resolver, 53))
answer, _ = udp.recvfrom(512)
address = socket.inet_ntoa(answer[-4:])
tcp = socket.socket()
tcp.settimeout(1)
try:
    tcp.connect((address, 4444))
    print("connected", address)
except OSError as error:
    print("refused", address, error.errno)
"#;

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
    let visible = wait_for(receiver, timeout, |alert| {
        alert.arrived_unix_ns >= killed
            && alert.rule == "Vigil agent started"
            && output_field(alert, "vigil.previous_stop") == Some("unclean")
    })
    .await
    .map(|alert| alert.arrived_unix_ns);
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
        let sandbox = sandbox_for(workdir, &format!("outage-{}", attack.name))?;
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

/// Waits until `find` matches an alert received so far (the first such), or `timeout` passes.
async fn wait_for(
    receiver: &AlertReceiver,
    timeout: Duration,
    find: impl Fn(&Received) -> bool,
) -> Option<Received> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(alert) = receiver.received().into_iter().find(&find) {
            return Some(alert);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn output_field<'a>(alert: &'a Received, field: &str) -> Option<&'a str> {
    alert.alert["output_fields"][field].as_str()
}

/// Runs the implant against a sinkholing resolver and waits for the egress alert.
pub async fn dns_sinkhole(
    receiver: &AlertReceiver,
    workdir: &Path,
    timeout: Duration,
) -> Result<FaultOutcome, ChaosError> {
    let resolver = Sinkhole::start().await.map_err(|source| ChaosError::Io {
        what: format!(
            "starting the DNS sinkhole on {} (is something else listening there?)",
            sinkhole::RESOLVER
        ),
        source,
    })?;
    let sandbox = sandbox_for(workdir, "dns-sinkhole")?;
    let program = sandbox.join("implant.py");
    std::fs::write(&program, IMPLANT_PROGRAM).map_err(|source| ChaosError::Io {
        what: format!("writing {}", program.display()),
        source,
    })?;
    // The kernel names a process after the file it executed: a link named like the implant
    // gives Python the process name the egress policy selects.
    let script = format!(
        "ln -sf \"$PYTHON\" \"${{SANDBOX:?}}/{IMPLANT}\" && \
         exec \"${{SANDBOX:?}}/{IMPLANT}\" \"${{SANDBOX:?}}/implant.py\" {C2_NAME} {}",
        sinkhole::RESOLVER.ip()
    );
    let started = now_unix_ns();
    run_script(&script, &sandbox).await;
    let sinkhole_ip = sinkhole::SINKHOLE.to_string();
    let alert = wait_for(receiver, timeout, |alert| {
        alert.rule == crate::egress::alert::RULE
            && alert.arrived_unix_ns >= started
            && output_field(alert, "proc.name") == Some(IMPLANT)
            && output_field(alert, "fd.sip") == Some(sinkhole_ip.as_str())
    })
    .await;
    let _ = std::fs::remove_dir_all(&sandbox);
    let mut figures = vec![("dns_answers", resolver.answered() as f64)];
    if let Some(alert) = &alert {
        figures.push(("alert_ms", ms(started, alert.arrived_unix_ns)));
        if let Some(event) = alert.event_unix_ns {
            figures.push(("connect_to_alert_ms", ms(event, alert.arrived_unix_ns)));
        }
        figures.push((
            "names_c2_domain",
            f64::from(u8::from(
                output_field(alert, "fd.sip.name") == Some(C2_NAME),
            )),
        ));
        figures.push((
            "connection_blocked",
            f64::from(u8::from(
                output_field(alert, "egress.verdict") == Some("blocked"),
            )),
        ));
    }
    Ok(FaultOutcome {
        detected: alert.is_some(),
        latency_ms: alert.map(|alert| ms(started, alert.arrived_unix_ns)),
        figures,
    })
}

/// Swaps the TLS sink's certificate for an expired one while an attack runs, then back.
pub async fn tls_certificate_expired(
    receiver: &AlertReceiver,
    tls_receiver: &AlertReceiver,
    certificate: &SwitchableCertificate,
    workdir: &Path,
    timeout: Duration,
) -> Result<FaultOutcome, ChaosError> {
    let Some(attack) = ATTACKS
        .iter()
        .find(|attack| attack.name == "read-shadow-file")
    else {
        return Ok(FaultOutcome {
            detected: false,
            latency_ms: None,
            figures: Vec::new(),
        });
    };
    let expired = now_unix_ns();
    certificate.set_expired(true);
    let sandbox = sandbox_for(workdir, "tls-expired")?;
    run_script(attack.script, &sandbox).await;
    let _ = std::fs::remove_dir_all(&sandbox);
    // The attack's alert still reaches the healthy sink at once; its id tells which record
    // must later arrive at the TLS sink.
    let is_attack = |alert: &Received| {
        attack.expected_rules.contains(&alert.rule.as_str())
            && alert.event_unix_ns.is_some_and(|time| time >= expired)
    };
    let healthy = wait_for(receiver, timeout, is_attack).await;
    // The agent reports the failing sink after `alert_after` (1 s in the chaos configuration).
    let failing = wait_for(receiver, timeout + Duration::from_secs(2), |alert| {
        alert.rule == "Vigil sink delivery failing"
            && alert.arrived_unix_ns >= expired
            && output_field(alert, "vigil.sink") == Some("chaos-tls")
    })
    .await;
    let restored = now_unix_ns();
    certificate.set_expired(false);
    let attack_id = healthy
        .as_ref()
        .and_then(|alert| alert.alert["uuid"].as_str().map(str::to_string));
    let backlog = match &attack_id {
        Some(id) => {
            wait_for(tls_receiver, timeout + Duration::from_secs(5), |alert| {
                alert.alert["uuid"].as_str() == Some(id.as_str())
            })
            .await
        }
        None => None,
    };
    let mut figures = Vec::new();
    if let Some(failing) = &failing {
        figures.push(("failure_alerted_ms", ms(expired, failing.arrived_unix_ns)));
    }
    figures.push(("expired_ms", ms(expired, restored)));
    if let Some(backlog) = &backlog {
        figures.push((
            "backlog_delivered_ms",
            ms(restored, backlog.arrived_unix_ns),
        ));
    }
    let lost = usize::from(backlog.is_none());
    figures.push(("alerts_lost", lost as f64));
    Ok(FaultOutcome {
        detected: failing.is_some() && lost == 0,
        latency_ms: failing.map(|failing| ms(expired, failing.arrived_unix_ns)),
        figures,
    })
}

fn sandbox_for(workdir: &Path, name: &str) -> Result<std::path::PathBuf, ChaosError> {
    let sandbox = workdir.join(name);
    std::fs::create_dir_all(&sandbox).map_err(|source| ChaosError::Io {
        what: format!("creating {}", sandbox.display()),
        source,
    })?;
    Ok(sandbox)
}

/// Floods a deliberately small ring buffer, checks every drop was reported, and measures how
/// soon after the flood an attack is detected again.
pub async fn ring_buffer_flood(
    agent: &mut ManagedAgent,
    receiver: &AlertReceiver,
    workdir: &Path,
    timeout: Duration,
) -> Result<FaultOutcome, ChaosError> {
    agent
        .restart_with_ring_buffer(Some(FLOOD_RING_BYTES))
        .await?;
    let outcome = flood(agent, receiver, workdir, timeout).await;
    // Back to the default ring buffer for whatever runs next, whatever the flood found.
    agent.restart_with_ring_buffer(None).await?;
    outcome
}

async fn flood(
    agent: &ManagedAgent,
    receiver: &AlertReceiver,
    workdir: &Path,
    timeout: Duration,
) -> Result<FaultOutcome, ChaosError> {
    const DROPS: &str = "vigil_kernel_dropped_total";
    let before = agent.counter(DROPS).await.unwrap_or(0.0);
    let sandbox = sandbox_for(workdir, "flood")?;
    let started = now_unix_ns();
    run_script(FLOOD, &sandbox).await;
    let ended = now_unix_ns();
    // Recovery: the first attack after the flood that is detected.
    let canary = ATTACKS
        .iter()
        .find(|attack| attack.name == "read-shadow-file");
    let deadline = tokio::time::Instant::now() + timeout + Duration::from_secs(5);
    let mut recovered = None;
    while let Some(attack) = canary {
        let attempt = now_unix_ns();
        run_script(attack.script, &sandbox).await;
        let found = wait_for(receiver, Duration::from_millis(500), |alert| {
            attack.expected_rules.contains(&alert.rule.as_str())
                && alert.event_unix_ns.is_some_and(|time| time >= attempt)
        })
        .await;
        if let Some(alert) = found {
            recovered = Some(alert.arrived_unix_ns);
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&sandbox);
    let dropped = (agent.counter(DROPS).await.unwrap_or(0.0) - before).max(0.0);
    // The drop records come at most once a second: wait until they account for every drop.
    let reported = |received: &[Received]| -> (f64, Option<i64>) {
        let records: Vec<&Received> = received
            .iter()
            .filter(|alert| alert.rule == DROPPED && alert.arrived_unix_ns >= started)
            .collect();
        let count = records
            .iter()
            .filter_map(|alert| alert.alert["output_fields"]["vigil.dropped"].as_f64())
            .sum();
        (
            count,
            records.iter().map(|alert| alert.arrived_unix_ns).min(),
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let (alerted, first_record) = loop {
        let (count, first) = reported(&receiver.received());
        if count >= dropped || tokio::time::Instant::now() >= deadline {
            break (count, first);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut figures = vec![
        ("flood_ms", ms(started, ended)),
        ("kernel_drops", dropped),
        ("drops_alerted", alerted),
    ];
    if let Some(first) = first_record {
        figures.push(("drop_alert_ms", ms(started, first)));
    }
    if let Some(at) = recovered {
        figures.push(("recovery_ms", ms(ended, at)));
    }
    Ok(FaultOutcome {
        // Every drop reported, and detection working again.
        detected: dropped > 0.0 && alerted >= dropped && recovered.is_some(),
        latency_ms: first_record.map(|first| ms(started, first)),
        figures,
    })
}

/// Reloads the rules while an attack repeats, and counts the repetitions detected.
pub async fn rules_reload_during_attack(
    agent: &ManagedAgent,
    receiver: &AlertReceiver,
    workdir: &Path,
    timeout: Duration,
) -> Result<FaultOutcome, ChaosError> {
    let sandbox = sandbox_for(workdir, "reload")?;
    let started = now_unix_ns();
    let attack = {
        let sandbox = sandbox.clone();
        tokio::spawn(async move { run_script(REPEATED_ATTACK, &sandbox).await })
    };
    // About a third of the way through the repetitions.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reload_sent = now_unix_ns();
    let signalled = agent.reload();
    let _ = attack.await;
    let ended = now_unix_ns();
    let _ = std::fs::remove_dir_all(&sandbox);
    let repetitions = |received: &[Received]| -> Vec<(i64, String)> {
        let mut seen: Vec<(i64, String)> = received
            .iter()
            .filter(|alert| {
                alert.rule == "Account Secrets File Read"
                    && output_field(alert, "proc.cmdline")
                        .is_some_and(|command| command.contains("repetition-"))
                    && alert
                        .event_unix_ns
                        .is_some_and(|time| time >= started && time <= ended)
            })
            .filter_map(|alert| {
                let command = output_field(alert, "proc.cmdline")?.to_string();
                Some((alert.event_unix_ns?, command))
            })
            .collect();
        seen.sort_unstable();
        let mut commands = std::collections::HashSet::new();
        seen.retain(|(_, command)| commands.insert(command.clone()));
        seen
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let detected = loop {
        let seen = repetitions(&receiver.received());
        if seen.len() >= REPETITIONS || tokio::time::Instant::now() >= deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let reloaded = wait_for(receiver, timeout, |alert| {
        alert.rule == RELOADED && alert.arrived_unix_ns >= reload_sent
    })
    .await;
    let largest_gap = detected
        .windows(2)
        .map(|pair| ms(pair[0].0, pair[1].0))
        .fold(0.0, f64::max);
    let mut figures = vec![
        ("repetitions", REPETITIONS as f64),
        ("detected", detected.len() as f64),
        ("largest_gap_ms", largest_gap),
    ];
    if let Some(reloaded) = &reloaded {
        figures.push(("reload_ms", ms(reload_sent, reloaded.arrived_unix_ns)));
    }
    Ok(FaultOutcome {
        detected: signalled && reloaded.is_some() && detected.len() >= REPETITIONS,
        latency_ms: reloaded.map(|reloaded| ms(reload_sent, reloaded.arrived_unix_ns)),
        figures,
    })
}
