//! Reloading the rules while `vigil run` runs, on the real kernel, with alerts delivered to a
//! webhook receiver on loopback: a broken rules file is refused and reported (the old rules
//! keep detecting), a valid change takes effect without missing an event, a file change alone
//! reloads (and turns on an opt-in syscall the new rule needs), and a flood of a tiny ring
//! buffer is reported as a `Vigil kernel events dropped` record. Egress allowlists reload on a
//! file change the same way.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;
use vigil::testing::http_receiver::{Mode, Receiver};
use vigil_integration_tests::{
    Running, Scratch, cat, free_addr, require_root, scrape, stop, vigil_binary,
};

const WAIT: Duration = Duration::from_secs(20);

/// A rule on reads of files whose name contains `marker` by `cat`.
fn marker_rule(name: &str, marker: &str) -> String {
    format!(
        "- rule: {name}\n  desc: a reload test rule\n  condition: evt.type in (open, openat) and fd.name contains {marker} and proc.name = cat\n  output: marker read (file=%fd.name pid=%proc.pid)\n  priority: WARNING\n  tags: [test]\n"
    )
}

/// A running `vigil run` whose alerts go to a webhook receiver, with its log kept.
struct Agent {
    process: Running,
    metrics: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start(scratch: &Scratch, receiver: &Receiver, rules: &Path, extra: &[&str]) -> Agent {
        let config = scratch.path("vigil.yaml");
        std::fs::write(
            &config,
            format!(
                "sinks:\n  - type: webhook\n    name: siem\n    url: {}\n    format: falco\n    \
                 batch: {{max_wait: 10ms}}\nheartbeat_interval: off\n",
                receiver.url("http")
            ),
        )
        .expect("config");
        let metrics = free_addr();
        let mut process = Running(
            Command::new(vigil_binary())
                .args(["run", "--metrics-addr", &metrics, "--rules"])
                .arg(rules)
                .arg("--config")
                .arg(&config)
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start vigil run"),
        );
        let stderr = process.0.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&log);
        let (running, started) = std::sync::mpsc::channel();
        // Keeps draining stderr until the agent exits, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("vigil is running") {
                    let _ = running.send(());
                }
                lines.lock().expect("log").push(line);
            }
        });
        if started.recv_timeout(Duration::from_secs(30)).is_err() {
            panic!(
                "vigil did not start: {:#?}",
                log.lock().expect("log").as_slice()
            );
        }
        Agent {
            process,
            metrics,
            log,
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(self.process.0.id() as i32, signal) };
    }

    fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    fn stop(mut self) {
        stop(&mut self.process.0);
    }
}

/// Falco-format records the receiver accepted, waiting up to [`WAIT`] for `done`.
fn wait_records(
    runtime: &tokio::runtime::Runtime,
    receiver: &Receiver,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    runtime.block_on(receiver.wait_lines(WAIT, done))
}

fn named<'a>(records: &'a [Value], rule: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    records.iter().filter(move |r| r["rule"] == rule)
}

fn field<'a>(record: &'a Value, name: &str) -> &'a Value {
    &record["output_fields"][name]
}

/// Whether an alert of `rule` about process `pid` arrived.
fn alerted(records: &[Value], rule: &str, pid: u32) -> bool {
    named(records, rule).any(|r| field(r, "proc.pid") == pid)
}

