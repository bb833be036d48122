//! End-to-end delivery through the dispatcher, workers, queues and real HTTP receivers on
//! loopback: order, outages, restarts, poison records, drops, presets, TLS and heartbeats.

use std::{path::Path, sync::Arc, time::Duration};

use hmac::{Hmac, Mac as _};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use super::receiver::{Mode, Receiver, TestPki};
use crate::{
    metrics::Metrics,
    rules::alert::Alert,
    sinks::{config::DeliveryConfig, dispatcher::Dispatcher},
};

const WAIT: Duration = Duration::from_secs(10);

fn alert(rule: &str, priority: &'static str, n: u64) -> Alert {
    let mut output_fields = Map::new();
    output_fields.insert("proc.pid".into(), json!(n));
    Alert {
        hostname: Arc::from("test-host"),
        output: format!("12:00:00.000000000: {priority} test alert n={n}"),
        output_fields,
        priority,
        rule: Arc::from(rule),
        source: "syscall",
        tags: Arc::from(vec!["test".to_string()]),
        time: "2026-11-30T12:00:00.000000000Z".into(),
    }
}

fn submit(dispatcher: &Dispatcher, rule: &str, n: u64) {
    let mut context = Map::new();
    context.insert("proc.pid".into(), json!(n));
    context.insert("proc.name".into(), json!("cat"));
    dispatcher.submit_with_context(
        &alert(rule, "Warning", n),
        1_700_000_000_000_000_000,
        context,
    );
}

fn config(yaml: &str) -> DeliveryConfig {
    DeliveryConfig::parse(yaml, Path::new("test.yaml")).unwrap()
}

fn start(yaml: &str) -> (Dispatcher, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new().unwrap());
    let dispatcher = Dispatcher::start(&config(yaml), &metrics, Arc::from("test-host")).unwrap();
    (dispatcher, metrics)
}

/// Falco-format lines of real alerts (not the agent's own records), as `proc.pid` numbers.
fn alert_numbers(lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .filter(|line| line["source"] == "syscall")
        .filter_map(|line| line["output_fields"]["proc.pid"].as_u64())
        .collect()
}

fn rules_of(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|line| line["rule"].as_str().map(str::to_string))
        .collect()
}

