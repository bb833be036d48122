//! The agent watching itself on the real kernel: another process signalling it or attaching to
//! it with ptrace is reported to the sinks.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;
use vigil_integration_tests::{
    Scratch, file_sink_config, free_addr, require_root, spawn_run, stop,
};

fn records(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn wait_record(file: &Path, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(record) = records(file).into_iter().find(&matches) {
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} record: {:#?}",
            records(file)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn signals_and_ptrace_from_other_processes_are_reported() {
    require_root();
    let scratch = Scratch::new("selfwatch");
    let alerts = scratch.path("alerts.jsonl");
    let config = scratch.path("vigil.yaml");
    file_sink_config(&config, &alerts);
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");
    let metrics = free_addr();
    let (mut agent, drain) = spawn_run([
        "--metrics-addr".as_ref(),
        metrics.as_ref(),
        "--rules".as_ref(),
        rules.as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    let pid = agent.0.id();
    let me = std::process::id();

    // SIGHUP (a reload: harmless, but someone sent it), then a stop and a continue.
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    let hup = wait_record(&alerts, "SIGHUP", |r| {
        r["rule"] == "Vigil agent signalled" && r["output_fields"]["vigil.signal"] == "SIGHUP"
    });
    assert_eq!(hup["output_fields"]["proc.pid"], me);
    assert_eq!(hup["priority"], "Notice");
    // SAFETY: as above; the agent resumes at once.
    unsafe {
        libc::kill(pid as i32, libc::SIGSTOP);
        libc::kill(pid as i32, libc::SIGCONT);
    }
    let stopped = wait_record(&alerts, "SIGSTOP", |r| {
        r["rule"] == "Vigil agent signalled" && r["output_fields"]["vigil.signal"] == "SIGSTOP"
    });
    assert_eq!(stopped["priority"], "Critical");

    // A debugger seizes the agent, then exits (which detaches it).
    let tracer = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import ctypes, sys; libc = ctypes.CDLL(None, use_errno=True); \
             sys.exit(0 if libc.ptrace(0x4206, int(sys.argv[1]), 0, 0) == 0 else 1)",
            &pid.to_string(),
        ])
        .status()
        .expect("python3");
    assert!(tracer.success(), "PTRACE_SEIZE of the agent failed");
    let traced = wait_record(&alerts, "ptrace", |r| r["rule"] == "Vigil agent traced");
    assert_eq!(
        traced["output_fields"]["vigil.ptrace_request"],
        "PTRACE_SEIZE"
    );
    assert_eq!(traced["output_fields"]["proc.name"], "python3");
    assert_eq!(traced["source"], "vigil");

    stop(&mut agent.0);
    drop(drain);
}

/// Detaches bpf link `id` as `bpftool link detach` does; whether the kernel did.
fn detach_link(id: u32) -> bool {
    #[repr(C)]
    struct ById {
        id: u32,
        next_id: u32,
        open_flags: u32,
    }
    #[repr(C)]
    struct Detach {
        link_fd: u32,
    }
    let mut by_id = ById {
        id,
        next_id: 0,
        open_flags: 0,
    };
    // SAFETY: BPF_LINK_GET_FD_BY_ID (30) with a bpf_attr prefix of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            30,
            &mut by_id as *mut ById,
            std::mem::size_of::<ById>(),
        )
    };
    if fd < 0 {
        return false;
    }
    let mut detach = Detach { link_fd: fd as u32 };
    // SAFETY: BPF_LINK_DETACH (34) on the fd just obtained, which is then closed.
    unsafe {
        let done = libc::syscall(
            libc::SYS_bpf,
            34,
            &mut detach as *mut Detach,
            std::mem::size_of::<Detach>(),
        ) == 0;
        libc::close(fd as i32);
        done
    }
}

#[test]
fn programs_detached_by_someone_else_are_reported() {
    require_root();
    let scratch = Scratch::new("selfwatch-detach");
    let alerts = scratch.path("alerts.jsonl");
    let config = scratch.path("vigil.yaml");
    file_sink_config(&config, &alerts);
    // An egress policy, so that the agent attaches cgroup links, which can be detached.
    let egress = scratch.path("egress.yaml");
    std::fs::write(
        &egress,
        "- policy: nobody\n  match:\n    proc.name: vigil-nobody\n  allow: []\n",
    )
    .expect("policy");
    let before = vigil::probes::integrity::links();
    let newest_before = before.iter().map(|l| l.id).max().unwrap_or(0);
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");
    let metrics = free_addr();
    let (mut agent, drain) = spawn_run([
        "--metrics-addr".as_ref(),
        metrics.as_ref(),
        "--rules".as_ref(),
        rules.as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--egress".as_ref(),
        egress.as_os_str(),
    ]);
    // Let the watchdog take its census first.
    std::thread::sleep(Duration::from_millis(500));
    let detached = vigil::probes::integrity::links()
        .into_iter()
        .filter(|link| link.id > newest_before)
        .any(|link| detach_link(link.id));
    assert!(detached, "no link of the agent could be detached");
    let record = wait_record(&alerts, "detach", |r| r["rule"] == "Vigil probes detached");
    assert_eq!(record["priority"], "Critical");
    assert!(
        record["output_fields"]["vigil.programs"]
            .as_array()
            .is_some_and(|programs| !programs.is_empty()),
        "{record}"
    );
    stop(&mut agent.0);
    drop(drain);
}
