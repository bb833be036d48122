//! Vigil's bundled rules on the real kernel: each test performs a behaviour harmlessly and
//! asserts that exactly the bundled rule for it fires.

use std::path::PathBuf;

use vigil::rules::{
    alert::Alert,
    engine::{Ruleset, Selection},
};
use vigil_integration_tests::{Scratch, alerts_of_script, assert_exactly};

const PYTHON: &str = "/usr/bin/python3";

async fn alerts_for(script: &str) -> Vec<Alert> {
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let (ruleset, report) = Ruleset::load(&[rules], &Selection::default());
    assert!(report.ok(), "bundled rules are valid: {:?}", report.errors);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    alerts_of_script(&ruleset, script, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_secrets_file_read() {
    let alerts = alerts_for("exec cat /etc/shadow").await;
    let alert = assert_exactly(&alerts, "Account Secrets File Read");
    assert!(alert.output.contains("/etc/shadow"), "{}", alert.output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_task_configuration_written() {
    let job = format!("/etc/cron.d/vigil-test-{}", std::process::id());
    let alerts = alerts_for(&format!("echo '# vigil test' > {job}")).await;
    let _ = std::fs::remove_file(&job);
    let alert = assert_exactly(&alerts, "Scheduled Task Configuration Written");
    assert!(alert.output.contains(&job), "{}", alert.output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_authorized_keys_written() {
    let scratch = Scratch::new("authorized-keys");
    let keys = scratch.path("authorized_keys");
    let alerts = alerts_for(&format!(
        "echo 'ssh-ed25519 AAAA test' >> {}",
        keys.display()
    ))
    .await;
    assert_exactly(&alerts, "SSH Authorized Keys Written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setuid_bit_set() {
    let scratch = Scratch::new("setuid");
    let file = scratch.path("helper");
    std::fs::write(&file, "").expect("file");
    let alerts = alerts_for(&format!("chmod u+s {}", file.display())).await;
    let alert = assert_exactly(&alerts, "Setuid Or Setgid Bit Set");
    assert!(alert.output.contains("S_ISUID"), "{}", alert.output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anti_debugging_via_ptrace_traceme() {
    let alerts = alerts_for(&format!(
        "exec {PYTHON} -c 'import ctypes; ctypes.CDLL(None).ptrace(0, 0, 0, 0)'"
    ))
    .await;
    assert_exactly(&alerts, "Anti-Debugging Via PTRACE_TRACEME");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_data_destruction_tool_run() {
    let scratch = Scratch::new("wipe");
    let file = scratch.path("data");
    std::fs::write(&file, "secret").expect("data");
    let alerts = alerts_for(&format!("exec shred -u {}", file.display())).await;
    assert_exactly(&alerts, "Bulk Data Destruction Tool Run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_history_tampered() {
    let scratch = Scratch::new("history");
    let history = scratch.path(".bash_history");
    std::fs::write(&history, "ls\n").expect("history");
    let alerts = alerts_for(&format!("ln -sf /dev/null {}", history.display())).await;
    assert_exactly(&alerts, "Shell History Tampered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_file_truncated() {
    let log = format!("/var/log/vigil-test-{}.log", std::process::id());
    std::fs::write(&log, "line\n").expect("log");
    let alerts = alerts_for(&format!(": > {log}")).await;
    let _ = std::fs::remove_file(&log);
    assert_exactly(&alerts, "Log File Truncated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_stream_redirected_to_network_socket() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("addr").port();
    let alerts = alerts_for(&format!(
        "exec /bin/bash -c 'exec 1<>/dev/tcp/127.0.0.1/{port}; echo hi'"
    ))
    .await;
    assert_exactly(&alerts, "Standard Stream Redirected To Network Socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fileless_program_execution() {
    let alerts = alerts_for(&format!(
        "exec {PYTHON} -c 'import os; fd = os.memfd_create(\"payload\"); \
         os.write(fd, open(\"/bin/true\", \"rb\").read()); \
         os.execv(\"/proc/self/fd/%d\" % fd, [\"payload\"])'"
    ))
    .await;
    let alert = assert_exactly(&alerts, "Fileless Program Execution");
    assert_eq!(alert.priority, "Critical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_hunting() {
    let alerts = alerts_for("exec find /nonexistent-vigil -name id_rsa").await;
    assert_exactly(&alerts, "Private Key Hunting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symbolic_link_to_sensitive_file() {
    let scratch = Scratch::new("sensitive-link");
    let link = scratch.path("x");
    let alerts = alerts_for(&format!("ln -s /etc/shadow {}", link.display())).await;
    assert_exactly(&alerts, "Symbolic Link To Sensitive File");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_activity_raises_nothing() {
    let scratch = Scratch::new("ordinary");
    let alerts = alerts_for(&format!(
        "ls -la /etc > /dev/null; cat /etc/hostname > /dev/null; \
         echo data > {dir}/file; cp {dir}/file {dir}/copy; rm {dir}/copy; \
         grep root /etc/passwd > /dev/null; date > /dev/null",
        dir = scratch.0.display()
    ))
    .await;
    assert!(alerts.is_empty(), "false positives: {alerts:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_regained_from_a_user_id_but_not_reasserted_by_root() {
    const RULE: &str = "Root Identity Assumed By Unexpected Program";
    // An exploited setuid program: drop to a user keeping root as the saved uid, switch back.
    // The login uid is a per-process audit attribute, gone with the subshell.
    let escalation = format!(
        "(echo 4242 > /proc/self/loginuid 2> /dev/null; exec {PYTHON} -c 'import os; os.setresuid(4242, 4242, 0); os.setresuid(0, 0, 0)')"
    );
    let alerts = alerts_for(&escalation).await;
    let alert = assert_exactly(&alerts, RULE);
    assert!(alert.output.contains("olduid=4242"), "{}", alert.output);
    // A root process re-asserting root (GNU make does, around file access) escalates nothing.
    let reasserted = format!(
        "(echo 4242 > /proc/self/loginuid 2> /dev/null; exec {PYTHON} -c 'import os; os.setresuid(0, 0, 0)')"
    );
    let alerts = alerts_for(&reasserted).await;
    assert!(
        alerts.iter().all(|alert| alert.rule.as_ref() != RULE),
        "{alerts:?}"
    );
}