fn metric(metrics: &Metrics, name: &str) -> f64 {
    metrics
        .render()
        .lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn webhook_delivers_in_order_signed_and_compressed() {
    let receiver = Receiver::start(Mode::Accept).await;
    let (dispatcher, metrics) = start(&format!(
        "sinks:\n  - type: webhook\n    name: siem\n    url: {}\n    gzip: true\n    \
         hmac_secret: s3cret\n    bearer_token: tok\n    headers: {{X-Tenant: blue}}\n    \
         batch: {{max_records: 7, max_wait: 50ms}}\nheartbeat_interval: off\n",
        receiver.url("http")
    ));
    for n in 1..=50 {
        submit(&dispatcher, "Test rule", n);
    }
    let lines = receiver
        .wait_lines(WAIT, |lines| alert_numbers(lines).len() >= 50)
        .await;
    assert_eq!(alert_numbers(&lines), (1..=50).collect::<Vec<_>>());
    // The agent-started record comes first and carries sequence 1.
    assert_eq!(lines[0]["rule"], "Vigil agent started");
    let seqs: Vec<u64> = lines
        .iter()
        .map(|l| l["output_fields"]["vigil.seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=51).collect::<Vec<_>>(), "gapless sequence");
    let ids: std::collections::HashSet<&str> =
        lines.iter().map(|l| l["uuid"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 51, "unique ids");

    for request in receiver.requests() {
        assert_eq!(request.headers["content-encoding"], "gzip");
        assert_eq!(request.headers["authorization"], "Bearer tok");
        assert_eq!(request.headers["x-tenant"], "blue");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(&request.raw_body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(request.headers["x-vigil-signature"], expected.as_str());
        assert!(request.body.lines().count() <= 7, "batches are bounded");
    }
    dispatcher.shutdown().await;
    assert_eq!(
        metric(&metrics, "vigil_sink_delivered_total{sink=\"siem\"}"),
        51.0
    );
}

#[tokio::test]
async fn outage_is_retried_reported_and_recovered_without_loss() {
    let receiver = Receiver::start(Mode::Fail(503)).await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let (dispatcher, metrics) = start(&format!(
        "sinks:\n  - type: webhook\n    name: siem\n    url: {}\n    \
         retry: {{initial_backoff: 20ms, max_backoff: 100ms, alert_after: 200ms}}\n  \
         - type: file\n    name: audit\n    path: {}\nheartbeat_interval: off\n",
        receiver.url("http"),
        audit.display()
    ));
    for n in 1..=20 {
        submit(&dispatcher, "Test rule", n);
    }
    // The other sink hears that the SIEM is failing.
    let deadline = std::time::Instant::now() + WAIT;
    let failing = loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.contains("Vigil sink delivery failing"))
        {
            break serde_json::from_str::<Value>(line).unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failing report: {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(failing["output_fields"]["vigil.sink"], "siem");
    assert_eq!(failing["priority"], "Error");
    assert!(
        failing["output_fields"]["vigil.error"]
            .as_str()
            .unwrap()
            .contains("503")
    );
    assert_eq!(metric(&metrics, "vigil_sink_up{sink=\"siem\"}"), 0.0);

    receiver.set_mode(Mode::Accept);
    let lines = receiver
        .wait_lines(WAIT, |lines| {
            rules_of(lines).contains(&"Vigil sink delivery recovered".to_string())
        })
        .await;
    assert_eq!(alert_numbers(&lines), (1..=20).collect::<Vec<_>>());
    assert!(rules_of(&lines).contains(&"Vigil sink delivery recovered".to_string()));
    assert!(metric(&metrics, "vigil_sink_failed_total{sink=\"siem\"}") >= 1.0);
    assert!(metric(&metrics, "vigil_sink_retried_total{sink=\"siem\"}") >= 21.0);
    dispatcher.shutdown().await;
}

/// Starts a dispatcher on its own runtime, queues alerts while the receiver refuses them, and
/// drops the runtime without a shutdown: the agent crashing.
fn crash_with_queued_alerts(yaml: &str, count: u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (dispatcher, _) = start(yaml);
        for n in 1..=count {
            submit(&dispatcher, "Test rule", n);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // No shutdown: nothing is drained and no clean stop is recorded.
        drop(dispatcher);
    });
    // Dropping the runtime drops every task mid-flight, as a killed process would stop.
    drop(runtime);
}

#[test]
fn spooled_alerts_survive_a_crash_and_are_replayed_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let main = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let receiver = main.block_on(Receiver::start(Mode::Fail(503)));
    let yaml = format!(
        "sinks:\n  - type: webhook\n    name: siem\n    url: {}\n    \
         retry: {{initial_backoff: 20ms, max_backoff: 50ms}}\nspool_dir: {}\nfsync: always\n\
         heartbeat_interval: off\n",
        receiver.url("http"),
        spool.display()
    );
    crash_with_queued_alerts(&yaml, 30);
    assert!(
        receiver.lines().is_empty(),
        "nothing delivered during the outage"
    );

    receiver.set_mode(Mode::Accept);
    main.block_on(async {
        let (dispatcher, _) = start(&yaml);
        let lines = receiver
            .wait_lines(WAIT, |lines| {
                alert_numbers(lines).len() >= 30
                    && rules_of(lines)
                        .iter()
                        .filter(|r| *r == "Vigil agent started")
                        .count()
                        >= 2
            })
            .await;
        assert_eq!(alert_numbers(&lines), (1..=30).collect::<Vec<_>>());
        let restarted = lines
            .iter()
            .filter(|l| l["rule"] == "Vigil agent started")
            .nth(1)
            .unwrap();
        assert_eq!(restarted["output_fields"]["vigil.previous_stop"], "unclean");
        assert_eq!(restarted["priority"], "Warning");
        assert!(
            restarted["output_fields"]["vigil.down_seconds"]
                .as_f64()
                .is_some()
        );
        // After a crash the sequence skips ahead; it never repeats.
        let first_run_max = lines
            .iter()
            .filter(|l| l["source"] == "syscall")
            .filter_map(|l| l["output_fields"]["vigil.seq"].as_u64())
            .max()
            .unwrap();
        let restart_seq = restarted["output_fields"]["vigil.seq"].as_u64().unwrap();
        assert!(restart_seq > first_run_max);
        dispatcher.shutdown().await;
    });
}

#[tokio::test]
async fn clean_restart_continues_the_sequence_and_reports_downtime() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alerts.jsonl");
    let yaml = format!(
        "sinks:\n  - type: file\n    path: {}\nspool_dir: {}\nheartbeat_interval: off\n",
        out.display(),
        dir.path().join("spool").display()
    );
    let (first, _) = start(&yaml);
    submit(&first, "Test rule", 1);
    first.shutdown().await;
    let (second, _) = start(&yaml);
    submit(&second, "Test rule", 2);
    second.shutdown().await;
    let lines: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<u64> = lines
        .iter()
        .map(|l| l["output_fields"]["vigil.seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(lines[2]["rule"], "Vigil agent started");
    assert_eq!(lines[2]["output_fields"]["vigil.previous_stop"], "clean");
    assert_eq!(lines[2]["priority"], "Notice");
}

#[tokio::test]
async fn a_poison_record_is_set_aside_and_the_rest_delivered() {
    let receiver = Receiver::start(Mode::RejectContaining("Poison rule".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let (dispatcher, metrics) = start(&format!(
        "sinks:\n  - type: webhook\n    name: siem\n    url: {}\n    \
         batch: {{max_records: 16, max_wait: 200ms}}\nspool_dir: {}\nheartbeat_interval: off\n",
        receiver.url("http"),
        dir.path().display()
    ));
    for n in 1..=10 {
        let rule = if n == 7 { "Poison rule" } else { "Test rule" };
        submit(&dispatcher, rule, n);
    }
    let lines = receiver
        .wait_lines(WAIT, |lines| {
            alert_numbers(lines).len() >= 9
                && rules_of(lines).contains(&"Vigil alert rejected by sink".to_string())
        })
        .await;
    assert_eq!(alert_numbers(&lines), [1, 2, 3, 4, 5, 6, 8, 9, 10]);
    let notice = lines
        .iter()
        .find(|l| l["rule"] == "Vigil alert rejected by sink")
        .unwrap();
    assert!(
        notice["output_fields"]["vigil.error"]
            .as_str()
            .unwrap()
            .contains("400")
    );
    let kept = std::fs::read_to_string(dir.path().join("siem.rejected.jsonl")).unwrap();
    let kept: Value = serde_json::from_str(kept.lines().next().unwrap()).unwrap();
    assert_eq!(kept["record"]["rule"], "Poison rule");
    assert_eq!(
        metric(&metrics, "vigil_sink_rejected_total{sink=\"siem\"}"),
        1.0
    );
    dispatcher.shutdown().await;
}

#[tokio::test]
async fn a_full_queue_drops_counted_and_reported() {
    let receiver = Receiver::start(Mode::Fail(503)).await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let (dispatcher, metrics) = start(&format!(
        "sinks:\n  - type: webhook\n    name: siem\n    url: {}\n    \
         queue: {{max_records: 5, when_full: drop_newest}}\n    \
         retry: {{initial_backoff: 1s, max_backoff: 1s}}\n  \
         - type: file\n    name: audit\n    path: {}\nheartbeat_interval: off\n",
        receiver.url("http"),
        audit.display()
    ));
    for n in 1..=12 {
        submit(&dispatcher, "Test rule", n);
    }
    let deadline = std::time::Instant::now() + WAIT;
    let notice = loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("Vigil alerts dropped")) {
            break serde_json::from_str::<Value>(line).unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no drop notice");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // 5 fit: the agent-started record and alerts 1-4; alerts 5-12 were dropped.
    assert_eq!(notice["output_fields"]["vigil.dropped"], 8);
    assert_eq!(notice["output_fields"]["vigil.sink"], "siem");
    assert_eq!(notice["priority"], "Critical");
    assert_eq!(
        metric(
            &metrics,
            "vigil_sink_dropped_total{reason=\"queue_full\",sink=\"siem\"}"
        ),
        8.0 + 1.0, // the notice itself cannot enter the full queue either
    );
    receiver.set_mode(Mode::Accept);
    let lines = receiver
        .wait_lines(WAIT, |lines| alert_numbers(lines).len() >= 4)
        .await;
    assert_eq!(alert_numbers(&lines), [1, 2, 3, 4]);
    dispatcher.shutdown().await;
}

#[tokio::test]
async fn filters_choose_alerts_but_agent_records_reach_every_sink() {
    let receiver = Receiver::start(Mode::Accept).await;
    let (dispatcher, _) = start(&format!(
        "sinks:\n  - type: webhook\n    url: {}\n    min_priority: error\n    \
         batch: {{max_wait: 10ms}}\nheartbeat_interval: 100ms\n",
        receiver.url("http")
    ));
    submit(&dispatcher, "Test rule", 1); // Warning: filtered out
    dispatcher.submit_with_context(
        &alert("Critical rule", "Critical", 2),
        1_700_000_000_000_000_000,
        Map::new(),
    );
    let lines = receiver
        .wait_lines(WAIT, |lines| {
            rules_of(lines)
                .iter()
                .filter(|r| *r == "Vigil heartbeat")
                .count()
                >= 2
                && !alert_numbers(lines).is_empty()
        })
        .await;
    assert_eq!(alert_numbers(&lines), [2]);
    let heartbeats: Vec<&Value> = lines
        .iter()
        .filter(|l| l["rule"] == "Vigil heartbeat")
        .collect();
    assert!(heartbeats.len() >= 2, "{lines:?}");
    assert_eq!(heartbeats[0]["priority"], "Informational");
    let seq = |l: &Value| l["output_fields"]["vigil.seq"].as_u64().unwrap();
    assert!(seq(heartbeats[1]) > seq(heartbeats[0]));
    dispatcher.shutdown().await;
}

#[tokio::test]
async fn elasticsearch_and_splunk_presets() {
    let es = Receiver::start(Mode::Accept).await;
    let splunk = Receiver::start(Mode::Accept).await;
    let (dispatcher, _) = start(&format!(
        "sinks:\n  - type: webhook\n    name: es\n    url: {}\n    preset: elasticsearch\n    \
         index: vigil-alerts\n    format: ecs\n    batch: {{max_wait: 10ms}}\n  \
         - type: webhook\n    name: splunk\n    url: {}\n    preset: splunk_hec\n    \
         bearer_token: hec-token\n    format: cef\n    index: security\n    \
         batch: {{max_wait: 10ms}}\nheartbeat_interval: off\n",
        es.url("http"),
        splunk.url("http"),
    ));
    submit(&dispatcher, "Test rule", 1);
    let es_lines = es.wait_lines(WAIT, |lines| lines.len() >= 4).await;
    assert_eq!(es_lines.len(), 4, "action + document for 2 records");
    assert_eq!(es_lines[2]["create"]["_index"], "vigil-alerts");
    assert_eq!(es_lines[3]["event"]["id"], es_lines[2]["create"]["_id"]);
    assert_eq!(es_lines[3]["rule"]["name"], "Test rule");
    assert_eq!(
        es.requests()[0].headers["content-type"],
        "application/x-ndjson"
    );

    let hec = splunk.wait_lines(WAIT, |lines| lines.len() >= 2).await;
    assert_eq!(
        splunk.requests()[0].headers["authorization"],
        "Splunk hec-token"
    );
    let event = &hec[1];
    assert_eq!(event["sourcetype"], "cef");
    assert_eq!(event["index"], "security");
    assert_eq!(event["host"], "test-host");
    assert!(event["event"].as_str().unwrap().starts_with("CEF:0|Vigil|"));
    dispatcher.shutdown().await;
}

#[tokio::test]
async fn https_verifies_the_receiver_certificate() {
    let pki = TestPki::new();
    let receiver = Receiver::start_tls(pki.acceptor(), Mode::Accept).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = pki.write_client_files(dir.path()).ca;
    let (trusting, _) = start(&format!(
        "sinks:\n  - type: webhook\n    url: {}\n    tls: {{ca_file: {}}}\n    \
         hmac_secret: s3cret\n    batch: {{max_wait: 10ms}}\nheartbeat_interval: off\n",
        receiver.url("https"),
        ca.display()
    ));
    submit(&trusting, "Test rule", 1);
    let lines = receiver
        .wait_lines(WAIT, |lines| !alert_numbers(lines).is_empty())
        .await;
    assert_eq!(alert_numbers(&lines), [1]);
    let signed = &receiver.requests()[0];
    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(&signed.raw_body);
    assert_eq!(
        signed.headers["x-vigil-signature"],
        format!("sha256={}", hex::encode(mac.finalize().into_bytes())).as_str()
    );
    trusting.shutdown().await;

    // With the system roots the test CA is unknown: nothing is delivered, the sink is down.
    let before = receiver.requests().len();
    let (distrusting, metrics) = start(&format!(
        "sinks:\n  - type: webhook\n    name: strict\n    url: {}\n    \
         retry: {{initial_backoff: 20ms, max_backoff: 50ms}}\n    batch: {{max_wait: 10ms}}\n\
         heartbeat_interval: off\ndrain_timeout: 100ms\n",
        receiver.url("https"),
    ));
    submit(&distrusting, "Test rule", 2);
    let deadline = std::time::Instant::now() + WAIT;
    while metric(&metrics, "vigil_sink_failed_total{sink=\"strict\"}") < 2.0 {
        assert!(std::time::Instant::now() < deadline, "no failed attempt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(receiver.requests().len(), before);
    distrusting.shutdown().await;
    assert_eq!(
        metric(
            &metrics,
            "vigil_sink_dropped_total{reason=\"shutdown\",sink=\"strict\"}"
        ),
        2.0,
        "the memory queue's leftovers are counted as lost at shutdown"
    );
}

#[tokio::test]
async fn https_presents_the_client_certificate() {
    let pki = TestPki::new();
    let receiver =
        Receiver::start_tls(pki.acceptor_requiring_client_certificates(), Mode::Accept).await;
    let dir = tempfile::tempdir().unwrap();
    let files = pki.write_client_files(dir.path());
    let (anonymous, metrics) = start(&format!(
        "sinks:\n  - type: webhook\n    name: anonymous\n    url: {}\n    \
         tls: {{ca_file: {}}}\n    retry: {{initial_backoff: 20ms, max_backoff: 50ms}}\n\
         heartbeat_interval: off\ndrain_timeout: 100ms\n",
        receiver.url("https"),
        files.ca.display()
    ));
    submit(&anonymous, "Test rule", 1);
    let deadline = std::time::Instant::now() + WAIT;
    while metric(&metrics, "vigil_sink_failed_total{sink=\"anonymous\"}") < 1.0 {
        assert!(std::time::Instant::now() < deadline, "no failed attempt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anonymous.shutdown().await;
    assert!(
        receiver.requests().is_empty(),
        "refused without a client certificate"
    );

    let (mutual, _) = start(&format!(
        "sinks:\n  - type: webhook\n    url: {}\n    \
         tls: {{ca_file: {}, cert_file: {}, key_file: {}}}\n    batch: {{max_wait: 10ms}}\n\
         heartbeat_interval: off\n",
        receiver.url("https"),
        files.ca.display(),
        files.cert.display(),
        files.key.display()
    ));
    submit(&mutual, "Test rule", 2);
    let lines = receiver
        .wait_lines(WAIT, |lines| !alert_numbers(lines).is_empty())
        .await;
    assert_eq!(alert_numbers(&lines), [2]);
    mutual.shutdown().await;
}

#[tokio::test]
async fn a_full_spool_evicts_the_oldest_and_says_how_many() {
    let receiver = Receiver::start(Mode::Fail(503)).await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let (dispatcher, metrics) = start(&format!(
        "sinks:\n  - type: webhook\n    name: siem\n    url: {}\n    \
         queue: {{max_bytes: 64KiB, when_full: drop_oldest}}\n    \
         retry: {{initial_backoff: 200ms, max_backoff: 200ms}}\n  \
         - type: file\n    name: audit\n    path: {}\nspool_dir: {}\nheartbeat_interval: off\n",
        receiver.url("http"),
        audit.display(),
        dir.path().join("spool").display()
    ));
    for n in 1..=400 {
        submit(&dispatcher, "Test rule", n);
    }
    let deadline = std::time::Instant::now() + WAIT;
    let dropped = loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        let total: u64 = text
            .lines()
            .filter(|l| l.contains("Vigil alerts dropped"))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|l| l["output_fields"]["vigil.dropped"].as_u64())
            .sum();
        if total > 0 {
            break total;
        }
        assert!(std::time::Instant::now() < deadline, "no drop notice");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let counted = metric(
        &metrics,
        "vigil_sink_dropped_total{reason=\"queue_full\",sink=\"siem\"}",
    );
    assert!(
        dropped > 0 && counted >= dropped as f64,
        "{dropped} vs {counted}"
    );
    receiver.set_mode(Mode::Accept);
    let lines = receiver
        .wait_lines(WAIT, |lines| alert_numbers(lines).last() == Some(&400))
        .await;
    let delivered = alert_numbers(&lines);
    // The newest survive, in order, and together with the drops they account for every alert
    // (a batch already handed to the worker is delivered even if it is among the oldest).
    assert_eq!(delivered.last(), Some(&400));
    assert!(delivered.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(delivered.len() < 400, "some were evicted");
    assert!(
        delivered.len() as u64 + dropped >= 400,
        "{} + {dropped}",
        delivered.len()
    );
    dispatcher.shutdown().await;
}