/// (a) SIGHUP with a broken rules file: the running rules stay and keep detecting, and the
/// refusal reaches the sink naming the file, line and column.
#[test]
fn a_broken_rules_file_is_refused_reported_and_the_old_rules_keep_detecting() {
    require_root();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let receiver = runtime.block_on(Receiver::start(Mode::Accept));
    let scratch = Scratch::new("reload-broken");
    let rules = scratch.path("rules.yaml");
    let good = marker_rule("Reload marker read", "vigil-reload-kept");
    std::fs::write(&rules, &good).expect("rules");
    let marker = scratch.path("vigil-reload-kept");
    std::fs::write(&marker, "x").expect("marker");
    let agent = Agent::start(&scratch, &receiver, &rules, &[]);

    let before = cat(&marker);
    wait_records(&runtime, &receiver, |r| {
        alerted(r, "Reload marker read", before)
    });

    // The good rule plus one whose condition names an event type that does not exist.
    let broken = format!(
        "{good}- rule: Broken rule\n  desc: d\n  output: o\n  priority: INFO\n  condition: evt.type = opnat and proc.name = cat\n"
    );
    let broken_line = good.lines().count() + 5;
    std::fs::write(&rules, broken).expect("broken rules");
    // The file change is noticed by itself; SIGHUP then reloads again even though the files
    // did not change since.
    let failed = |records: &[Value]| named(records, "Vigil configuration reload failed").count();
    let records = wait_records(&runtime, &receiver, |r| failed(r) >= 1);
    assert_eq!(failed(&records), 1, "{records:#?}\n{}", agent.log());
    agent.signal(libc::SIGHUP);
    let records = wait_records(&runtime, &receiver, |r| failed(r) >= 2);
    assert_eq!(
        failed(&records),
        2,
        "SIGHUP reloads: {records:#?}\n{}",
        agent.log()
    );

    let record = named(&records, "Vigil configuration reload failed")
        .last()
        .expect("failure record");
    assert_eq!(record["priority"], "Error");
    assert_eq!(record["source"], "vigil");
    assert!(
        record["tags"]
            .as_array()
            .is_some_and(|tags| tags.contains(&"health".into())),
        "{record}"
    );
    assert_eq!(field(record, "vigil.reload"), "rules");
    let errors = field(record, "vigil.errors")
        .as_array()
        .expect("vigil.errors is a list");
    let location = format!("{}:{broken_line}:25:", rules.display());
    assert!(
        errors.iter().any(|e| e
            .as_str()
            .is_some_and(|e| e.starts_with(&location) && e.contains("opnat"))),
        "no error at {location}: {errors:#?}"
    );
    assert!(
        agent.log().contains("unknown event type opnat"),
        "each error is logged:\n{}",
        agent.log()
    );
    assert_eq!(
        scrape(
            &agent.metrics,
            "vigil_reloads_total{outcome=\"failed\",what=\"rules\"}"
        ),
        2.0
    );
    assert_eq!(scrape(&agent.metrics, "vigil_rules_loaded"), 1.0);
    assert!(
        named(&records, "Vigil configuration reloaded")
            .next()
            .is_none()
    );

    // The old rule still runs.
    let after = cat(&marker);
    let records = wait_records(&runtime, &receiver, |r| {
        alerted(r, "Reload marker read", after)
    });
    assert!(
        alerted(&records, "Reload marker read", after),
        "the running rules stopped detecting: {records:#?}\n{}",
        agent.log()
    );
    agent.stop();
}

