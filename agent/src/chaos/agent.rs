//! The agent `vigil chaos` starts, stops, kills and restarts: `vigil run` with the rules under
//! test and one webhook sink (Falco format) to the chaos receiver, spooling on disk so a
//! restart replays what was queued.

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

/// A `vigil run` child process.
pub struct ManagedAgent {
    binary: PathBuf,
    rules: Vec<PathBuf>,
    config: PathBuf,
    log: PathBuf,
    metrics: SocketAddr,
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
        webhook: &str,
        workdir: &Path,
    ) -> Result<ManagedAgent, ChaosError> {
        let config = workdir.join("vigil.yaml");
        std::fs::write(
            &config,
            format!(
                "sinks:\n  - type: webhook\n    name: chaos\n    url: {webhook}\n    \
                 format: falco\n    batch: {{max_wait: 0s}}\n    \
                 retry: {{initial_backoff: 50ms, max_backoff: 500ms, alert_after: 1s}}\n\
                 spool_dir: {}\nheartbeat_interval: off\n",
                workdir.join("spool").display()
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
            child: None,
        };
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
            .arg(self.metrics.to_string());
        for path in &self.rules {
            command.arg("--rules").arg(path);
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

/// Whether the agent's `/readyz` answers 200.
async fn ready(addr: SocketAddr) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response.starts_with("HTTP/1.1 200")
}
