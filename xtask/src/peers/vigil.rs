//! Vigil as an observer: `vigil run --config FILE` with a file sink (Falco JSON), its /metrics
//! endpoint scraped for event and drop counters, its alerts read back for latency.

use std::{
    fs,
    io::{Read as _, Seek as _, SeekFrom, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// The rule every Vigil session adds to its ruleset: it fires when a workload opens its marker
/// file, so each alert's `time` (the event) and `vigil.detected_time` (the rule engine) give an
/// event-to-alert latency.
pub const MARKER_RULE: &str = "Vigil bench marker opened";

/// A running `vigil run`.
pub struct Agent {
    child: Child,
    addr: SocketAddr,
    alerts: PathBuf,
    /// How far [`Agent::read_alerts`] has read `alerts`.
    offset: u64,
    log: PathBuf,
}

/// Counters scraped from /metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    /// `vigil_events_total`, summed over event types.
    pub events: u64,
    /// `vigil_kernel_dropped_total`, summed over reasons.
    pub kernel_drops: u64,
    /// `vigil_process_table_size`.
    pub process_table: u64,
}

/// One alert read back from the file sink.
#[derive(Clone, Debug)]
pub struct Alert {
    /// The rule's name.
    pub rule: String,
    /// `source` (`syscall` for rules, `vigil` for the agent's own records).
    pub source: String,
    /// `time`: when the event happened, Unix ns.
    pub event_ns: Option<i64>,
    /// `output_fields["vigil.detected_time"]`: when the rule engine raised it, Unix ns.
    pub detected_ns: Option<i64>,
}

impl Agent {
    /// Starts `binary run` with `rules` plus the marker rule for `marker`, alerts to a file in
    /// `dir`, and waits until /readyz answers 200.
    pub fn start(binary: &Path, dir: &Path, rules: &[PathBuf], marker: &Path) -> Result<Agent> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let marker_rules = dir.join("bench_marker.yaml");
        fs::write(&marker_rules, marker_rule(marker))
            .with_context(|| format!("writing {}", marker_rules.display()))?;
        let addr = free_loopback_port()?;
        let alerts = dir.join("alerts.json");
        let config = dir.join("vigil.yaml");
        let mut paths: Vec<PathBuf> = rules.to_vec();
        paths.push(marker_rules);
        fs::write(&config, config_yaml(addr, &paths, &alerts)?)
            .with_context(|| format!("writing {}", config.display()))?;
        let log = dir.join("vigil.log");
        let log_file =
            fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(binary);
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("log file")?)
            .stderr(log_file)
            .env("RUST_LOG", "warn")
            // Not in the terminal's process group: Ctrl-C stops the benchmark, which then stops
            // the agent itself.
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} run", binary.display()))?;
        let mut agent = Agent {
            child,
            addr,
            alerts,
            offset: 0,
            log,
        };
        agent.wait_ready(Duration::from_secs(90))?;
        Ok(agent)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().context("polling vigil")? {
                bail!(
                    "vigil exited during start-up ({status}); its log ({}):\n{}",
                    self.log.display(),
                    self.log_tail()
                );
            }
            if matches!(http_get(self.addr, "/readyz"), Ok((200, _))) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "vigil was not ready within {timeout:?}; its log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the agent's log.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Current counters from /metrics.
    pub fn counters(&self) -> Result<Counters> {
        let (status, body) = http_get(self.addr, "/metrics")?;
        if status != 200 {
            bail!("GET /metrics answered {status}");
        }
        Ok(parse_counters(&body))
    }

    /// Alerts written since the previous call (complete lines only).
    pub fn read_alerts(&mut self) -> Result<Vec<Alert>> {
        let mut file = match fs::File::open(&self.alerts) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => {
                return Err(err).with_context(|| format!("opening {}", self.alerts.display()));
            }
        };
        file.seek(SeekFrom::Start(self.offset))
            .context("seeking the alerts file")?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .context("reading the alerts file")?;
        let complete = text.rfind('\n').map_or(0, |end| end + 1);
        self.offset += complete as u64;
        Ok(text[..complete].lines().filter_map(parse_alert).collect())
    }

    /// Stops the agent with SIGTERM (it drains its sinks), SIGKILL after 15 s.
    pub fn stop(mut self) -> Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> Result<()> {
        if self.child.try_wait().context("polling vigil")?.is_some() {
            return Ok(());
        }
        signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.child.try_wait().context("polling vigil")?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        bail!("vigil did not stop within 15 s of SIGTERM; killed it")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Err(err) = self.terminate() {
            eprintln!("bench: {err:#}");
        }
    }
}

