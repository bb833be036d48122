//! Shared helpers of the integration tests: start the real probes, cause activity, and wait for
//! the events it produced.
#![allow(missing_docs)]

use std::{
    io::{BufRead as _, BufReader},
    num::NonZeroUsize,
    path::PathBuf,
    process::Child,
    sync::Arc,
    time::{Duration, Instant},
};

use vigil::{
    enrich::Enriched,
    events::{EventKind, ParamValue},
    metrics::Metrics,
    pipeline::{Pipeline, PipelineConfig},
};

/// Fails loudly when the tests cannot exercise the kernel: passing quietly would hide it.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the integration tests load eBPF programs and must run as root (cargo xtask test)"
    );
}

/// A running pipeline and every event it has delivered so far.
pub struct Harness {
    pipeline: Pipeline,
    pub metrics: Arc<Metrics>,
    seen: Vec<Enriched>,
}

impl Harness {
    /// Attaches the real probes.
    pub async fn start() -> Harness {
        Harness::start_with(|_| {}).await
    }

    /// Attaches the real probes with an adjusted configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut PipelineConfig)) -> Harness {
        require_root();
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let mut config = PipelineConfig::for_host(NonZeroUsize::new(65536).expect("non-zero"))
            .expect("host configuration");
        adjust(&mut config);
        let pipeline = Pipeline::start(config, Arc::clone(&metrics))
            .await
            .expect("probes attach");
        assert!(metrics.is_ready(), "every probe attached");
        Harness {
            pipeline,
            metrics,
            seen: Vec::new(),
        }
    }

    /// The first event (already seen or arriving within `timeout`) that matches.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        matches: impl Fn(&Enriched) -> bool,
    ) -> Option<Enriched> {
        if let Some(found) = self.seen.iter().find(|event| matches(event)) {
            return Some(found.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let event = tokio::time::timeout(left, self.pipeline.next())
                .await
                .ok()??;
            let hit = matches(&event);
            if self.seen.len() < 500_000 {
                self.seen.push(event.clone());
            }
            if hit {
                return Some(event);
            }
        }
    }

    /// The next event within `timeout`, not remembered (for load measurements).
    pub async fn next_event(&mut self, timeout: Duration) -> Option<Enriched> {
        tokio::time::timeout(timeout, self.pipeline.next())
            .await
            .ok()
            .flatten()
    }

    /// Like [`Harness::wait_for`], but panics with `what` on a timeout.
    pub async fn expect(&mut self, what: &str, matches: impl Fn(&Enriched) -> bool) -> Enriched {
        match self.wait_for(Duration::from_secs(10), matches).await {
            Some(event) => event,
            None => panic!(
                "no event matched: {what} (saw {} events; drops {})",
                self.seen.len(),
                self.metrics.kernel_drops_total()
            ),
        }
    }

    /// The programs attached to the kernel.
    pub fn attached(&self) -> &[&'static str] {
        self.pipeline.attached()
    }

    /// Every event seen so far.
    pub fn seen(&self) -> &[Enriched] {
        &self.seen
    }

    /// Detaches the probes.
    pub async fn stop(self) {
        self.pipeline.shutdown().await.expect("reader ran cleanly");
    }
}

/// The `evt.type` of an event.
pub fn type_of(event: &Enriched) -> &'static str {
    event.event.type_name()
}

/// A string parameter of a syscall event.
pub fn str_arg<'a>(event: &'a Enriched, name: &str) -> Option<&'a str> {
    match event.event.syscall()?.param(name)? {
        ParamValue::Str(value) => Some(value),
        _ => None,
    }
}

/// Whether the event is a syscall of type `name` by process `pid`.
pub fn is_call(event: &Enriched, name: &str, pid: u32) -> bool {
    matches!(event.event.kind, EventKind::Syscall(_))
        && event.event.task.pid == pid
        && type_of(event) == name
}

