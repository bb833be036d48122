//! The agent with exactly the capabilities docs/deploy.md documents, as the DaemonSet and the
//! systemd unit run it: root, with every other capability dropped from the bounding set by
//! `capsh`. With the set, `vigil run` attaches every program, reports ready, detects a read of
//! /etc/shadow and still sees into other processes' /proc entries; without each capability, it
//! fails in the documented way. Root only.

#[path = "deploy_support.rs"]
mod deploy_support;

use std::{
    collections::BTreeSet,
    io::{BufRead as _, BufReader, Write as _},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use deploy_support::{Capability, base_capabilities, egress_capabilities, repo};
use serde_json::Value;
use vigil_integration_tests::{
    Running, Scratch, cat, free_addr, http_get, require_root, scrape, stop, vigil_binary,
};

/// Capability names by bit number (linux/capability.h), as capsh spells them.
const CAPABILITY_NAMES: &[&str] = &[
    "cap_chown",
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_fowner",
    "cap_fsetid",
    "cap_kill",
    "cap_setgid",
    "cap_setuid",
    "cap_setpcap",
    "cap_linux_immutable",
    "cap_net_bind_service",
    "cap_net_broadcast",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_ipc_owner",
    "cap_sys_module",
    "cap_sys_rawio",
    "cap_sys_chroot",
    "cap_sys_ptrace",
    "cap_sys_pacct",
    "cap_sys_admin",
    "cap_sys_boot",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_time",
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_lease",
    "cap_audit_write",
    "cap_audit_control",
    "cap_setfcap",
    "cap_mac_override",
    "cap_mac_admin",
    "cap_syslog",
    "cap_wake_alarm",
    "cap_block_suspend",
    "cap_audit_read",
    "cap_perfmon",
    "cap_bpf",
    "cap_checkpoint_restore",
];

/// The rule that reports the probes of [`Holder`]: it fires on their dup2 of a file they
/// opened before the agent started, with the fields only /proc can give for such a process.
const HOLDER_RULE: &str = "- rule: Deploy test descriptor duplicated
  desc: a process that opened a file before the agent started duplicates its descriptor
  condition: evt.type in (dup, dup2, dup3) and proc.name = vigil-holder
  output: >
    descriptor duplicated (file=%fd.name exe=%proc.exepath cwd=%proc.cwd uid=%user.uid
    pid=%proc.pid)
  priority: WARNING
  tags: [test]
";

/// The process name the egress policy selects.
const EGRESS_PROBE: &str = "vigil-egress";

#[test]
fn the_documented_capabilities_are_enough() {
    require_root();
    let scratch = Scratch::new("deploy-caps-enough");
    let mut held = Held::new(&scratch);
    let base = base_capabilities();
    let agent = Agent::start(&base, &held.agent_args()).expect("the agent starts");

    assert_eq!(
        effective_capabilities(agent.pid()),
        expected_effective(&base),
        "the agent runs with exactly the documented capabilities"
    );
    assert_eq!(http_status(&agent.metrics, "/readyz"), 200, "/readyz");
    assert_eq!(
        scrape(&agent.metrics, "vigil_probes_attached"),
        6.0,
        "every tracepoint program is attached"
    );

    cat(Path::new("/etc/shadow"));
    agent.expect_alert("a read of /etc/shadow", |alert| {
        alert["rule"] == "Account Secrets File Read"
    });

    // Processes that predate the agent, one root with every capability and one of another
    // user: the agent still reads their executable, directory and open files in /proc.
    let (root, nobody) = held.release(&agent);
    for (who, alert) in [("root", &root), ("nobody", &nobody)] {
        let fields = &alert["output_fields"];
        assert_eq!(
            fields["fd.name"],
            held.file_name(),
            "{who}: fd.name: {alert}"
        );
        assert_eq!(
            fields["proc.exepath"],
            held.exe_name(),
            "{who}: exe: {alert}"
        );
        assert!(fields["proc.cwd"].is_string(), "{who}: cwd: {alert}");
    }
    agent.stop();
}

#[test]
fn egress_control_needs_net_admin_as_well() {
    require_root();
    let scratch = Scratch::new("deploy-caps-egress");
    let policy = scratch.path("egress.yaml");
    std::fs::write(
        &policy,
        format!(
            "- policy: deploy-test\n  mode: monitor\n  match:\n    proc.name: {EGRESS_PROBE}\n  \
             allow:\n    - cidr: 10.0.0.0/8\n"
        ),
    )
    .expect("policy file");
    let probe = scratch.renamed(&python(), EGRESS_PROBE);
    let args = vec![
        "--rules".into(),
        repo().join("rules").into_os_string(),
        "--egress".into(),
        policy.clone().into_os_string(),
    ];

    let with_egress = egress_capabilities();
    let agent = Agent::start(&with_egress, &args).expect("the agent starts with egress");
    assert_eq!(
        effective_capabilities(agent.pid()),
        expected_effective(&with_egress)
    );
    assert_eq!(http_status(&agent.metrics, "/readyz"), 200, "/readyz");
    assert_eq!(
        scrape(&agent.metrics, "vigil_probes_attached"),
        11.0,
        "the tracepoint and the five egress programs are attached"
    );
    // A UDP connect to TEST-NET-1 sends nothing, but the policy decides it.
    let status = Command::new(&probe)
        .args([
            "-c",
            "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).connect(('192.0.2.1', 9))",
        ])
        .status()
        .expect("run the egress probe");
    assert!(status.success());
    agent.expect_alert("the connect the allowlist lacks", |alert| {
        alert["rule"] == "Egress not allowlisted"
            && alert["output_fields"]["proc.name"] == EGRESS_PROBE
    });
    agent.stop();

    let failure = Agent::fails_to_start(&base_capabilities(), &args);
    assert!(
        failure.contains("egress_connect4") && failure.contains("Operation not permitted"),
        "without CAP_NET_ADMIN the egress programs cannot be attached:\n{failure}"
    );
}

#[test]
fn without_cap_bpf_or_cap_perfmon_the_agent_cannot_start() {
    require_root();
    let args = vec!["--rules".into(), repo().join("rules").into_os_string()];
    for missing in ["CAP_BPF", "CAP_PERFMON"] {
        let fewer = without(&base_capabilities(), missing);
        let failure = Agent::fails_to_start(&fewer, &args);
        assert!(
            failure.contains("starting the eBPF probes")
                && failure.contains("Operation not permitted"),
            "without {missing}:\n{failure}"
        );
    }
}

#[test]
fn without_cap_sys_ptrace_other_processes_are_opaque() {
    require_root();
    let scratch = Scratch::new("deploy-caps-ptrace");
    let mut held = Held::new(&scratch);
    let fewer = without(&base_capabilities(), "CAP_SYS_PTRACE");
    let agent = Agent::start(&fewer, &held.agent_args()).expect("the agent starts");
    let (root, nobody) = held.release(&agent);
    // The kernel's ptrace access check refuses the links of a process whose capabilities are
    // not a subset of the agent's, or of another user.
    for (who, alert) in [("root", &root), ("nobody", &nobody)] {
        let fields = &alert["output_fields"];
        assert!(fields["proc.exepath"].is_null(), "{who}: exe: {alert}");
        assert!(fields["proc.cwd"].is_null(), "{who}: cwd: {alert}");
        assert!(fields["fd.name"].is_null(), "{who}: fd.name: {alert}");
    }
    agent.stop();
}

#[test]
fn without_cap_dac_read_search_other_users_files_are_unresolved() {
    require_root();
    let scratch = Scratch::new("deploy-caps-dac");
    let mut held = Held::new(&scratch);
    let fewer = without(&base_capabilities(), "CAP_DAC_READ_SEARCH");
    let agent = Agent::start(&fewer, &held.agent_args()).expect("the agent starts");
    let (root, nobody) = held.release(&agent);
    // /proc/<pid>/fd is readable by the process's owner only: root's is fine, nobody's is not.
    assert_eq!(root["output_fields"]["fd.name"], held.file_name(), "{root}");
    assert!(nobody["output_fields"]["fd.name"].is_null(), "{nobody}");
    // The links themselves are covered by CAP_SYS_PTRACE.
    assert_eq!(
        nobody["output_fields"]["proc.exepath"],
        held.exe_name(),
        "{nobody}"
    );
    agent.stop();
}

/// `vigil run` under capsh, with its alerts and logs collected.
struct Agent {
    child: Running,
    metrics: String,
    alerts: Arc<Mutex<Vec<Value>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Agent {
    /// Starts the agent with only `keep` (of the capabilities this test process has) and
    /// waits until it runs. `Err` holds its stderr when it exits instead.
    fn start(keep: &[Capability], args: &[std::ffi::OsString]) -> Result<Agent, String> {
        let metrics = free_addr();
        let keep: BTreeSet<String> = keep.iter().map(Capability::capsh_name).collect();
        let drop: Vec<&str> = bounding_set()
            .into_iter()
            .filter(|name| !keep.contains(*name))
            .collect();
        let mut child = Command::new("capsh")
            .arg(format!("--drop={}", drop.join(",")))
            .arg(format!("--shell={}", vigil_binary().display()))
            .args(["--", "run", "--metrics-addr", &metrics])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run capsh (Debian package libcap2-bin)");

        let alerts = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let collected = Arc::clone(&alerts);
        let alert_reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(alert) = serde_json::from_str::<Value>(&line) {
                    collected.lock().expect("alerts").push(alert);
                }
            }
        });
        let (running_tx, running) = mpsc::channel();
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let log_reader = std::thread::spawn(move || {
            let mut log = String::new();
            let mut line = String::new();
            while stderr.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line.contains("vigil is running") {
                    let _ = running_tx.send(Ok(()));
                }
                log.push_str(&line);
                line.clear();
            }
            // End of stderr: the agent exited (after running, nobody listens any more).
            let _ = running_tx.send(Err(log));
        });
        match running.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => Ok(Agent {
                child: Running(child),
                metrics,
                alerts,
                readers: vec![alert_reader, log_reader],
            }),
            Ok(Err(log)) => {
                let status = child.wait().expect("wait for the agent");
                assert!(
                    !status.success(),
                    "the agent exited cleanly without running"
                );
                Err(log)
            }
            Err(_) => {
                let _ = child.kill();
                panic!("the agent neither ran nor exited within 30 s");
            }
        }
    }

    /// Starts the agent with only `keep`, expecting it to exit; returns its stderr.
    fn fails_to_start(keep: &[Capability], args: &[std::ffi::OsString]) -> String {
        match Agent::start(keep, args) {
            Ok(agent) => {
                let pid = agent.pid();
                agent.stop();
                panic!("the agent (pid {pid}) started with {keep:?}");
            }
            Err(log) => log,
        }
    }

    fn pid(&self) -> u32 {
        // capsh execs the agent in place.
        self.child.0.id()
    }

    /// The first alert that matches, within 10 s.
    fn expect_alert(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(alert) = self
                .alerts
                .lock()
                .expect("alerts")
                .iter()
                .find(|a| matches(a))
            {
                return alert.clone();
            }
            assert!(Instant::now() < deadline, "no alert for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and a clean exit.
    fn stop(mut self) {
        stop(&mut self.child.0);
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

/// Two processes that open a file before the agent starts and keep it open: one root with
/// every capability this test has, one running as nobody. Released, each duplicates the
/// descriptor, which [`HOLDER_RULE`] reports with what the agent found in /proc.
struct Held {
    file: PathBuf,
    exe: PathBuf,
    rules: PathBuf,
    root: (Child, ChildStdin),
    nobody: (Child, ChildStdin),
}

impl Held {
    fn new(scratch: &Scratch) -> Held {
        // Readable and searchable by nobody, whatever the umask.
        let readable = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        readable(&scratch.0, 0o755);
        let file = scratch.path("held-open");
        std::fs::write(&file, "x").expect("the held file");
        readable(&file, 0o644);
        let exe = scratch.renamed(&python(), "vigil-holder");
        let rules = scratch.path("holder.yaml");
        std::fs::write(&rules, HOLDER_RULE).expect("the holder rule");
        const SCRIPT: &str = "import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
print('ready', flush=True)
sys.stdin.readline()
os.dup2(fd, 42)
time.sleep(3)  # the agent resolves the descriptor while it is still open
";
        let spawn = |command: &mut Command| -> (Child, ChildStdin) {
            let mut child = command
                .args(["-c", SCRIPT])
                .arg(&file)
                .current_dir(&scratch.0)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a holder");
            let mut ready = String::new();
            BufReader::new(child.stdout.as_mut().expect("stdout"))
                .read_line(&mut ready)
                .expect("the holder starts");
            assert_eq!(ready.trim(), "ready");
            let stdin = child.stdin.take().expect("stdin");
            (child, stdin)
        };
        let root = spawn(&mut Command::new(&exe));
        let nobody = spawn(
            Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&exe),
        );
        Held {
            file,
            exe,
            rules,
            root,
            nobody,
        }
    }

    /// `--rules` for the bundled rules and the holder rule.
    fn agent_args(&self) -> Vec<std::ffi::OsString> {
        vec![
            "--rules".into(),
            repo().join("rules").into_os_string(),
            "--rules".into(),
            self.rules.clone().into_os_string(),
        ]
    }

    fn file_name(&self) -> String {
        self.file.display().to_string()
    }

    fn exe_name(&self) -> String {
        self.exe.display().to_string()
    }

    /// Lets both holders duplicate their descriptor; returns the alerts (root's, nobody's).
    fn release(&mut self, agent: &Agent) -> (Value, Value) {
        let mut alerts = Vec::new();
        for (child, stdin) in [&mut self.root, &mut self.nobody] {
            writeln!(stdin, "go").expect("release a holder");
            let pid = child.id();
            alerts.push(agent.expect_alert("a holder's dup2", |alert| {
                alert["rule"] == "Deploy test descriptor duplicated"
                    && alert["output_fields"]["proc.pid"] == pid
            }));
        }
        for (child, _) in [&mut self.root, &mut self.nobody] {
            let status = child.wait().expect("a holder ends");
            assert!(status.success(), "a holder failed");
        }
        let nobody = alerts.pop().expect("nobody's alert");
        let root = alerts.pop().expect("root's alert");
        assert_eq!(root["output_fields"]["user.uid"], 0, "{root}");
        assert_eq!(nobody["output_fields"]["user.uid"], 65534, "{nobody}");
        (root, nobody)
    }
}

/// The names of the capabilities in this process's bounding set: what capsh can drop.
fn bounding_set() -> Vec<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    names_of_mask(capability_mask(&status, "CapBnd"))
}

/// The effective capabilities of a process, by name.
fn effective_capabilities(pid: u32) -> BTreeSet<&'static str> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the agent's status");
    names_of_mask(capability_mask(&status, "CapEff"))
        .into_iter()
        .collect()
}