/// Sends `sig` to a process this benchmark started.
pub fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: plain syscall; the pid is one of our children.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// The marker rule for `marker`, as a rules file.
fn marker_rule(marker: &Path) -> String {
    format!(
        "- rule: {MARKER_RULE}\n  \
         desc: The benchmark workload opened its marker file (event-to-alert latency probe).\n  \
         condition: evt.type in (open, openat, openat2) and fd.name = \"{}\"\n  \
         output: bench marker opened (file=%fd.name proc=%proc.name pid=%proc.pid)\n  \
         priority: notice\n  \
         tags: [vigil_bench]\n",
        marker.display()
    )
}

/// The agent's configuration: metrics on `addr`, the rules, one Falco-format file sink whose
/// queue is in memory (no spool directory), no heartbeats.
fn config_yaml(addr: SocketAddr, rules: &[PathBuf], alerts: &Path) -> Result<String> {
    let quoted = |path: &Path| -> Result<String> {
        let text = path
            .to_str()
            .with_context(|| format!("{} is not UTF-8", path.display()))?;
        Ok(serde_json::Value::from(text).to_string())
    };
    let rules = rules
        .iter()
        .map(|p| quoted(p))
        .collect::<Result<Vec<_>>>()?;
    Ok(format!(
        "agent:\n  metrics_addr: \"{addr}\"\n\
         rules:\n  paths: [{}]\n\
         sinks:\n  - type: file\n    name: bench\n    format: falco\n    path: {}\n\
         heartbeat_interval: off\n",
        rules.join(", "),
        quoted(alerts)?,
    ))
}

/// A loopback address with a port nothing listens on right now.
fn free_loopback_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    listener.local_addr().context("finding a free port")
}

/// A minimal HTTP/1.0 GET: the status and the body.
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .with_context(|| format!("sending GET {path}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .with_context(|| format!("reading the answer to GET {path}"))?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("GET {path}: no HTTP status line"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    Ok((status, body))
}

/// The counters the benchmark reads, from Prometheus text.
pub fn parse_counters(text: &str) -> Counters {
    let mut counters = Counters::default();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        let value = value.max(0.0) as u64;
        match name {
            "vigil_events_total" => counters.events += value,
            "vigil_kernel_dropped_total" => counters.kernel_drops += value,
            "vigil_process_table_size" => counters.process_table = value,
            _ => {}
        }
    }
    counters
}

/// One Falco JSON line.
fn parse_alert(line: &str) -> Option<Alert> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let time = |v: &serde_json::Value| v.as_str().and_then(super::sys::rfc3339_unix_ns);
    Some(Alert {
        rule: value["rule"].as_str().unwrap_or_default().to_owned(),
        source: value["source"].as_str().unwrap_or_default().to_owned(),
        event_ns: time(&value["time"]),
        detected_ns: time(&value["output_fields"]["vigil.detected_time"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_over_labels() {
        let text = "# HELP vigil_events_total Kernel events\n\
                    vigil_events_total{type=\"openat\"} 10\n\
                    vigil_events_total{type=\"close\"} 5\n\
                    vigil_kernel_dropped_total{reason=\"ring_buffer_full\"} 3\n\
                    vigil_kernel_dropped_total{reason=\"pending_full\"} 1\n\
                    vigil_process_table_size 412\n\
                    vigil_events_totally_else 99\n";
        assert_eq!(
            parse_counters(text),
            Counters {
                events: 15,
                kernel_drops: 4,
                process_table: 412
            }
        );
    }

    #[test]
    fn falco_alert_lines() {
        let line = r#"{"rule":"Vigil bench marker opened","source":"syscall","time":"1970-01-01T00:00:01.000000000Z","output_fields":{"vigil.detected_time":"1970-01-01T00:00:01.000250000Z"}}"#;
        let alert = parse_alert(line).expect("parses");
        assert_eq!(alert.rule, MARKER_RULE);
        assert_eq!(alert.event_ns, Some(1_000_000_000));
        assert_eq!(alert.detected_ns, Some(1_000_250_000));
        assert!(parse_alert("not json").is_none());
    }

    #[test]
    fn config_quotes_paths() {
        let yaml = config_yaml(
            "127.0.0.1:9999".parse().expect("addr"),
            &[PathBuf::from("/r/rules"), PathBuf::from("/tmp/x y/m.yaml")],
            Path::new("/tmp/x y/alerts.json"),
        )
        .expect("yaml");
        assert!(yaml.contains(r#"paths: ["/r/rules", "/tmp/x y/m.yaml"]"#));
        assert!(yaml.contains(r#"path: "/tmp/x y/alerts.json""#));
    }
}
