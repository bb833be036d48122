//! `vigil chaos` on the real kernel: a subset of the catalog runs against an agent the command
//! starts itself, with the bundled rules; every scenario must be detected.

use std::process::Command;

use serde_json::Value;
use vigil_integration_tests::{Scratch, require_root, vigil_binary};

/// Tactics run in CI: a spread across the catalog that stays within a minute.
const TACTICS: &[&str] = &[
    "credential-access",
    "persistence",
    "defense-evasion",
    "execution",
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
