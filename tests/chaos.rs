//! `vigil chaos` on the real kernel: a subset of the catalog runs against an agent the command
//! starts itself, with the bundled rules; every scenario must be detected.

use std::process::Command;

use serde_json::Value;
use vigil::chaos::container;
use vigil_integration_tests::{Scratch, require_root, vigil_binary};

/// Tactics run in CI: a spread across the catalog that stays within a minute. With
/// `container-escape` (and a container scenario each in `credential-access` and `execution`)
/// the stand-in containers run too: cgroups named like docker scopes with docker state the
/// agent reads through `--host-root`.
const TACTICS: &[&str] = &[
    "credential-access",
    "persistence",
    "defense-evasion",
    "execution",
    "container-escape",
];

#[test]
fn chaos_detects_every_selected_scenario_and_reports_latencies() {
    require_root();
    let scratch = Scratch::new("chaos");
    let json = scratch.path("report.json");
    let markdown = scratch.path("report.md");
    let prometheus = scratch.path("chaos.prom");
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");
    let mut command = Command::new(vigil_binary());
    command.args(["chaos", "--rules", rules, "--min-detection", "1.0"]);
    // Under cargo the rule rightly ignores touch -r: build tools set timestamps all the time,
    // and this test's processes descend from cargo.
    command.args(["--skip", "timestomp-implant"]);
    for tactic in TACTICS {
        command.args(["--select", tactic]);
    }
    command.args(["--select", "fault"]);
    let output = command
        .arg("--json")
        .arg(&json)
        .arg("--markdown")
        .arg(&markdown)
        .arg("--prometheus")
        .arg(&prometheus)
        .output()
        .expect("vigil chaos");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(&json).unwrap_or_else(|_| panic!("no JSON report: {stderr}")),
    )
    .expect("JSON report");
    let missed: Vec<&Value> = report["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .filter(|s| s["detected"] != true)
        .collect();
    assert!(
        missed.is_empty(),
        "undetected: {missed:#?}\n{stdout}\n{stderr}"
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(report["detection_rate"], 1.0);
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    let (faults, scenarios): (Vec<&Value>, Vec<&Value>) =
        scenarios.iter().partition(|s| s["kind"] == "fault");
    assert!(scenarios.len() >= 8, "{} scenarios", scenarios.len());
    let containers = scenarios
        .iter()
        .filter(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("container-"))
        })
        .count();
    assert!(containers >= 6, "{containers} container scenarios");
    // Every stand-in container was cleaned up: none is left whose chaos run has ended (those of
    // chaos runs still going are theirs).
    let slice = vigil_integration_tests::cgroup2_root().join(container::SLICE);
    let leftovers: Vec<String> = std::fs::read_dir(&slice)
        .map(|dir| {
            dir.flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| {
                    container::creator_pid(name)
                        .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    let figure = |name: &str, key: &str| {
        faults
            .iter()
            .find(|f| f["name"] == name)
            .and_then(|f| f["figures"][key].as_f64())
            .unwrap_or_else(|| panic!("{name} has no {key}: {faults:#?}"))
    };
    // Killed: the agent is blind until it is ready again, and the gap shows downstream.
    assert!(figure("agent-killed", "blind_window_ms") > 0.0);
    assert!(figure("agent-killed", "gap_visible_ms") > 0.0);
    // An outage loses nothing and the backlog arrives once the sink is back.
    assert_eq!(figure("sink-outage", "alerts_lost"), 0.0);
    assert!(figure("sink-outage", "backlog_delivered_ms") < 10_000.0);
    // The sinkholed C2 name: the connection is refused in the kernel and the alert names it.
    assert_eq!(figure("dns-sinkhole", "names_c2_domain"), 1.0);
    assert_eq!(figure("dns-sinkhole", "connection_blocked"), 1.0);
    assert!(figure("dns-sinkhole", "dns_answers") >= 1.0);
    // An expired sink certificate is reported while the alert waits, and nothing is lost.
    assert!(figure("tls-certificate-expired", "failure_alerted_ms") > 0.0);
    assert_eq!(figure("tls-certificate-expired", "alerts_lost"), 0.0);
    // Every kernel drop of the flood is reported downstream, and detection recovers.
    let drops = figure("ring-buffer-flood", "kernel_drops");
    assert!(drops > 0.0);
    assert!(figure("ring-buffer-flood", "drops_alerted") >= drops);
    assert!(figure("ring-buffer-flood", "recovery_ms") < 10_000.0);
    // A reload in the middle of a repeated attack misses none of the repetitions.
    assert_eq!(
        figure("rules-reload-during-attack", "detected"),
        figure("rules-reload-during-attack", "repetitions")
    );
    for scenario in scenarios {
        assert!(TACTICS.contains(&scenario["tactic"].as_str().unwrap_or_default()));
        assert_eq!(scenario["kind"], "attack");
        assert!(
            scenario["technique"]
                .as_str()
                .is_some_and(|t| t.starts_with('T'))
        );
        let latency = &scenario["latency_ms"];
        let p50 = latency["p50"].as_f64().expect("p50");
        assert!(p50 > 0.0 && p50 < 5_000.0, "{scenario}");
        assert!(latency["p95"].as_f64() >= Some(p50));
        assert!(latency["max"].as_f64() >= latency["p95"].as_f64());
        // The alert leaves the rule engine before it reaches the sinks, both of them.
        let engine = scenario["engine_latency_ms"]["p50"]
            .as_f64()
            .expect("engine p50");
        assert!(engine > 0.0 && engine <= p50, "{scenario}");
        assert!(
            scenario["sink_latency_ms"]["chaos-tls"]["p50"]
                .as_f64()
                .is_some_and(|tls| tls >= engine),
            "{scenario}"
        );
        assert!(
            scenario["fired"]
                .as_array()
                .is_some_and(|fired| fired.iter().all(|rule| scenario["expected_rules"]
                    .as_array()
                    .is_some_and(|expected| expected.contains(rule))))
        );
    }
    assert!(report["false_positives"].as_u64().is_some());
    assert!(stdout.contains("detection rate 100.0 %"), "{stdout}");
    let markdown = std::fs::read_to_string(&markdown).expect("markdown report");
    assert!(markdown.starts_with("# Vigil detection report"));
    let histograms = std::fs::read_to_string(&prometheus).expect("histograms");
    assert!(histograms.contains("vigil_chaos_detection_latency_seconds_bucket"));
    assert!(histograms.contains("vigil_chaos_detection_rate 1"));
}

#[test]
fn chaos_fails_the_gate_when_a_scenario_is_missed() {
    require_root();
    let scratch = Scratch::new("chaos-gate");
    // No rules that can fire: every scenario is missed, so a gate of 0.5 fails.
    let rules = scratch.path("rules.yaml");
    std::fs::write(
        &rules,
        "- rule: Never\n  desc: matches nothing\n  condition: evt.type = mkdir and proc.name = vigil-none\n  output: never (%proc.name)\n  priority: DEBUG\n",
    )
    .expect("rules");
    let output = Command::new(vigil_binary())
        .args(["chaos", "--select", "credential-access", "--timeout", "1s"])
        .arg("--rules")
        .arg(&rules)
        .args(["--min-detection", "0.5"])
        .output()
        .expect("vigil chaos");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("detection rate 0.0 %"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("below --min-detection 0.5"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