/// The `vigil` binary built next to the test executable.
pub fn vigil_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/vigil
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("vigil"))
        .expect("target directory layout");
    assert!(
        binary.exists(),
        "{} is missing: build it first (cargo build -p vigil); cargo xtask test does",
        binary.display()
    );
    binary
}

/// The cgroup v2 mount of this host.
pub fn cgroup2_root() -> PathBuf {
    vigil::host::mounts::cgroup2_mount().expect("cgroup v2 mounted")
}

pub use vigil::testing::falco_rules_dir;

/// A cgroup named like a docker container's scope, to run processes "in a container".
pub struct FakeContainer {
    /// The 64-hex container id.
    pub id: String,
    slice: PathBuf,
    scope: PathBuf,
}

impl FakeContainer {
    /// Creates the cgroup (the id is derived from `seed`).
    pub fn new(seed: u32) -> FakeContainer {
        let id = format!("{:08x}", seed).repeat(8);
        let slice = cgroup2_root().join(format!("vigil-test-{}-{seed}.slice", std::process::id()));
        let scope = slice.join(format!("docker-{id}.scope"));
        std::fs::create_dir_all(&scope).expect("create cgroup");
        FakeContainer { id, slice, scope }
    }

    /// A shell command that moves itself into the container, then runs `command`.
    pub fn wrap(&self, command: &str) -> String {
        format!(
            "echo $$ > {}/cgroup.procs && {command}",
            self.scope.display()
        )
    }
}

impl Drop for FakeContainer {
    fn drop(&mut self) {
        // The processes are gone by now; an empty cgroup can be removed.
        let _ = std::fs::remove_dir(&self.scope);
        let _ = std::fs::remove_dir(&self.slice);
    }
}

/// A scratch directory removed at the end of the test.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh directory under the temp dir.
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("vigil-rules-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A copy of `binary` named `name`, so the process it runs has that name.
    pub fn renamed(&self, binary: &str, name: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::copy(binary, &path).expect("copy binary");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `script` under /bin/sh with the probes attached, evaluates `ruleset` on the events of
/// the script's process tree, and returns the alerts. `docker_root` points container metadata
/// at a fake docker state directory.
pub async fn alerts_of_script(
    ruleset: &vigil::rules::engine::Ruleset,
    script: &str,
    docker_root: Option<&std::path::Path>,
) -> Vec<vigil::rules::alert::Alert> {
    let roots = docker_root.map(|root| vigil::state::container_meta::RuntimeRoots {
        docker: root.to_path_buf(),
        containerd_state: root.join("no-containerd"),
        containers_storage: Vec::new(),
        pods: None,
    });
    alerts_of_script_with(ruleset, script, |config| {
        if let Some(roots) = roots {
            config.state.runtime_roots = roots;
        }
    })
    .await
}

/// Like [`alerts_of_script`], with the pipeline configured by `adjust`.
pub async fn alerts_of_script_with(
    ruleset: &vigil::rules::engine::Ruleset,
    script: &str,
    adjust: impl FnOnce(&mut PipelineConfig),
) -> Vec<vigil::rules::alert::Alert> {
    use std::collections::HashSet;
    use std::process::{Command, Stdio};

    let mut harness = Harness::start_with(adjust).await;

    let child = Command::new("/bin/sh")
        .args(["-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the behaviour");
    let root = child.id();
    let waiter = std::thread::spawn(move || {
        let mut child = child;
        child.wait()
    });

    let mut tree: HashSet<u32> = [root].into();
    let mut alerts = Vec::new();
    let mut done_at: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if done_at.is_some_and(|t| t.elapsed() > Duration::from_millis(500)) {
            break;
        }
        let Some(event) = harness.next_event(Duration::from_millis(100)).await else {
            continue;
        };
        let pid = event.event.task.pid;
        if let EventKind::Fork { child_pid, .. } = event.event.kind
            && tree.contains(&pid)
        {
            tree.insert(child_pid);
        }
        if !tree.contains(&pid) {
            continue;
        }
        if pid == root && matches!(event.event.kind, EventKind::Exit) {
            done_at = Some(Instant::now());
        }
        ruleset.evaluate(&event, &mut alerts);
    }
    waiter.join().expect("waiter").expect("behaviour ran");
    assert!(done_at.is_some(), "the behaviour's exit was never seen");
    assert_eq!(harness.metrics.kernel_drops_total(), 0);
    harness.stop().await;
    alerts
}

/// Asserts that `rule`, and no other rule, fired; returns its first alert.
pub fn assert_exactly(
    alerts: &[vigil::rules::alert::Alert],
    rule: &str,
) -> vigil::rules::alert::Alert {
    let fired: std::collections::BTreeSet<&str> = alerts.iter().map(|a| a.rule.as_ref()).collect();
    assert_eq!(
        fired,
        std::collections::BTreeSet::from([rule]),
        "rules fired: {alerts:#?}"
    );
    alerts
        .iter()
        .find(|a| a.rule.as_ref() == rule)
        .cloned()
        .expect("alert")
}

/// A child process killed when the test ends, even by a failed assertion, so that no agent
/// outlives its test.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback address (`127.0.0.1:port`).
pub fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    listener.local_addr().expect("addr").to_string()
}

/// Waits until the agent's stderr says it is running; the returned thread keeps draining it.
pub fn wait_running(agent: &mut Child) -> std::thread::JoinHandle<()> {
    let stderr = agent.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let drain = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("vigil is running") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("vigil started its probes");
    drain
}

/// Starts `vigil run ARGS` (stdout discarded, stderr drained) and waits until it runs; returns
/// the agent and the thread draining its log.
pub fn spawn_run<I, S>(args: I) -> (Running, std::thread::JoinHandle<()>)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut agent = Running(
        std::process::Command::new(vigil_binary())
            .arg("run")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("vigil run"),
    );
    let drain = wait_running(&mut agent.0);
    (agent, drain)
}

