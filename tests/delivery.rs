//! Alert delivery on the real path: `vigil run --config` with the real probes, a real HTTP
//! receiver on loopback, and an agent killed with SIGKILL while the receiver is down. The
//! alert raised before the crash is delivered after the restart.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use vigil::testing::http_receiver::{Mode, Receiver};
use vigil_integration_tests::{
    Running, Scratch, cat, free_addr, require_root, scrape, stop, vigil_binary, wait_running,
};

const RULE: &str = "- rule: Delivery marker read
  desc: a test rule
  condition: evt.type in (open, openat) and fd.name endswith vigil-delivery-marker and proc.name = cat
  output: delivery marker read (file=%fd.name pid=%proc.pid)
  priority: WARNING
  tags: [test]
";

fn start_agent(config: &std::path::Path, rules: &std::path::Path, metrics: &str) -> Running {
    let mut agent = Running(
        Command::new(vigil_binary())
            .args(["run", "--metrics-addr", metrics, "--rules"])
            .arg(rules)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vigil run"),
    );
    // The drain thread ends with the agent.
    drop(wait_running(&mut agent.0));
    agent
}

#[test]
fn alert_raised_before_a_crash_is_delivered_after_the_restart() {
    require_root();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let receiver = runtime.block_on(Receiver::start(Mode::Fail(503)));
    let scratch = Scratch::new("delivery");
    let rules = scratch.path("rules.yaml");
    std::fs::write(&rules, RULE).expect("rules");
    let marker = scratch.path("vigil-delivery-marker");
    std::fs::write(&marker, "x").expect("marker");
    let config = scratch.path("vigil.yaml");
    std::fs::write(
        &config,
        format!(
            "sinks:\n  - type: webhook\n    name: siem\n    url: {}\n    format: ecs\n    \
             retry: {{initial_backoff: 50ms, max_backoff: 200ms}}\n    \
             batch: {{max_wait: 10ms}}\nspool_dir: {}\nheartbeat_interval: off\n",
            receiver.url("http"),
            scratch.path("spool").display()
        ),
    )
    .expect("config");

    let metrics = free_addr();
    let mut agent = start_agent(&config, &rules, &metrics);
    let pid = cat(&marker);

    // Wait until the alert is queued for the failing receiver, then kill the agent outright.
    let deadline = Instant::now() + Duration::from_secs(20);
    while scrape(&metrics, "vigil_sink_queued_records{sink=\"siem\"}") < 2.0
        || scrape(&metrics, "vigil_sink_failed_total{sink=\"siem\"}") < 1.0
    {
        assert!(Instant::now() < deadline, "the alert was never queued");
        std::thread::sleep(Duration::from_millis(50));
    }
    agent.0.kill().expect("SIGKILL");
    let _ = agent.0.wait();
    assert!(
        receiver.lines().is_empty(),
        "nothing got through the outage"
    );

    receiver.set_mode(Mode::Accept);
    let metrics = free_addr();
    let mut agent = start_agent(&config, &rules, &metrics);
    let lines = runtime.block_on(receiver.wait_lines(Duration::from_secs(20), |lines| {
        lines
            .iter()
            .filter(|l| l["rule"]["name"] == "Vigil agent started")
            .count()
            >= 2
            && lines
                .iter()
                .any(|l| l["rule"]["name"] == "Delivery marker read")
    }));
    let alert = lines
        .iter()
        .find(|l| l["rule"]["name"] == "Delivery marker read")
        .unwrap_or_else(|| panic!("the alert was not delivered after the restart: {lines:?}"));
    assert_eq!(alert["process"]["pid"], pid);
    assert_eq!(alert["process"]["name"], "cat");
    assert_eq!(alert["event"]["kind"], "alert");
    assert_eq!(
        alert["file"]["path"],
        Value::from(marker.display().to_string())
    );
    let restarted: Vec<&Value> = lines
        .iter()
        .filter(|l| l["rule"]["name"] == "Vigil agent started")
        .collect();
    assert!(
        restarted[1]["message"]
            .as_str()
            .is_some_and(|m| m.contains("previous_stop=unclean")),
        "{:?}",
        restarted[1]
    );
    stop(&mut agent.0);
}
