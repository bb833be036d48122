//! The official Falco stable rules on the real kernel: each test performs, harmlessly, the
//! behaviour a rule describes, and asserts that exactly that rule fires, with the right output
//! fields. Containers are played by processes moved into a cgroup named like a docker scope;
//! container metadata comes from a fake docker state directory.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use vigil::rules::{
    alert::Alert,
    engine::{Ruleset, Selection},
};
use vigil_integration_tests::{
    FakeContainer, Harness, Scratch, alerts_of_script, assert_exactly, fake_docker_state,
    falco_rules_dir,
};

const PYTHON: &str = "/usr/bin/python3";

/// Runs `script` with the probes attached and the stable rules loaded; returns the alerts of
/// the script's process tree.
async fn alerts_for(script: &str, docker_root: Option<&Path>) -> Vec<Alert> {
    let (ruleset, report) = Ruleset::load(
        &[falco_rules_dir().join("falco_rules.yaml")],
        &Selection::default(),
    );
    assert!(
        report.rules >= 23,
        "stable rules compiled: {}",
        report.rules
    );
    alerts_of_script(&ruleset, script, docker_root).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_sensitive_file_untrusted() {
    let alerts = alerts_for("cat /etc/shadow", None).await;
    let alert = assert_exactly(&alerts, "Read sensitive file untrusted");
    assert_eq!(alert.priority, "Warning");
    assert_eq!(alert.output_fields["fd.name"], "/etc/shadow");
    assert_eq!(alert.output_fields["proc.name"], "cat");
    assert_eq!(alert.output_fields["evt.type"], "openat");
    assert_eq!(alert.output_fields["user.name"], "root");
    assert!(
        alert
            .output
            .contains("Warning Sensitive file opened for reading")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_traversal_monitored_file_read() {
    // `exec`: a shell parent would be excluded by the rule.
    let alerts = alerts_for("exec cat /etc/../etc/../etc/hostname", None).await;
    let alert = assert_exactly(&alerts, "Directory traversal monitored file read");
    assert_eq!(alert.output_fields["fd.name"], "/etc/hostname");
    assert_eq!(
        alert.output_fields["fd.nameraw"],
        "/etc/../etc/../etc/hostname"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_traversal_that_fails_is_reported_too() {
    // Falco's `open_file_failed`: a failed open has fd.num -1 and still names the file.
    let alerts = alerts_for("exec cat /etc/../etc/../etc/vigil-missing", None).await;
    let alert = assert_exactly(&alerts, "Directory traversal monitored file read");
    assert_eq!(alert.output_fields["fd.name"], "/etc/vigil-missing");
    assert_eq!(
        alert.output_fields["fd.nameraw"],
        "/etc/../etc/../etc/vigil-missing"
    );
    assert_eq!(alert.output_fields["evt.type"], "openat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_private_keys_or_passwords() {
    let alerts = alerts_for("find /nonexistent-vigil -name id_rsa", None).await;
    let alert = assert_exactly(&alerts, "Search Private Keys or Passwords");
    assert_eq!(alert.output_fields["proc.name"], "find");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_aws_credentials() {
    let alerts = alerts_for("find /nonexistent-vigil -path '*.aws/credentials'", None).await;
    let alert = assert_exactly(&alerts, "Find AWS Credentials");
    assert_eq!(alert.output_fields["proc.name"], "find");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_log_activities() {
    let log = format!("/var/log/vigil-test-{}.log", std::process::id());
    std::fs::write(&log, "old line\n").expect("test log");
    let alerts = alerts_for(&format!(": > {log}"), None).await;
    let _ = std::fs::remove_file(&log);
    let alert = assert_exactly(&alerts, "Clear Log Activities");
    assert_eq!(alert.output_fields["fd.name"], log.as_str());
    assert!(
        alert.output.contains(&format!("file={log}")),
        "{}",
        alert.output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_bulk_data_from_disk() {
    let scratch = Scratch::new("shred");
    let file = scratch.path("data");
    std::fs::write(&file, "secret").expect("data");
    let alerts = alerts_for(&format!("shred -u {}", file.display()), None).await;
    let alert = assert_exactly(&alerts, "Remove Bulk Data from Disk");
    assert_eq!(alert.output_fields["proc.name"], "shred");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_symlink_over_sensitive_files() {
    let scratch = Scratch::new("symlink");
    let link = scratch.path("shadow-link");
    let alerts = alerts_for(&format!("ln -s /etc/shadow {}", link.display()), None).await;
    let alert = assert_exactly(&alerts, "Create Symlink Over Sensitive Files");
    assert_eq!(alert.output_fields["evt.arg.target"], "/etc/shadow");
    assert_eq!(
        alert.output_fields["evt.arg.linkpath"],
        link.display().to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_hardlink_over_sensitive_files() {
    let scratch = Scratch::new("hardlink");
    let link = scratch.path("shadow-hard");
    let alerts = alerts_for(&format!("ln /etc/shadow {}", link.display()), None).await;
    let alert = assert_exactly(&alerts, "Create Hardlink Over Sensitive Files");
    assert_eq!(alert.output_fields["evt.arg.oldpath"], "/etc/shadow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_from_dev_shm() {
    let binary = format!("/dev/shm/vigil-true-{}", std::process::id());
    std::fs::copy("/bin/true", &binary).expect("copy to /dev/shm");
    let alerts = alerts_for(&binary, None).await;
    let _ = std::fs::remove_file(&binary);
    assert_exactly(&alerts, "Execution from /dev/shm");
    // The shell whose command line names /dev/shm matches too, as in Falco; the binary's own
    // execution must be among the alerts.
    assert!(
        alerts
            .iter()
            .any(|a| a.output_fields["proc.exepath"] == binary.as_str()),
        "{alerts:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fileless_execution_via_memfd_create() {
    let script = format!(
        "{PYTHON} -c 'import os; fd = os.memfd_create(\"payload\"); \
         os.write(fd, open(\"/bin/true\", \"rb\").read()); \
         os.execv(\"/proc/self/fd/%d\" % fd, [\"payload\"])'"
    );
    let alerts = alerts_for(&script, None).await;
    let alert = assert_exactly(&alerts, "Fileless execution via memfd_create");
    assert_eq!(alert.priority, "Critical");
    assert_eq!(alert.output_fields["evt.type"], "execve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ptrace_anti_debug_attempt() {
    let script = format!(
        "{PYTHON} -c 'import ctypes; ctypes.CDLL(None, use_errno=True).ptrace(0, 0, 0, 0)'"
    );
    let alerts = alerts_for(&script, None).await;
    let alert = assert_exactly(&alerts, "PTRACE anti-debug attempt");
    assert!(
        alert.output.contains("PTRACE_TRACEME") || alert.output_fields.contains_key("proc.name")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ptrace_attached_to_process() {
    let script = format!(
        "{PYTHON} -c 'import ctypes, os, signal, time\n\
         pid = os.fork()\n\
         if pid == 0:\n    time.sleep(5); os._exit(0)\n\
         ctypes.CDLL(None).ptrace(16, pid, 0, 0)\n\
         os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)'"
    );
    let alerts = alerts_for(&script, None).await;
    assert_exactly(&alerts, "PTRACE attached to process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_socket_created_in_container() {
    let container = FakeContainer::new(0x5ac1);
    let script = container.wrap(&format!(
        "exec {PYTHON} -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)'"
    ));
    let alerts = alerts_for(&script, None).await;
    let alert = assert_exactly(&alerts, "Packet socket created in container");
    assert!(
        alert.output_fields["evt.args"]
            .as_str()
            .is_some_and(|a| a.contains("domain=AF_PACKET")),
        "{alert:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_stdout_to_network_connection_in_container() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("addr").port();
    let container = FakeContainer::new(0x5ac2);
    let script = container.wrap(&format!(
        "exec /bin/bash -c 'exec 1<>/dev/tcp/127.0.0.1/{port}; echo hi'"
    ));
    let alerts = alerts_for(&script, None).await;
    let alert = assert_exactly(
        &alerts,
        "Redirect STDOUT/STDIN to Network Connection in Container",
    );
    assert_eq!(alert.output_fields["fd.type"], "ipv4");
    assert!(
        alert.output_fields["fd.name"]
            .as_str()
            .is_some_and(|n| n.ends_with(&format!("->127.0.0.1:{port}"))),
        "{alert:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netcat_remote_code_execution_in_container() {
    let scratch = Scratch::new("nc");
    let nc = scratch.renamed("/bin/true", "nc");
    let container = FakeContainer::new(0x5ac3);
    let script = container.wrap(&format!("exec {} -e /bin/sh 127.0.0.1 4444", nc.display()));
    let alerts = alerts_for(&script, None).await;
    let alert = assert_exactly(&alerts, "Netcat Remote Code Execution in Container");
    assert_eq!(alert.output_fields["proc.name"], "nc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detect_release_agent_file_container_escapes() {
    let scratch = Scratch::new("release-agent");
    let container = FakeContainer::new(0x5ac4);
    let script = container.wrap(&format!(": > {}", scratch.path("release_agent").display()));
    let alerts = alerts_for(&script, None).await;
    let alert = assert_exactly(&alerts, "Detect release_agent File Container Escapes");
    assert_eq!(alert.priority, "Critical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_and_execute_new_binary_in_container() {
    // A container as a runtime makes one: its own mount namespace, an overlay root (the
    // image is the lower layer, writes land in the upper one) entered with pivot_root. A
    // binary copied in after start lives in the upper layer; the image's own do not.
    let scratch = Scratch::new("overlay-root");
    let dir = |name: &str| scratch.path(name).display().to_string();
    for path in [
        "lower/usr",
        "lower/tmp",
        "lower/old",
        "upper",
        "work",
        "merged",
    ] {
        std::fs::create_dir_all(scratch.path(path)).expect("layer directory");
    }
    for dir in ["bin", "lib", "lib64"] {
        std::os::unix::fs::symlink(format!("usr/{dir}"), scratch.path(&format!("lower/{dir}")))
            .expect("image symlink");
    }
    let (lower, upper, work, merged) = (dir("lower"), dir("upper"), dir("work"), dir("merged"));
    let container = FakeContainer::new(0x5ac9);
    let script = container.wrap(&format!(
        "exec unshare -m --propagation private sh -c '\
         mount -t overlay overlay -o lowerdir={lower},upperdir={upper},workdir={work} {merged} \
         && mount --bind /usr {merged}/usr \
         && cp /usr/bin/sleep {merged}/tmp/vigil-dropped \
         && cd {merged} && pivot_root . old \\
         && /usr/bin/sleep 0.5 && exec /tmp/vigil-dropped 1' 2> {errors}",
        errors = dir("errors"),
    ));
    let alerts = alerts_for(&script, None).await;
    assert!(
        scratch.path("upper/tmp/vigil-dropped").exists(),
        "the container was not set up: {}",
        std::fs::read_to_string(scratch.path("errors")).unwrap_or_default()
    );
    let alert = assert_exactly(&alerts, "Drop and execute new binary in container");
    // The image's own `sleep`, run in the same container first, is not in the upper layer.
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alert.priority, "Critical");
    assert_eq!(alert.output_fields["proc.exepath"], "/tmp/vigil-dropped");
    assert_eq!(alert.output_fields["proc.name"], "vigil-dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debugfs_launched_in_privileged_container() {
    let scratch = Scratch::new("debugfs");
    let debugfs = scratch.renamed("/bin/true", "debugfs");
    let container = FakeContainer::new(0x5ac5);
    let docker_root = scratch.path("docker");
    fake_docker_state(&docker_root, &container.id, true);
    let script = container.wrap(&format!("exec {}", debugfs.display()));
    let alerts = alerts_for(&script, Some(&docker_root)).await;
    let alert = assert_exactly(&alerts, "Debugfs Launched in Privileged Container");
    assert_eq!(alert.output_fields["proc.name"], "debugfs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_kernel_module_injection_detected() {
    let scratch = Scratch::new("module");
    let container = FakeContainer::new(0x5ac6);
    let docker_root = scratch.path("docker");
    fake_docker_state(&docker_root, &container.id, false);
    // init_module with an empty image: the kernel rejects it, nothing is loaded.
    let script = container.wrap(&format!(
        "exec {PYTHON} -c 'import ctypes; ctypes.CDLL(None).syscall(175, b\"\", 0, b\"\")'"
    ));
    let alerts = alerts_for(&script, Some(&docker_root)).await;
    let alert = assert_exactly(&alerts, "Linux Kernel Module Injection Detected");
    assert_eq!(alert.output_fields["evt.type"], "init_module");
    assert!(
        alert.output_fields["evt.res"]
            .as_str()
            .is_some_and(|r| r.starts_with('E')),
        "the kernel refused the empty module: {alert:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_names_come_from_the_names_rules_mention() {
    use vigil::rules::loader::{self, Source};
    let text = "- rule: Talks to localhost by name\n  desc: d\n  condition: evt.type = connect and fd.sip.name = localhost\n  output: connected to %fd.sip.name (%fd.sip)\n  priority: notice\n";
    let loaded = loader::load(&[Source {
        name: "dns.yaml".into(),
        text: text.into(),
    }]);
    let (ruleset, report) = Ruleset::compile(&loaded, &Selection::default());
    assert!(report.ok(), "{:?}", report.errors);
    // Whichever loopback address this machine's resolver gives `localhost` (127.0.0.1 or ::1)
    // and this machine can listen on (IPv6 may be off).
    use std::net::ToSocketAddrs;
    let (loopback, listener) = ("localhost", 0)
        .to_socket_addrs()
        .expect("localhost resolves")
        .map(|addr| addr.ip())
        .filter(|ip| ip.is_loopback())
        .find_map(|ip| Some((ip, std::net::TcpListener::bind((ip, 0)).ok()?)))
        .expect("localhost has a loopback address to listen on");
    // The name is resolved in the background: wait for it, as a rule loaded at start-up would.
    let deadline = Instant::now() + Duration::from_secs(10);
    let localhost_known = || {
        vigil::rules::dns::global()
            .names_for(&loopback)
            .iter()
            .any(|name| name.as_ref() == "localhost")
    };
    while !localhost_known() {
        assert!(
            Instant::now() < deadline,
            "localhost never resolved to {loopback}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let port = listener.local_addr().expect("addr").port();
    let mut harness = Harness::start().await;
    let child = Command::new("/bin/bash")
        .args(["-c", &format!("exec 3<>/dev/tcp/{loopback}/{port}")])
        .spawn()
        .expect("bash");
    let pid = child.id();
    child.wait_with_output().expect("bash ran");
    // Only the connect to the listener: the shell may make others (a name service socket).
    let connect = harness
        .expect("the connect", |e| {
            e.event.task.pid == pid
                && e.event.type_name() == "connect"
                && e.event.syscall().is_some_and(|call| {
                    matches!(&call.sockaddr,
                        Some(vigil::events::sockaddr::SockAddr::Inet(addr)) if addr.port() == port)
                })
        })
        .await;
    let mut alerts = Vec::new();
    ruleset.evaluate(&connect, &mut alerts);
    let Some(alert) = alerts.first() else {
        panic!(
            "the rule did not fire: socket {:?}, names of {loopback}: {:?}",
            connect.fd.as_ref().and_then(|fd| fd.info.as_ref()),
            vigil::rules::dns::global().names_for(&loopback)
        );
    };
    assert_eq!(alert.output_fields["fd.sip.name"], "localhost");
    assert!(
        alert
            .output
            .ends_with(&format!("connected to localhost ({loopback})")),
        "{}",
        alert.output
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_shell_untrusted() {
    let scratch = Scratch::new("nginx-shell");
    // A shell binary named like a web server plays the server that spawns a shell.
    let nginx = scratch.renamed("/bin/dash", "nginx");
    let alerts = alerts_for(
        &format!("exec {} -c 'sh -c true; true'", nginx.display()),
        None,
    )
    .await;
    let alert = assert_exactly(&alerts, "Run shell untrusted");
    assert_eq!(alert.output_fields["proc.name"], "sh");
    assert_eq!(alert.output_fields["proc.pname"], "nginx");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_user_interactive() {
    let scratch = Scratch::new("sshd-daemon");
    // An ancestor named sshd makes the session interactive; the command runs as `daemon`.
    let sshd = scratch.renamed("/bin/dash", "sshd");
    let script = format!(
        "exec {} -c 'setpriv --reuid=daemon --regid=daemon --clear-groups /bin/true; true'",
        sshd.display()
    );
    let alerts = alerts_for(&script, None).await;
    let alert = assert_exactly(&alerts, "System user interactive");
    assert_eq!(alert.output_fields["user.name"], "daemon");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_sensitive_file_trusted_after_startup() {
    let scratch = Scratch::new("nginx-shadow");
    let nginx = scratch.renamed("/bin/dash", "nginx");
    // A server process older than 5 s opens /etc/shadow itself (the shell's redirection).
    let alerts = alerts_for(
        &format!(
            "exec {} -c 'sleep 6; read line < /etc/shadow; true'",
            nginx.display()
        ),
        None,
    )
    .await;
    // A web server is not in the untrusted rule's allow list either: Falco raises both.
    let fired: std::collections::BTreeSet<&str> = alerts.iter().map(|a| a.rule.as_ref()).collect();
    assert_eq!(
        fired,
        std::collections::BTreeSet::from([
            "Read sensitive file trusted after startup",
            "Read sensitive file untrusted"
        ]),
        "{alerts:#?}"
    );
    let alert = alerts
        .iter()
        .find(|a| a.rule.as_ref() == "Read sensitive file trusted after startup")
        .expect("alert");
    assert_eq!(alert.output_fields["fd.name"], "/etc/shadow");
    assert_eq!(alert.output_fields["proc.name"], "nginx");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_shell_in_container() {
    let scratch = Scratch::new("runc-tty");
    // `script` allocates a terminal; named runc, it plays the container runtime that starts
    // the shell.
    let runc = scratch.renamed("/usr/bin/script", "runc");
    let container = FakeContainer::new(0x5ac7);
    let script = container.wrap(&format!(
        "SHELL=/bin/sh exec {} -qec 'sleep 0.5; true' /dev/null",
        runc.display()
    ));
    let alerts = alerts_for(&script, None).await;
    let alert = assert_exactly(&alerts, "Terminal shell in container");
    assert_eq!(alert.output_fields["proc.name"], "sh");
    assert_ne!(alert.output_fields["proc.tty"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_process_class_file_download() {
    use std::io::Write as _;
    use vigil::events::syscalls::Syscall;
    use vigil_integration_tests::alerts_of_script_with;

    // The rule ships disabled; switch it on the way `vigil run --enable-rule` does.
    let (ruleset, report) = Ruleset::load(
        &[falco_rules_dir().join("falco-sandbox_rules.yaml")],
        &Selection {
            enabled_rules: vec!["Java Process Class File Download".into()],
            ..Selection::default()
        },
    );
    assert!(report.ok(), "{:?}", report.errors);
    assert!(ruleset.uses_field("evt.buffer"));
    // A server that hands out something starting like a Java class file.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("non-blocking");
    let server = std::thread::spawn(move || {
        // Bounded: a client that never comes must not hang the test.
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.write_all(&[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 0x34]);
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    // argv[0] "java" plays the JVM; Python's recvfrom is the recvfrom syscall.
    let scratch = Scratch::new("java");
    let client = scratch.path("client.py");
    std::fs::write(
        &client,
        format!(
            "import os, socket, sys\n\
             if 'VIGIL_AS_JAVA' not in os.environ:\n\
             \x20   os.environ['VIGIL_AS_JAVA'] = '1'\n\
             \x20   os.execv(sys.executable, ['java', __file__])\n\
             s = socket.create_connection(('127.0.0.1', {port}))\n\
             s.recvfrom(64)\n"
        ),
    )
    .expect("client script");
    let script = format!("exec {PYTHON} {}", client.display());
    let alerts = alerts_of_script_with(&ruleset, &script, |config| {
        config.probes.capture_buffers = ruleset.uses_field("evt.buffer");
        config.probes.syscalls.push(Syscall::Recvfrom);
    })
    .await;
    server.join().expect("server");
    let alert = alerts
        .iter()
        .find(|a| a.rule.as_ref() == "Java Process Class File Download")
        .unwrap_or_else(|| panic!("rule did not fire: {alerts:#?}"));
    assert_eq!(alert.priority, "Critical");
}

/// Runs a command and asserts it succeeded.
fn sh(command: &str) {
    let status = Command::new("/bin/sh")
        .args(["-c", command])
        .status()
        .expect("run setup command");
    assert!(status.success(), "{command} failed: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_k8s_api_server_from_container() {
    use std::io::{BufRead as _, BufReader};
    use vigil_integration_tests::{Running, vigil_binary};

    // The agent runs in its own mount namespace whose /etc/hosts names the API server: the
    // machine's own /etc/hosts is never touched.
    let scratch = Scratch::new("k8s-api");
    let hosts = scratch.path("hosts");
    let mut text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    text.push_str("\n127.0.0.1 kubernetes.default.svc.cluster.local\n");
    std::fs::write(&hosts, text).expect("hosts file");
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let command = format!(
        "mount --bind {} /etc/hosts && exec {} run --metrics-addr {addr} --rules {}",
        hosts.display(),
        vigil_binary().display(),
        falco_rules_dir().join("falco_rules.yaml").display()
    );
    let mut agent = Running(
        Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                &command,
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the agent"),
    );
    let stderr = agent.0.stderr.take().expect("stderr");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("vigil is running") {
                let _ = ready_tx.send(());
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the agent started");
    // Let the background resolver see the name.
    std::thread::sleep(Duration::from_secs(1));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("addr").port();
    let container = FakeContainer::new(0x5ac8);
    sh(&container.wrap(&format!(
        "exec /bin/bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}'"
    )));

    let stdout = agent.0.stdout.take().expect("stdout");
    let (alert_tx, alert_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = alert_tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let alert = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = alert_rx
            .recv_timeout(left)
            .expect("an alert for the connection");
        let alert: serde_json::Value = serde_json::from_str(&line).expect("alert JSON");
        if alert["rule"] == "Contact K8S API Server From Container" {
            break alert;
        }
    };
    let output = alert["output"].as_str().expect("output");
    assert!(output.contains(&format!("127.0.0.1:{port}")), "{output}");
}

/// A network namespace at the far end of a veth pair: a test host on a documentation range
/// (neither loopback nor RFC 1918) that this machine does not use, removed at the end of the
/// test. Only a /30 is routed to it.
struct TestHost {
    namespace: String,
    host_end: String,
    address: &'static str,
}

impl TestHost {
    fn new() -> TestHost {
        // Documentation ranges (RFC 5737); one already used by this machine's own network is
        // skipped, so the test never shadows a real route.
        let (prefix, address) = [("198.51.100", "198.51.100.2"), ("203.0.113", "203.0.113.2")]
            .into_iter()
            .find(|(_, address)| {
                Command::new("ip")
                    .args(["route", "get", address])
                    .output()
                    .map(|out| {
                        let route = String::from_utf8_lossy(&out.stdout);
                        out.status.success() && route.contains(" via ") && !route.contains("local")
                    })
                    .unwrap_or(false)
            })
            .expect("no free documentation range for a test host on this machine");
        let id = std::process::id() % 100_000;
        let namespace = format!("vigil-test-{id}");
        let (host_end, ns_end) = (format!("vgh{id}"), format!("vgn{id}"));
        let host = TestHost {
            namespace,
            host_end: host_end.clone(),
            address,
        };
        let namespace = &host.namespace;
        sh(&format!(
            "ip netns add {namespace} && \
             ip link add {host_end} type veth peer name {ns_end} netns {namespace} && \
             ip addr add {prefix}.1/30 dev {host_end} && ip link set {host_end} up && \
             ip -n {namespace} addr add {address}/30 dev {ns_end} && \
             ip -n {namespace} link set {ns_end} up && ip -n {namespace} link set lo up"
        ));
        host
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // The host end first: removing it destroys the pair and the route at once, even while
        // a process still holds the namespace open.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_end])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disallowed_ssh_connection_non_standard_port() {
    use vigil_integration_tests::Running;

    let host = TestHost::new();
    let _listener = Running(
        Command::new("ip")
            .args(["netns", "exec", &host.namespace, PYTHON, "-c"])
            .arg(
                "import socket, time\n\
                 s = socket.socket(); s.bind(('0.0.0.0', 4444)); s.listen(8)\n\
                 time.sleep(30)",
            )
            .spawn()
            .expect("listener in the test host"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let target = format!("{}:4444", host.address);
    while std::net::TcpStream::connect(&target).is_err() {
        assert!(Instant::now() < deadline, "the test host never listened");
        std::thread::sleep(Duration::from_millis(50));
    }

    // argv[0] "ssh" plays the SSH client.
    let scratch = Scratch::new("ssh");
    let client = scratch.path("client.py");
    std::fs::write(
        &client,
        "import os, socket, sys\n\
         if 'VIGIL_AS_SSH' not in os.environ:\n\
         \x20   os.environ['VIGIL_AS_SSH'] = '1'\n\
         \x20   os.execv(sys.executable, ['ssh', __file__, sys.argv[1]])\n\
         socket.create_connection((sys.argv[1], 4444)).close()\n",
    )
    .expect("client script");
    let alerts = alerts_for(
        &format!("exec {PYTHON} {} {}", client.display(), host.address),
        None,
    )
    .await;
    let alert = assert_exactly(&alerts, "Disallowed SSH Connection Non Standard Port");
    assert!(alert.output.contains(host.address), "{}", alert.output);
}
