//! The kernel-to-event pipeline on the real kernel: activity caused here must come back as
//! correctly decoded and enriched events.

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use vigil::state::fd::FdType;
use vigil_integration_tests::{
    Harness, Running, cgroup2_root, http_get, is_call, str_arg, type_of, vigil_binary,
};

fn run(program: &str, args: &[&str]) -> u32 {
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {program}: {e}"));
    let pid = child.id();
    let status = child.wait().expect("child ran");
    assert!(status.success(), "{program} {args:?} failed: {status}");
    pid
}

/// The exit of `pid` (a `cat`): it comes after every call the process made.
async fn expect_exit_of_cat(harness: &mut Harness, pid: u32) {
    harness
        .expect("procexit of cat", |e| {
            type_of(e) == "procexit" && e.event.task.pid == pid
        })
        .await;
}

/// The open of /etc/hostname by `pid` (a `cat /etc/hostname`).
async fn expect_open_of_hostname(harness: &mut Harness, pid: u32) -> vigil::enrich::Enriched {
    harness
        .expect("open of /etc/hostname", |e| {
            e.event.task.pid == pid
                && matches!(type_of(e), "openat" | "open")
                && str_arg(e, "name") == Some("/etc/hostname")
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_and_open_are_traced_with_process_state() {
    let mut harness = Harness::start().await;
    let pid = run("/bin/cat", &["/etc/hostname"]);

    let exec = harness
        .expect("execve of /bin/cat", |e| is_call(e, "execve", pid))
        .await;
    let call = exec.event.syscall().expect("syscall");
    assert_eq!(call.ret, 0);
    assert_eq!(call.strings[0], "/bin/cat");
    assert_eq!(call.argv, vec!["/bin/cat", "/etc/hostname"]);
    assert_eq!(exec.event.task.ppid, std::process::id(), "kernel-side ppid");
    assert_eq!(exec.process.ppid, std::process::id(), "process table ppid");
    assert_eq!(exec.event.task.uid, 0);
    assert_eq!(exec.process.comm, "cat");
    assert_eq!(exec.process.exe, "/bin/cat");
    assert_eq!(exec.process.args, vec!["/etc/hostname"]);
    assert!(
        exec.process.exepath.ends_with("/cat"),
        "exepath {}",
        exec.process.exepath
    );
    assert_eq!(exec.user_name.as_deref(), Some("root"));
    let parent = exec.ancestors.first().expect("parent known");
    assert_eq!(parent.pid, std::process::id());

    let open = expect_open_of_hostname(&mut harness, pid).await;
    let fd = open.fd.expect("openat has an fd");
    assert!(fd.num >= 0, "fd {}", fd.num);
    let info = fd.info.expect("fd info");
    assert_eq!(info.name, "/etc/hostname");
    assert_eq!(info.kind, FdType::File);

    expect_exit_of_cat(&mut harness, pid).await;
    assert_eq!(harness.metrics.kernel_drops_total(), 0);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syscalls_left_out_of_the_interest_leave_no_record() {
    use vigil::events::syscalls::{PROCESS_STATE, Syscall};
    // What a rule set that reads no fd.* field and matches only execs needs.
    let mut harness = Harness::start_with(|config| {
        config.probes.syscalls = PROCESS_STATE.to_vec();
    })
    .await;
    assert_eq!(
        harness.metrics.syscalls_traced.get(),
        PROCESS_STATE.len() as i64
    );
    let pid = run("/bin/cat", &["/etc/hostname"]);
    harness
        .expect("execve of /bin/cat", |e| is_call(e, "execve", pid))
        .await;
    expect_exit_of_cat(&mut harness, pid).await;
    // The exit came after every call cat made: none of its opens or closes was recorded.
    let recorded: Vec<&str> = harness
        .seen()
        .iter()
        .filter(|e| e.event.task.pid == pid && e.event.syscall().is_some())
        .map(type_of)
        .collect();
    assert_eq!(recorded, ["execve"]);
    assert!(!PROCESS_STATE.contains(&Syscall::Openat) && !PROCESS_STATE.contains(&Syscall::Close));
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_calls_no_rule_can_match_are_counted_not_recorded() {
    use vigil::events::syscalls::Syscall;
    let mut harness = Harness::start_with(|config| {
        config.probes.skip_failed = vec![Syscall::Open, Syscall::Openat, Syscall::Openat2];
    })
    .await;
    let missing = "/nonexistent/vigil-skip-failed";
    let mut child = Command::new("/bin/cat")
        .args(["/etc/hostname", missing])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cat");
    let pid = child.id();
    let status = child.wait().expect("cat ran");
    assert!(!status.success(), "cat of a missing file fails");
    // cat's exit comes after both opens: the good one is recorded, the failed one is not.
    expect_exit_of_cat(&mut harness, pid).await;
    let opened: Vec<&str> = harness
        .seen()
        .iter()
        .filter(|e| e.event.task.pid == pid && matches!(type_of(e), "open" | "openat"))
        .filter_map(|e| str_arg(e, "name"))
        .collect();
    assert!(opened.contains(&"/etc/hostname"), "{opened:?}");
    assert!(!opened.contains(&missing), "{opened:?}");
    // Counted: the kernel's per-CPU counters are read every 500 ms.
    let deadline = Instant::now() + Duration::from_secs(5);
    let skipped = || {
        harness
            .metrics
            .kernel_skipped_by_reason()
            .find(|(reason, _)| *reason == "failed_call")
            .map_or(0, |(_, count)| count)
    };
    while skipped() == 0 {
        assert!(
            Instant::now() < deadline,
            "the skipped call was never counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(harness.metrics.kernel_drops_total(), 0);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_syscall_tracepoints_trace_the_same_calls() {
    // The fallback for kernels that refuse raw tracepoints and for other architectures: the
    // arguments come from the trace buffer instead of the saved registers.
    let mut harness =
        Harness::start_with(|config| config.probes.raw_syscall_tracepoints = false).await;
    assert!(
        harness.attached().contains(&"sys_exit"),
        "{:?}",
        harness.attached()
    );
    assert!(!harness.attached().contains(&"sys_exit_raw"));
    let pid = run("/bin/cat", &["/etc/hostname"]);
    let exec = harness
        .expect("execve of /bin/cat", |e| is_call(e, "execve", pid))
        .await;
    let call = exec.event.syscall().expect("syscall");
    assert_eq!(call.argv, vec!["/bin/cat", "/etc/hostname"]);
    let open = expect_open_of_hostname(&mut harness, pid).await;
    let info = open.fd.and_then(|fd| fd.info).expect("fd info");
    assert_eq!(info.name, "/etc/hostname");
    assert_eq!(harness.metrics.kernel_drops_total(), 0);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_a_loopback_listener_has_address_and_port() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // The accepted peer is the client's side of the connection: its port is the one the kernel
    // chose for the connect.
    let accepted = std::thread::spawn(move || listener.accept().map(|(_, peer)| peer));
    let mut harness = Harness::start().await;
    let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port}; echo hi >&3");
    let pid = run("/bin/bash", &["-c", &script]);
    let client = accepted.join().expect("accept thread").expect("accepted");

    let connect = harness
        .expect("connect to the listener", |e| {
            // Name resolution may first try a local socket (nscd) that is absent: only the
            // internet-family connect is the one under test.
            is_call(e, "connect", pid)
                && matches!(
                    e.event.syscall().and_then(|call| call.sockaddr.as_ref()),
                    Some(vigil::events::sockaddr::SockAddr::Inet(_))
                )
        })
        .await;
    let call = connect.event.syscall().expect("syscall");
    assert_eq!(call.ret, 0, "connect {call:?}");
    let addr = match &call.sockaddr {
        Some(vigil::events::sockaddr::SockAddr::Inet(addr)) => *addr,
        other => panic!("connect address {other:?}"),
    };
    assert_eq!(addr.to_string(), format!("127.0.0.1:{port}"));
    let info = connect.fd.and_then(|fd| fd.info).expect("socket fd info");
    assert_eq!(info.kind, FdType::Ipv4);
    let socket = info.socket.expect("socket endpoints");
    assert_eq!(socket.server().map(|a| a.port()), Some(port));
    assert_eq!(
        socket.client(),
        Some(client),
        "local address from inet_sock_set_state"
    );
    assert_eq!(info.name, format!("{client}->127.0.0.1:{port}"));
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dup2_of_a_socket_onto_stdout_is_a_socket_fd() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut harness = Harness::start().await;
    let script = format!("exec 1<>/dev/tcp/127.0.0.1/{port}; echo hi");
    let pid = run("/bin/bash", &["-c", &script]);

    let dup = harness
        .expect("bash's dup2 onto fd 1", |e| {
            // The spawning child dup2s /dev/null onto fd 1 before it execs bash: skip that one.
            e.event.task.pid == pid
                && e.process.comm == "bash"
                && matches!(type_of(e), "dup2" | "dup3")
                && e.fd.as_ref().is_some_and(|fd| fd.num == 1)
        })
        .await;
    let info = dup.fd.and_then(|fd| fd.info).expect("fd 1 info");
    assert_eq!(info.kind, FdType::Ipv4, "fd 1 is {info:?}");
    assert_eq!(info.kind.typechar(), '4');
    assert!(
        info.name.ends_with(&format!("->127.0.0.1:{port}")),
        "{}",
        info.name
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_in_a_docker_scope_cgroup_gets_its_container_id() {
    let id: String = format!("{:0>64}", format!("{:x}", std::process::id()))
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i < 8 {
                "abcdef01".as_bytes()[i] as char
            } else {
                c
            }
        })
        .collect();
    let root = cgroup2_root();
    let slice = root.join(format!("vigil-test-{}.slice", std::process::id()));
    let scope = slice.join(format!("docker-{id}.scope"));
    std::fs::create_dir_all(&scope).expect("create cgroup");

    let mut harness = Harness::start().await;
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec cat /etc/hostname",
        scope.display()
    );
    let pid = run("/bin/sh", &["-c", &script]);
    let open = harness
        .expect("cat opening /etc/hostname in the scope", |e| {
            e.event.task.pid == pid && str_arg(e, "name") == Some("/etc/hostname")
        })
        .await;
    let container = open
        .process
        .container
        .clone()
        .expect("container identified");
    assert_eq!(container.full_id, id);
    assert_eq!(container.short_id(), &id[..12]);
    let json = vigil::output::json::to_json(&open);
    assert_eq!(json["container.id"], id[..12]);
    harness.stop().await;

    std::fs::remove_dir(&scope).expect("remove scope");
    std::fs::remove_dir(&slice).expect("remove slice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_cli_prints_json_serves_endpoints_and_stops_on_sigterm() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut guard = Running(
        Command::new(vigil_binary())
            .args(["trace", "--json", "--metrics-addr", &addr])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vigil"),
    );
    let agent = &mut guard.0;

    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(&addr, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "vigil never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http_get(&addr, "/healthz").0, 200);

    let pid = run("/bin/cat", &["/etc/hostname"]);
    let stdout = agent.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let exec = loop {
        assert!(Instant::now() < deadline, "no execve line for pid {pid}");
        let line = lines
            .next()
            .expect("vigil output ended")
            .expect("utf-8 line");
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
        if value["evt.type"] == "execve" && value["proc.pid"] == pid {
            break value;
        }
    };
    assert_eq!(exec["proc.name"], "cat");
    assert_eq!(exec["proc.cmdline"], "cat /etc/hostname");
    assert_eq!(exec["evt.res"], "SUCCESS");
    assert_eq!(exec["user.name"], "root");
    assert_eq!(exec["container.id"], "host");
    assert!(exec["evt.time"].as_str().is_some_and(|t| t.ends_with('Z')));

    let (status, metrics) = http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("vigil_events_total{type=\"execve\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("vigil_process_table_size"));
    assert!(metrics.contains("vigil_probes_attached 6"));

    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    // Drain stdout so the agent never blocks on a full pipe while stopping.
    std::thread::spawn(move || for _ in lines {});
    let stop_deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = agent.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < stop_deadline,
            "vigil did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "vigil exited with {status}");
    assert_ne!(http_get(&addr, "/healthz").0, 200, "endpoint closed");
}
