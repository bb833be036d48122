//! The one configuration file: `vigil config check` and `default`, the order flag, variable,
//! file, default on a real agent, and SIGTERM under load delivering or spooling every alert.

use std::{
    collections::BTreeSet,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use vigil_integration_tests::{
    Running, Scratch, cat, free_addr, http_get, require_root, scrape, spawn_run, stop,
    vigil_binary, wait_running,
};

fn marker_rule(marker: &str) -> String {
    format!(
        "- rule: Config test marker read\n  desc: a configuration test rule\n  condition: evt.type in (open, openat) and fd.name contains {marker} and proc.name = cat\n  output: marker read (file=%fd.name pid=%proc.pid)\n  priority: WARNING\n  tags: [test]\n"
    )
}

fn vigil(args: &[&str]) -> (bool, String) {
    let output = Command::new(vigil_binary())
        .args(args)
        .output()
        .expect("vigil");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn check_validates_the_file_and_what_it_names() {
    let scratch = Scratch::new("config-check");
    let (ok, default) = vigil(&["config", "default"]);
    assert!(ok, "{default}");
    let rules = scratch.path("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(
        rules.join("marker.yaml"),
        marker_rule("vigil-config-marker"),
    )
    .expect("rule");
    // The printed default names `rules` next to the file: exactly where this one is.
    let file = scratch.path("vigil.yaml");
    std::fs::write(&file, &default).expect("config");
    let (ok, out) = vigil(&["config", "check", file.to_str().expect("path")]);
    assert!(ok, "{out}");
    assert!(
        out.contains("1 sink(s), 1 rule(s)") && out.ends_with("; ok\n"),
        "{out}"
    );

    // A misspelt key: refused with file, line and column.
    std::fs::write(&file, "agent:\n  metrics_adr: 127.0.0.1:1\n").expect("config");
    let (ok, out) = vigil(&["config", "check", file.to_str().expect("path")]);
    assert!(!ok);
    assert!(
        out.contains("vigil.yaml:2:3: agent: unknown field `metrics_adr`"),
        "{out}"
    );

    // A broken rule in a named rules file: its position is reported and the check fails.
    std::fs::write(
        rules.join("broken.yaml"),
        "- rule: Broken\n  desc: d\n  condition: evt.type = \n  output: o\n  priority: WARNING\n",
    )
    .expect("rule");
    std::fs::write(&file, "rules:\n  paths: [rules]\n").expect("config");
    let (ok, out) = vigil(&["config", "check", file.to_str().expect("path")]);
    assert!(!ok);
    assert!(out.contains("broken.yaml:"), "{out}");
    assert!(out.contains("errors above"), "{out}");
}

/// `GET /readyz` on `addr` answers 200.
fn ready(addr: &str) -> bool {
    http_get(addr, "/readyz").0 == 200
}

fn lines(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[test]
fn flags_win_over_variables_which_win_over_the_file() {
    require_root();
    let scratch = Scratch::new("config-precedence");
    let rules = scratch.path("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(rules.join("marker.yaml"), marker_rule("vigil-precedence")).expect("rule");
    let (from_file, from_env, from_flag) = (free_addr(), free_addr(), free_addr());
    let alerts = scratch.path("alerts.jsonl");
    let file = scratch.path("vigil.yaml");
    // The file names the rules (relative to itself), a metrics address, and a file sink.
    std::fs::write(
        &file,
        format!(
            "agent:\n  metrics_addr: {from_file}\n  max_processes: 5000\nrules:\n  paths: [rules]\n\
             sinks:\n  - type: file\n    path: {}\nheartbeat_interval: off\n",
            alerts.display()
        ),
    )
    .expect("config");
    let start = |env: Option<&str>, flag: Option<&str>| {
        let mut command = Command::new(vigil_binary());
        command.args(["run", "--config"]).arg(&file);
        if let Some(addr) = env {
            command.env("VIGIL_METRICS_ADDR", addr);
        }
        if let Some(addr) = flag {
            command.args(["--metrics-addr", addr]);
        }
        let mut agent = Running(
            command
                .current_dir(scratch.path(""))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("vigil run"),
        );
        let drain = wait_running(&mut agent.0);
        (agent, drain)
    };

    // The file alone decides; its rules load and raise alerts into its sink.
    let (mut agent, drain) = start(None, None);
    assert!(ready(&from_file));
    let marker = scratch.path("vigil-precedence-1");
    std::fs::write(&marker, "x").expect("marker");
    let pid = cat(&marker);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lines(&alerts)
        .iter()
        .any(|alert| alert["output_fields"]["proc.pid"] == pid)
    {
        assert!(Instant::now() < deadline, "the file's rule never fired");
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(&mut agent.0);
    drop(drain);

    // The variable wins over the file.
    let (mut agent, drain) = start(Some(&from_env), None);
    assert!(ready(&from_env) && !ready(&from_file));
    stop(&mut agent.0);
    drop(drain);

    // The flag wins over both.
    let (mut agent, drain) = start(Some(&from_env), Some(&from_flag));
    assert!(ready(&from_flag) && !ready(&from_env) && !ready(&from_file));
    stop(&mut agent.0);
    drop(drain);
}

#[test]
fn sigterm_under_load_delivers_or_spools_every_alert() {
    require_root();
    let scratch = Scratch::new("config-sigterm");
    let rules = scratch.path("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(rules.join("marker.yaml"), marker_rule("vigil-sigterm")).expect("rule");
    let delivered = scratch.path("delivered.jsonl");
    let spool = scratch.path("spool");
    let metrics = free_addr();
    // Two sinks: a file, which drains at once, and a webhook nobody listens on, whose records
    // must all stay in its spool.
    let dead = free_addr();
    let config = |webhook: &str| {
        format!(
            "sinks:\n  - type: file\n    name: local\n    path: {}\n  - type: webhook\n    \
             name: siem\n    url: http://{webhook}/ingest\n    format: falco\n    \
             batch: {{max_wait: 0s}}\nspool_dir: {}\nheartbeat_interval: off\n\
             drain_timeout: 2s\n",
            delivered.display(),
            spool.display()
        )
    };
    let file = scratch.path("vigil.yaml");
    std::fs::write(&file, config(&dead)).expect("config");
    let run_args = [
        "--metrics-addr".as_ref(),
        metrics.as_ref(),
        "--rules".as_ref(),
        rules.as_os_str(),
        "--config".as_ref(),
        file.as_os_str(),
    ];
    let (mut agent, drain) = spawn_run(run_args);
    // Load: a stream of marker reads, still going when SIGTERM arrives.
    let marker = scratch.path("vigil-sigterm-marker");
    std::fs::write(&marker, "x").expect("marker");
    let load = {
        let marker = marker.clone();
        std::thread::spawn(move || {
            for _ in 0..400 {
                cat(&marker);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    let raised_before_stop = scrape(&metrics, "vigil_alerts_total");
    let stopping = Instant::now();
    stop(&mut agent.0);
    let stopped_in = stopping.elapsed();
    drop(drain);
    let _ = load.join();
    // Drain timeout 2 s plus detaching: well within a pod's grace period.
    assert!(
        stopped_in < Duration::from_secs(8),
        "stopped in {stopped_in:?}"
    );

    let local: Vec<Value> = lines(&delivered)
        .into_iter()
        .filter(|alert| alert["rule"] == "Config test marker read")
        .collect();
    assert!(
        local.len() as f64 >= raised_before_stop && !local.is_empty(),
        "{} delivered, {raised_before_stop} raised before SIGTERM",
        local.len()
    );
    // No gap in the file sink's sequence numbers: nothing raised was dropped on the way.
    let seqs: Vec<u64> = lines(&delivered)
        .iter()
        .filter_map(|record| record["output_fields"]["vigil.seq"].as_u64())
        .collect();
    if let (Some(first), Some(last)) = (seqs.iter().min(), seqs.iter().max()) {
        assert_eq!(seqs.len() as u64, last - first + 1, "gaps in {seqs:?}");
    }

    // The webhook's records wait in its spool: a restarted agent with a listening receiver
    // delivers every one of them.
    let receiver = std::net::TcpListener::bind(&dead).expect("the dead address is free again");
    let received = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let server = {
        let received = std::sync::Arc::clone(&received);
        std::thread::spawn(move || {
            use std::io::{BufRead as _, Read as _, Write as _};
            receiver.set_nonblocking(false).expect("blocking");
            for stream in receiver.incoming().map_while(Result::ok) {
                let mut reader = std::io::BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            break;
                        }
                        if let Some(value) =
                            line.to_ascii_lowercase().strip_prefix("content-length:")
                        {
                            length = value.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    if line != "\r\n" {
                        break;
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        break;
                    }
                    if let Ok(mut all) = received.lock() {
                        all.push_str(&String::from_utf8_lossy(&body));
                        all.push('\n');
                    }
                    let _ = reader
                        .get_mut()
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            }
        })
    };
    // The same agent again (its metrics port is free once more).
    let (mut replay, drain) = spawn_run(run_args);
    let wanted: BTreeSet<String> = local
        .iter()
        .filter_map(|alert| alert["uuid"].as_str().map(str::to_string))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got: BTreeSet<String> = received
            .lock()
            .map(|all| {
                all.lines()
                    .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                    .filter_map(|alert| alert["uuid"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if wanted.is_subset(&got) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} spooled alerts replayed",
            wanted.intersection(&got).count(),
            wanted.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(&mut replay.0);
    drop(drain);
    drop(server);
}

#[test]
fn a_changed_file_reloads_its_rules_and_says_what_needs_a_restart() {
    require_root();
    let scratch = Scratch::new("config-reload");
    for (dir, marker) in [("rules-a", "vigil-reload-a"), ("rules-b", "vigil-reload-b")] {
        std::fs::create_dir_all(scratch.path(dir)).expect("rules dir");
        std::fs::write(scratch.path(dir).join("marker.yaml"), marker_rule(marker)).expect("rule");
    }
    let alerts = scratch.path("alerts.jsonl");
    let file = scratch.path("vigil.yaml");
    let config = |rules: &str, extra: &str| {
        format!(
            "rules:\n  paths: [{rules}]\n{extra}sinks:\n  - type: file\n    path: {}\n\
             heartbeat_interval: off\n",
            alerts.display()
        )
    };
    std::fs::write(&file, config("rules-a", "")).expect("config");
    let metrics = free_addr();
    let (mut agent, drain) = spawn_run([
        "--metrics-addr".as_ref(),
        metrics.as_ref(),
        "--config".as_ref(),
        file.as_os_str(),
    ]);
    let wait = |what: &str, found: &dyn Fn(&Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !lines(&alerts).iter().any(found) {
            assert!(
                Instant::now() < deadline,
                "no {what}: {:#?}",
                lines(&alerts)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let read = |name: &str| {
        let marker = scratch.path(name);
        std::fs::write(&marker, "x").expect("marker");
        cat(&marker)
    };
    let pid = read("vigil-reload-a");
    wait("alert from rules-a", &|a| {
        a["output_fields"]["proc.pid"] == pid
    });

    // The file now names other rules and another process table bound.
    std::fs::write(&file, config("rules-b", "agent:\n  max_processes: 1234\n")).expect("edit");
    wait("restart notice", &|r| {
        r["rule"] == "Vigil configuration reloaded"
            && r["output_fields"]["vigil.restart_required"] == serde_json::json!(["agent"])
    });
    wait("rules reload", &|r| {
        r["rule"] == "Vigil configuration reloaded" && r["output_fields"]["vigil.reload"] == "rules"
    });
    let pid = read("vigil-reload-b");
    wait("alert from rules-b", &|a| {
        a["output_fields"]["proc.pid"] == pid
    });

    // A broken file is refused; the rules in force keep detecting.
    std::fs::write(&file, "rules:\n  pathz: [rules-a]\n").expect("break");
    wait("refusal", &|r| {
        r["rule"] == "Vigil configuration reload failed"
            && r["output_fields"]["vigil.reload"] == "config"
            && r["output_fields"]["vigil.errors"][0]
                .as_str()
                .is_some_and(|e| e.contains("vigil.yaml:2:3"))
    });
    let pid = read("vigil-reload-b");
    wait("alert after the refusal", &|a| {
        a["output_fields"]["proc.pid"] == pid
    });
    stop(&mut agent.0);
    drop(drain);
}