/// What the agent should end up with: `keep`, less what this test process does not have
/// itself. Having fewer only makes the check stricter, but it is worth knowing.
fn expected_effective(keep: &[Capability]) -> BTreeSet<&'static str> {
    let available = bounding_set();
    keep.iter()
        .filter_map(|cap| {
            let name = cap.capsh_name();
            let found = available.iter().find(|n| **n == name).copied();
            if found.is_none() {
                eprintln!(
                    "note: this test process has no {}, so the agent runs without it too",
                    cap.name
                );
            }
            found
        })
        .collect()
}

fn capability_mask(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/<pid>/status"))
}

fn names_of_mask(mask: u64) -> Vec<&'static str> {
    (0..64)
        .filter(|bit| mask & (1 << bit) != 0)
        .map(|bit| {
            CAPABILITY_NAMES.get(bit).copied().unwrap_or_else(|| {
                panic!("capability bit {bit} is unknown to this test: extend CAPABILITY_NAMES")
            })
        })
        .collect()
}

fn without(capabilities: &[Capability], name: &str) -> Vec<Capability> {
    assert!(
        capabilities.iter().any(|cap| cap.name == name),
        "{name} is not documented"
    );
    capabilities
        .iter()
        .filter(|cap| cap.name != name)
        .cloned()
        .collect()
}

/// The status code of a GET on the agent's endpoint.
fn http_status(addr: &str, path: &str) -> u16 {
    match http_get(addr, path) {
        (0, _) => panic!("no HTTP response from {addr}{path}"),
        (status, _) => status,
    }
}

/// Debian's python3, which the bootstrap installs.
fn python() -> String {
    let python = std::fs::canonicalize("/usr/bin/python3").expect("/usr/bin/python3");
    python.display().to_string()
}
