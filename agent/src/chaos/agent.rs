//! The agent `vigil chaos` starts, stops, kills and restarts: `vigil run` with the rules under
//! test, two webhook sinks (Falco format) to the chaos receivers, one plain and one over TLS
//! trusting a throwaway CA, spooling on disk so a restart replays what was queued, and an
//! egress policy for the implant the `dns-sinkhole` fault plays.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    process::{Child, Command},
};

use super::runner::ChaosError;

/// How long the agent may take to attach its probes.
const READY_LIMIT: Duration = Duration::from_secs(90);

/// Where the agent chaos starts sends its alerts.
pub struct ChaosSinks<'a> {
    /// URL of the plain HTTP receiver (sink `chaos`).
    pub webhook: &'a str,
    /// URL of the HTTPS receiver (sink `chaos-tls`).
    pub tls_webhook: &'a str,
    /// The CA the HTTPS receiver's certificates come from, PEM.
    pub ca_pem: &'a str,
}

/// The process name of the implant the `dns-sinkhole` fault runs; the chaos agent's egress
/// policy selects it by this name.
pub const IMPLANT: &str = "vigil-implant";

/// A `vigil run` child process.
pub struct ManagedAgent {
    binary: PathBuf,
    rules: Vec<PathBuf>,
    config: PathBuf,
    log: PathBuf,
    metrics: SocketAddr,
    /// Passed as `--host-root`: the container scenarios write their stand-ins' runtime state
    /// below it.
    host_root: PathBuf,
    /// `--ring-buffer-bytes`, when not the default.
    ring_buffer_bytes: Option<u32>,
    child: Option<Child>,
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> ChaosError {
    move |source| ChaosError::Io {
        what: what.into(),
        source,
    }
}

impl ManagedAgent {
    /// Writes the configuration and starts the agent; returns once it is ready.
    pub async fn start(
        binary: &Path,
        rules: &[PathBuf],
        sinks: &ChaosSinks<'_>,
        workdir: &Path,
    ) -> Result<ManagedAgent, ChaosError> {
        let ca_file = workdir.join("chaos-ca.pem");
        std::fs::write(&ca_file, sinks.ca_pem).map_err(io("writing the chaos CA"))?;
        let egress = workdir.join("egress.yaml");
        // Enforce: the implant's connection to the sinkhole is refused in the kernel, so the
        // fault sends nothing anywhere. Its resolver is on loopback, which is always allowed.
        std::fs::write(
            &egress,
            format!(
                "- policy: chaos-implant\n  mode: enforce\n  match:\n    proc.name: [{IMPLANT}]\n  \
                 allow:\n    - host: updates.vigil-chaos.test\n      ports: [443]\n      \
                 protocol: tcp\n"
            ),
        )
        .map_err(io("writing the chaos egress policy"))?;
        let sink = |name: &str, url: &str| {
            format!(
                "  - type: webhook\n    name: {name}\n    url: {url}\n    format: falco\n    \
                 batch: {{max_wait: 0s}}\n    \
                 retry: {{initial_backoff: 50ms, max_backoff: 500ms, alert_after: 1s}}\n"
            )
        };
        let config = workdir.join("vigil.yaml");
        std::fs::write(
            &config,
            format!(
                "sinks:\n{}{}    tls: {{ca_file: {}}}\nspool_dir: {}\nheartbeat_interval: off\n\
                 egress: [{}]\n",
                sink("chaos", sinks.webhook),
                sink("chaos-tls", sinks.tls_webhook),
                ca_file.display(),
                workdir.join("spool").display(),
                egress.display()
            ),
        )
        .map_err(io("writing the agent's configuration"))?;
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(io("finding a free port"))?;
        let mut agent = ManagedAgent {
            binary: binary.to_path_buf(),
            rules: rules.to_vec(),
            config,
            log: workdir.join("agent.log"),
            metrics,
            host_root: super::container::host_root(workdir),
            ring_buffer_bytes: None,
            child: None,
        };
        sweep_leftover_containers().await;
        agent.launch().await?;
        Ok(agent)
    }

    /// Starts the process and waits until `/readyz` answers 200.
    pub async fn launch(&mut self) -> Result<(), ChaosError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io("opening the agent log"))?;
        let mut command = Command::new(&self.binary);
        command
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .arg("--metrics-addr")
            .arg(self.metrics.to_string())
            .arg("--host-root")
            .arg(&self.host_root);
        for path in &self.rules {
            command.arg("--rules").arg(path);
        }
        if let Some(bytes) = self.ring_buffer_bytes {
            command.arg("--ring-buffer-bytes").arg(bytes.to_string());
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(io("starting the agent"))?;
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + READY_LIMIT;
        while !ready(self.metrics).await {
            let exited = self
                .child
                .as_mut()
                .is_none_or(|child| child.try_wait().ok().flatten().is_some());
            if exited || tokio::time::Instant::now() >= deadline {
                self.stop().await;
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(ChaosError::AgentNotReady(READY_LIMIT, tail.join(" | ")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Stops the agent and starts it again with a ring buffer of `bytes` (`None`: the
    /// default size).
    pub async fn restart_with_ring_buffer(&mut self, bytes: Option<u32>) -> Result<(), ChaosError> {
        self.stop().await;
        self.ring_buffer_bytes = bytes;
        self.launch().await
    }

    /// Asks the agent to reload its rules and policies (SIGHUP).
    pub fn reload(&self) -> bool {
        match self.child.as_ref().and_then(Child::id) {
            // SAFETY: kill(2) of our own child.
            Some(pid) => unsafe { libc::kill(pid as i32, libc::SIGHUP) == 0 },
            None => false,
        }
    }

    /// The sum of a counter's samples on the agent's `/metrics` (every label set), if the
    /// endpoint answers.
    pub async fn counter(&self, name: &str) -> Option<f64> {
        let text = get(self.metrics, "/metrics").await?;
        Some(
            text.lines()
                .filter(|line| {
                    line.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
                })
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
        )
    }

    /// Kills the agent outright (SIGKILL), as a crash or an attacker would.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Stops the agent with SIGTERM (SIGKILL after 10 s).
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            // SAFETY: kill(2) of our own child.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}

/// Removes the stand-in containers of chaos runs that died before their cleanup ran, so their
/// cgroups (and any process left in them) do not outlive them.
async fn sweep_leftover_containers() {
    let Ok(cgroup2) = crate::host::mounts::cgroup2_mount() else {
        return;
    };
    let sweep = tokio::task::spawn_blocking(move || {
        super::container::sweep_leftovers(&cgroup2, Path::new("/proc"))
    });
    if let Err(error) = sweep.await {
        tracing::warn!(%error, "sweeping leftover chaos containers failed");
    }
}

/// Whether the agent's `/readyz` answers 200.
async fn ready(addr: SocketAddr) -> bool {
    get(addr, "/readyz").await.is_some()
}

/// The body of a `GET` of `path` on the agent's endpoint, if it answers 200.
async fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    if !response.starts_with("HTTP/1.1 200") {
        return None;
    }
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
}