/// (b) A valid change takes effect, and across the reload every one of a continuous stream of
/// matching reads is alerted exactly once (by the old set or the new, never neither or both).
#[test]
fn a_valid_change_takes_effect_without_missing_an_event_of_a_continuous_stream() {
    require_root();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let receiver = runtime.block_on(Receiver::start(Mode::Accept));
    let scratch = Scratch::new("reload-stream");
    let rules = scratch.path("rules.yaml");
    let streamed = marker_rule("Reload stream read", "vigil-reload-stream-");
    std::fs::write(&rules, &streamed).expect("rules");
    let files: Vec<PathBuf> = (0..400)
        .map(|n| scratch.path(&format!("vigil-reload-stream-{n:04}")))
        .collect();
    for file in &files {
        std::fs::write(file, "x").expect("stream file");
    }
    let added = scratch.path("vigil-reload-added");
    std::fs::write(&added, "x").expect("marker");
    let agent = Agent::start(&scratch, &receiver, &rules, &[]);

    let (reached, halfway) = std::sync::mpsc::channel();
    let stream = {
        let files = files.clone();
        std::thread::spawn(move || {
            for (n, file) in files.iter().enumerate() {
                cat(file);
                if n == files.len() / 4 {
                    let _ = reached.send(());
                }
                std::thread::sleep(Duration::from_millis(3));
            }
        })
    };
    halfway.recv().expect("the stream runs");
    let before = cat(&added);
    // Events are evaluated in order: once this later read is alerted, `before` was evaluated
    // (by the old rules, which lack the added rule).
    let probe = scratch.path("vigil-reload-stream-probe");
    std::fs::write(&probe, "x").expect("probe");
    let probe_pid = cat(&probe);
    wait_records(&runtime, &receiver, |r| {
        alerted(r, "Reload stream read", probe_pid)
    });
    std::fs::write(
        &rules,
        format!(
            "{streamed}{}",
            marker_rule("Reload added rule", "vigil-reload-added")
        ),
    )
    .expect("new rules");
    agent.signal(libc::SIGHUP);
    let records = wait_records(&runtime, &receiver, |r| {
        named(r, "Vigil configuration reloaded").next().is_some()
    });
    let reloaded = named(&records, "Vigil configuration reloaded")
        .next()
        .unwrap_or_else(|| panic!("no reload record: {records:#?}\n{}", agent.log()));
    assert_eq!(reloaded["priority"], "Notice");
    assert!(
        reloaded["tags"]
            .as_array()
            .is_some_and(|tags| tags.contains(&"lifecycle".into()))
    );
    assert_eq!(field(reloaded, "vigil.reload"), "rules");
    assert_eq!(field(reloaded, "vigil.rules"), 2);
    let after = cat(&added);
    stream.join().expect("stream");

    let stream_reads = |records: &[Value]| -> HashMap<String, usize> {
        let mut seen = HashMap::new();
        for alert in named(records, "Reload stream read") {
            if let Some(file) = field(alert, "fd.name").as_str() {
                *seen.entry(file.to_string()).or_default() += 1;
            }
        }
        seen
    };
    let missed_in = |seen: &HashMap<String, usize>| -> Vec<PathBuf> {
        files
            .iter()
            .filter(|f| !seen.contains_key(&f.display().to_string()))
            .cloned()
            .collect()
    };
    let records = wait_records(&runtime, &receiver, |r| {
        missed_in(&stream_reads(r)).is_empty() && alerted(r, "Reload added rule", after)
    });
    let seen = stream_reads(&records);
    let missed = missed_in(&seen);
    assert!(
        missed.is_empty(),
        "{} of {} reads missed across the reload (kernel drops {}): {missed:?}\n{}",
        missed.len(),
        files.len(),
        scrape(&agent.metrics, "vigil_kernel_dropped_total"),
        agent.log()
    );
    let twice: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "alerted more than once: {twice:?}");
    assert!(
        !alerted(&records, "Reload added rule", before),
        "the new rule ran before the reload"
    );
    assert!(
        alerted(&records, "Reload added rule", after),
        "the new rule does not run: {records:#?}\n{}",
        agent.log()
    );
    assert_eq!(scrape(&agent.metrics, "vigil_rules_loaded"), 2.0);
    assert!(
        scrape(
            &agent.metrics,
            "vigil_reloads_total{outcome=\"ok\",what=\"rules\"}"
        ) >= 1.0
    );
    agent.stop();
}