/// Writes a configuration whose only sink is the file `alerts` (heartbeats off) to `config`.
pub fn file_sink_config(config: &std::path::Path, alerts: &std::path::Path) {
    std::fs::write(
        config,
        format!(
            "sinks:\n  - type: file\n    path: {}\nheartbeat_interval: off\n",
            alerts.display()
        ),
    )
    .expect("config");
}

/// Stops an agent with SIGTERM and checks it exits cleanly.
pub fn stop(agent: &mut Child) {
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = agent.try_wait().expect("wait") {
            assert!(status.success(), "vigil exited with {status}");
            return;
        }
        assert!(Instant::now() < deadline, "vigil did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `cat FILE` to completion (output discarded) and returns its pid.
pub fn cat(file: &std::path::Path) -> u32 {
    let cat = std::process::Command::new("cat")
        .arg(file)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("cat");
    let pid = cat.id();
    cat.wait_with_output().expect("cat ran");
    pid
}

/// Writes docker's state files for container `id` (named `vigil-test`, image
/// `docker.io/library/vigil-test:1.0`) below a docker data root.
pub fn fake_docker_state(root: &std::path::Path, id: &str, privileged: bool) {
    let dir = root.join("containers").join(id);
    std::fs::create_dir_all(&dir).expect("docker state dir");
    let config = serde_json::json!({
        "ID": id,
        "Name": "/vigil-test",
        "Created": "2026-01-01T00:00:00Z",
        "Config": {"Image": "docker.io/library/vigil-test:1.0", "Labels": {}},
        "MountPoints": {},
    });
    std::fs::write(dir.join("config.v2.json"), config.to_string()).expect("config.v2.json");
    let host = serde_json::json!({"Privileged": privileged});
    std::fs::write(dir.join("hostconfig.json"), host.to_string()).expect("hostconfig.json");
}

/// A metric's value from the agent's endpoint (0 when absent).
pub fn scrape(metrics: &str, name: &str) -> f64 {
    http_get(metrics, "/metrics")
        .1
        .lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

/// `GET path` on the agent's endpoint at `addr`: the status (0 when nothing answered) and the
/// body.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}
