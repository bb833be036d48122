//! The `vigil` command end to end: rules validation, alerts from `vigil run` on the real
//! kernel, and `vigil replay` of a `vigil trace --json` recording.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use vigil_integration_tests::{
    Running, cat, free_addr, require_root, stop, vigil_binary, wait_running,
};

const RULE: &str = "- rule: Marker file read
  desc: a test rule
  condition: evt.type in (open, openat) and fd.name endswith vigil-marker and proc.name = cat
  output: marker read (file=%fd.name proc=%proc.name pid=%proc.pid parent=%proc.pname)
  priority: WARNING
  tags: [test, T0000]
";

struct Temp(PathBuf);

impl Temp {
    fn new(name: &str) -> Temp {
        let dir = std::env::temp_dir().join(format!("vigil-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Temp(dir)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn rules_validate_reports_errors_with_positions_and_exit_status() {
    let temp = Temp::new("validate");
    let good = temp.0.join("good.yaml");
    std::fs::write(&good, RULE).expect("good rules");
    let status = Command::new(vigil_binary())
        .args(["rules", "validate"])
        .arg(&good)
        .stdout(Stdio::null())
        .status()
        .expect("run vigil");
    assert!(status.success());

    let bad = temp.0.join("bad.yaml");
    std::fs::write(
        &bad,
        "- rule: broken\n  desc: d\n  condition: >\n    proc.name = cat and\n    fd.nosuch = 1\n  output: o\n  priority: loud\n- macro: m\n  condition: evt.type = opnat\n- rule: uses m\n  desc: d\n  condition: m\n  output: o\n  priority: info\n",
    )
    .expect("bad rules");
    let output = Command::new(vigil_binary())
        .args(["rules", "validate", "--json"])
        .arg(&bad)
        .output()
        .expect("run vigil");
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    let errors = report["errors"].as_array().expect("errors");
    assert!(errors.len() >= 2, "every error is reported: {report:#}");
    for error in errors {
        for key in ["code", "message", "file", "line", "column", "item"] {
            assert!(!error[key].is_null(), "{key} missing in {error}");
        }
    }
    let priority = errors
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("priority"))
        })
        .expect("the bad priority is reported");
    assert_eq!(priority["line"], 7);
    let evttype = errors
        .iter()
        .find(|e| e["message"].as_str().is_some_and(|m| m.contains("opnat")))
        .expect("the unknown event type is reported");
    assert_eq!(evttype["line"], 9);
    assert_eq!(evttype["column"], 25);
    assert_eq!(evttype["code"], "LOAD_ERR_COMPILE_CONDITION");
}

#[test]
fn run_prints_falco_alerts_and_replay_reproduces_them() {
    require_root();
    let temp = Temp::new("run");
    let rules = temp.0.join("rules.yaml");
    std::fs::write(&rules, RULE).expect("rules");
    let marker = temp.0.join("vigil-marker");
    std::fs::write(&marker, "x").expect("marker");
    let recording = temp.0.join("trace.jsonl");

    let mut agent = Running(
        Command::new(vigil_binary())
            .args(["run", "--metrics-addr", &free_addr(), "--rules"])
            .arg(&rules)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vigil run"),
    );
    let drain = wait_running(&mut agent.0);
    let mut tracer = Running(
        Command::new(vigil_binary())
            .args(["trace", "--json", "--metrics-addr", &free_addr()])
            .stdout(std::fs::File::create(&recording).expect("recording"))
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vigil trace"),
    );
    let tracer_drain = wait_running(&mut tracer.0);

    let pid = cat(&marker);

    let stdout = agent.0.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    // The agent's own records (started, heartbeat) come with source "vigil".
    let mut alert: serde_json::Value = lines
        .by_ref()
        .map(|line| serde_json::from_str::<serde_json::Value>(&line.expect("utf-8")).expect("JSON"))
        .find(|line| line["source"] != "vigil")
        .expect("an alert");
    assert_eq!(alert["rule"], "Marker file read");
    assert_eq!(alert["priority"], "Warning");
    assert_eq!(alert["source"], "syscall");
    // Falco keeps tags as a set: sorted.
    assert_eq!(alert["tags"], serde_json::json!(["T0000", "test"]));
    assert_eq!(alert["output_fields"]["proc.pid"], pid);
    assert_eq!(
        alert["output_fields"]["fd.name"],
        marker.display().to_string()
    );
    assert_eq!(alert["output_fields"]["proc.name"], "cat");
    let output = alert["output"].as_str().expect("output");
    assert!(
        output.ends_with(&format!(
            ": Warning marker read (file={} proc=cat pid={pid} parent={})",
            marker.display(),
            alert["output_fields"]["proc.pname"]
                .as_str()
                .unwrap_or("<NA>")
        )),
        "{output}"
    );
    assert!(alert["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(alert["hostname"].as_str().is_some_and(|h| !h.is_empty()));
    std::thread::spawn(move || for _ in lines {});
    stop(&mut agent.0);
    drop(drain);

    // Give the tracer a moment to write the event, then replay the recording.
    std::thread::sleep(Duration::from_millis(500));
    stop(&mut tracer.0);
    drop(tracer_drain);
    let replay = Command::new(vigil_binary())
        .args(["replay"])
        .arg(&recording)
        .arg("--rules")
        .arg(&rules)
        .output()
        .expect("vigil replay");
    assert!(replay.status.success());
    let replayed: Vec<serde_json::Value> = String::from_utf8_lossy(&replay.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert JSON"))
        .collect();
    let same = replayed
        .iter()
        .find(|a| a["output_fields"]["proc.pid"] == pid)
        .expect("replay raised the same alert");
    assert_eq!(same["rule"], alert["rule"]);
    // Delivery adds the agent's sequence number and when the engine raised the alert; replay
    // prints the engine's alert as is.
    assert!(alert["output_fields"]["vigil.seq"].as_u64().is_some());
    assert!(alert["uuid"].as_str().is_some());
    let detected = alert["output_fields"]["vigil.detected_time"]
        .as_str()
        .expect("detected time")
        .to_string();
    assert!(
        detected.as_str() >= alert["time"].as_str().unwrap_or_default(),
        "raised ({detected}) before its event ({})",
        alert["time"]
    );
    if let Some(fields) = alert["output_fields"].as_object_mut() {
        fields.remove("vigil.seq");
        fields.remove("vigil.detected_time");
    }
    assert_eq!(same["output_fields"], alert["output_fields"]);
}