/// (c) A change of the rules file alone (replaced the way editors save: written aside, then
/// renamed over it) reloads; the new rule needs `recvfrom`, which is only traced while a rule
/// can match it, so the reload also turns it on in the kernel.
#[test]
fn a_file_change_without_sighup_reloads_and_turns_on_the_syscalls_the_new_rule_needs() {
    require_root();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let receiver = runtime.block_on(Receiver::start(Mode::Accept));
    let scratch = Scratch::new("reload-watch");
    let rules = scratch.path("rules.yaml");
    let initial = marker_rule("Reload marker read", "vigil-reload-watched");
    std::fs::write(&rules, &initial).expect("rules");
    let agent = Agent::start(&scratch, &receiver, &rules, &[]);
    let pid = std::process::id();

    let staged = scratch.path("rules.yaml.new");
    std::fs::write(
        &staged,
        format!(
            "{initial}- rule: Reload test datagram received\n  desc: d\n  condition: evt.type = recvfrom and proc.pid = {pid}\n  output: datagram received (fd=%fd.name pid=%proc.pid)\n  priority: NOTICE\n  tags: [test]\n"
        ),
    )
    .expect("staged rules");
    std::fs::rename(&staged, &rules).expect("replace the rules");
    let records = wait_records(&runtime, &receiver, |r| {
        named(r, "Vigil configuration reloaded").next().is_some()
    });
    let reloaded = named(&records, "Vigil configuration reloaded")
        .next()
        .unwrap_or_else(|| panic!("the change was not reloaded: {records:#?}\n{}", agent.log()));
    assert_eq!(field(reloaded, "vigil.rules"), 2);

    // A datagram to ourselves, received with recvfrom(2).
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    socket
        .send_to(b"vigil", socket.local_addr().expect("addr"))
        .expect("send");
    let mut buffer = [0u8; 16];
    socket.recv_from(&mut buffer).expect("recvfrom");
    let records = wait_records(&runtime, &receiver, |r| {
        alerted(r, "Reload test datagram received", pid)
    });
    assert!(
        alerted(&records, "Reload test datagram received", pid),
        "recvfrom is not traced after the reload: {records:#?}\n{}",
        agent.log()
    );
    assert_eq!(scrape(&agent.metrics, "vigil_rules_loaded"), 2.0);
    agent.stop();
}

/// (d) A flood of syscalls into the smallest ring buffer: the loss reaches the sink as a
/// `Vigil kernel events dropped` record.
#[test]
fn a_ring_buffer_flood_is_reported_downstream() {
    require_root();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let receiver = runtime.block_on(Receiver::start(Mode::Accept));
    let scratch = Scratch::new("reload-flood");
    let rules = scratch.path("rules.yaml");
    std::fs::write(&rules, marker_rule("Flood marker read", "vigil-flood-none")).expect("rules");
    let agent = Agent::start(
        &scratch,
        &receiver,
        &rules,
        &["--ring-buffer-bytes", "4096"],
    );

    // Four shells opening a file in a loop (`: < file` opens and closes it without a fork),
    // bounded in count.
    let started = Instant::now();
    let flood: Vec<Running> = (0..4)
        .map(|_| {
            Running(
                Command::new("/bin/sh")
                    .args([
                        "-c",
                        "i=0; while [ $i -lt 20000 ]; do : < /etc/hostname; i=$((i+1)); done",
                    ])
                    .spawn()
                    .expect("flood"),
            )
        })
        .collect();
    let records = wait_records(&runtime, &receiver, |r| {
        named(r, "Vigil kernel events dropped").next().is_some()
    });
    for mut process in flood {
        let _ = process.0.wait();
    }
    let dropped = named(&records, "Vigil kernel events dropped")
        .next()
        .unwrap_or_else(|| {
            panic!(
                "no drop record after {:?} (kernel drops {}): {records:#?}\n{}",
                started.elapsed(),
                scrape(&agent.metrics, "vigil_kernel_dropped_total"),
                agent.log()
            )
        });
    assert_eq!(dropped["priority"], "Critical");
    assert_eq!(dropped["source"], "vigil");
    assert!(
        dropped["tags"]
            .as_array()
            .is_some_and(|tags| tags.contains(&"health".into()))
    );
    let count = field(dropped, "vigil.dropped").as_u64().expect("count");
    let total = field(dropped, "vigil.dropped_total")
        .as_u64()
        .expect("total");
    assert!(count > 0 && total >= count, "{dropped}");
    assert!(
        field(dropped, "vigil.reason")
            .as_str()
            .is_some_and(|r| r.contains("ring_buffer_full")),
        "{dropped}"
    );
    assert!(
        scrape(
            &agent.metrics,
            "vigil_kernel_dropped_total{reason=\"ring_buffer_full\"}"
        ) >= count as f64
    );
    // At most one record a second.
    let records = receiver.lines();
    let drop_records = records
        .iter()
        .filter(|l| l.contains("\"Vigil kernel events dropped\""))
        .count() as f64;
    assert!(
        drop_records <= started.elapsed().as_secs_f64() + 2.0,
        "{drop_records} drop records in {:?}",
        started.elapsed()
    );
    agent.stop();
}

/// Egress allowlists reload when their file changes: a broken file is refused and reported
/// with its position, a valid one is put in force and reported.
#[test]
fn egress_policy_file_changes_are_reloaded_and_reported() {
    require_root();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let receiver = runtime.block_on(Receiver::start(Mode::Accept));
    let scratch = Scratch::new("reload-egress");
    let rules = scratch.path("rules.yaml");
    std::fs::write(
        &rules,
        marker_rule("Egress marker read", "vigil-egress-none"),
    )
    .expect("rules");
    // Monitor mode, selecting a process name nothing has: attached, deciding nothing.
    let policy = |name: &str| {
        format!(
            "- policy: {name}\n  mode: monitor\n  match:\n    proc.name: vigil-no-such\n  allow:\n    - cidr: 192.0.2.1/32\n      ports: [9]\n"
        )
    };
    let policies = scratch.path("egress.yaml");
    std::fs::write(&policies, policy("reload-one")).expect("policy");
    let egress = policies.display().to_string();
    let agent = Agent::start(&scratch, &receiver, &rules, &["--egress", &egress]);

    std::fs::write(&policies, "- policy: [broken\n").expect("broken policy");
    let records = wait_records(&runtime, &receiver, |r| {
        named(r, "Vigil configuration reload failed")
            .next()
            .is_some()
    });
    let failed = named(&records, "Vigil configuration reload failed")
        .next()
        .unwrap_or_else(|| panic!("no failure record: {records:#?}\n{}", agent.log()));
    assert_eq!(field(failed, "vigil.reload"), "egress");
    let errors = field(failed, "vigil.errors").as_array().expect("errors");
    assert!(
        errors.iter().any(|e| e
            .as_str()
            .is_some_and(|e| e.starts_with(&format!("{egress}:2:1:")))),
        "{errors:#?}"
    );

    std::fs::write(
        &policies,
        format!("{}{}", policy("reload-one"), policy("reload-two")),
    )
    .expect("new policies");
    let records = wait_records(&runtime, &receiver, |r| {
        named(r, "Vigil configuration reloaded").next().is_some()
    });
    let reloaded = named(&records, "Vigil configuration reloaded")
        .next()
        .unwrap_or_else(|| panic!("no reload record: {records:#?}\n{}", agent.log()));
    assert_eq!(field(reloaded, "vigil.reload"), "egress");
    assert_eq!(field(reloaded, "vigil.policies"), 2);
    assert_eq!(scrape(&agent.metrics, "vigil_egress_policies"), 2.0);
    for (metric, value) in [
        (
            "vigil_reloads_total{outcome=\"failed\",what=\"egress\"}",
            1.0,
        ),
        ("vigil_reloads_total{outcome=\"ok\",what=\"egress\"}", 1.0),
        ("vigil_egress_reloads_total{result=\"failed\"}", 1.0),
        ("vigil_egress_reloads_total{result=\"ok\"}", 1.0),
    ] {
        assert_eq!(scrape(&agent.metrics, metric), value, "{metric}");
    }
    agent.stop();
}
