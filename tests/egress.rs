//! Egress control on the real kernel: a test host in a network namespace (veth pair, IPv4 and
//! IPv6, TCP and UDP servers), clients in a cgroup named like a docker container's scope, and
//! `vigil run --egress` deciding their connections in monitor and enforce mode.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use vigil_integration_tests::{
    FakeContainer, Running, Scratch, fake_docker_state, free_addr, require_root, scrape, stop,
    vigil_binary, wait_running,
};

const RULE: &str = "- rule: Unused
  desc: keeps the rule engine busy with nothing
  condition: evt.type = mkdir and proc.name = vigil-no-such-process
  output: never (%proc.name)
  priority: DEBUG
";

/// Connects (TCP) or sends (UDP) from a program and prints `ok` or the errno.
const CLIENT: &str = r#"
import socket, sys
host, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
family = socket.AF_INET6 if ":" in host else socket.AF_INET
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(family, kind)
s.settimeout(3)
try:
    if proto == "tcp":
        s.connect((host, port))
    else:
        s.sendto(b"x", (host, port))
    print("ok")
except OSError as e:
    print("errno", e.errno)
"#;

/// Asks a DNS server for a name's IPv4 address with a hand-made query (no resolver
/// configuration involved), then connects to it over TCP if a port is given. Prints
/// `ok <address>`, `resolved <address>`, `nxdomain` or the errno.
const RESOLVE_CLIENT: &str = r#"
import socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
port = int(sys.argv[3]) if len(sys.argv) > 3 else 0
query = struct.pack(">HHHHHH", 0x5157, 0x0100, 1, 0, 0, 0)
query += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
query += struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
try:
    s.sendto(query, (server, 53))
    data = s.recv(512)
except OSError as e:
    print("errno", e.errno); sys.exit()
count, at, address = struct.unpack(">H", data[6:8])[0], len(query), None
for _ in range(count):
    at += 2 if data[at] & 0xC0 == 0xC0 else 0
    kind, _, _, size = struct.unpack(">HHIH", data[at:at + 10])
    at += 10
    if kind == 1:
        address = socket.inet_ntoa(data[at:at + 4]); break
    at += size
if address is None:
    print("nxdomain"); sys.exit()
if not port:
    print("resolved", address); sys.exit()
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
c.settimeout(3)
try:
    c.connect((address, port)); print("ok", address)
except OSError as e:
    print("errno", e.errno)
"#;

/// Connects over and over to a port the policy allows and one it refuses; prints the number of
/// outcomes that were as expected and the unexpected ones.
const STEADY_CLIENT: &str = r#"
import socket, sys
host, rounds = sys.argv[1], int(sys.argv[2])
good, bad = 0, []
for _ in range(rounds):
    for port, want in ((8080, "ok"), (7070, "eperm")):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect((host, port)); got = "ok"
        except OSError as e:
            got = "eperm" if e.errno == 1 else "errno %d" % e.errno
        s.close()
        if got == want:
            good += 1
        else:
            bad.append((port, got))
print(good, len(bad), bad[:5])
"#;

/// Serves TCP on the given ports (IPv4 and IPv6) until killed.
const SERVER: &str = r#"
import socket, sys, threading
def serve(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        c.close()
for p in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"#;

/// A network namespace with one veth link to the host: 10.213.<n>.2 and fd00:213:<n>::2 there,
/// .1 and ::1 here.
struct TestHost {
    name: String,
    host_link: String,
    peer: String,
    prefix: String,
    v4: String,
    v6: String,
    server: Option<Child>,
    dns: Option<Child>,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {}", args.join(" "));
}

impl TestHost {
    fn new(n: u32) -> TestHost {
        let name = format!("vigil-eg-{n}");
        let host_link = format!("vgh{n}");
        let peer = format!("vgn{n}");
        // A stale namespace of an interrupted run would make `add` fail.
        let quiet = |args: &[&str]| {
            let _ = Command::new("ip").args(args).stderr(Stdio::null()).status();
        };
        quiet(&["netns", "del", &name]);
        quiet(&["link", "del", &host_link]);
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &host_link, "type", "veth", "peer", "name", &peer,
        ]);
        ip(&["link", "set", &peer, "netns", &name]);
        let v4 = format!("10.213.{n}.2");
        let v6 = format!("fd00:213:{n}::2");
        ip(&[
            "addr",
            "add",
            &format!("10.213.{n}.1/24"),
            "dev",
            &host_link,
        ]);
        ip(&[
            "-6",
            "addr",
            "add",
            &format!("fd00:213:{n}::1/64"),
            "dev",
            &host_link,
            "nodad",
        ]);
        ip(&["link", "set", &host_link, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", name.as_str(), "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("{v4}/24"), "dev", &peer]);
        inside(&[
            "-6",
            "addr",
            "add",
            &format!("{v6}/64"),
            "dev",
            &peer,
            "nodad",
        ]);
        inside(&["link", "set", &peer, "up"]);
        inside(&["link", "set", "lo", "up"]);
        TestHost {
            name,
            host_link,
            peer,
            prefix: format!("10.213.{n}"),
            v4,
            v6,
            server: None,
            dns: None,
        }
    }

    /// Another IPv4 address of the test host: `10.213.<n>.<last>`.
    fn add_address(&self, last: u8) -> String {
        let address = format!("{}.{last}", self.prefix);
        ip(&[
            "netns",
            "exec",
            &self.name,
            "ip",
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            &self.peer,
        ]);
        address
    }

    /// (Re)starts dnsmasq on the test host's first address, answering `name=address` pairs.
    fn serve_dns(&mut self, scratch: &Scratch, records: &[(&str, &str)]) {
        self.stop_dns();
        let pid_file = scratch.path("dnsmasq.pid");
        let mut command = Command::new("ip");
        command.args([
            "netns",
            "exec",
            &self.name,
            "dnsmasq",
            "--keep-in-foreground",
        ]);
        command.args([
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--local-ttl=60",
        ]);
        command.arg(format!("--listen-address={}", self.v4));
        command.arg(format!("--pid-file={}", pid_file.display()));
        command.arg("--user=root");
        for (name, address) in records {
            command.arg(format!("--address=/{name}/{address}"));
        }
        // Readiness is probed with a name no policy mentions: an answer for a listed name
        // would teach the kernel its address.
        command.arg(format!("--address=/ready.test/{}", self.v4));
        let child = command
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq (Debian's dnsmasq-base; cargo xtask bootstrap installs it)");
        self.dns = Some(child);
        // Ready once it answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        while resolve(None, &self.v4, "ready.test").is_none() {
            assert!(Instant::now() < deadline, "dnsmasq did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop_dns(&mut self) {
        if let Some(mut dns) = self.dns.take() {
            let _ = dns.kill();
            let _ = dns.wait();
        }
    }

    fn serve_tcp(&mut self, ports: &[u16]) {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name, "python3", "-c", SERVER])
            .args(ports.iter().map(u16::to_string))
            .stdout(Stdio::piped());
        let mut child = command.spawn().expect("start the test server");
        let stdout = child.stdout.take().expect("server stdout");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("server output");
        assert_eq!(line.trim(), "ready");
        self.server = Some(child);
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.stop_dns();
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_link])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs the client, in the container when one is given; returns its output and pid.
fn client(container: Option<&FakeContainer>, host: &str, port: u16, proto: &str) -> (String, u32) {
    python(container, CLIENT, &format!("{host} {port} {proto}"))
}

/// Runs the resolving client (in the container when one is given); returns its output and pid.
fn resolve_and_connect(
    container: Option<&FakeContainer>,
    server: &str,
    name: &str,
    port: u16,
) -> (String, u32) {
    python(
        container,
        RESOLVE_CLIENT,
        &format!("{server} {name} {port}"),
    )
}

/// Runs a Python program with arguments, in the container when one is given (the shell joins
/// the container's cgroup, then becomes Python: same pid); returns its output and pid.
fn python(container: Option<&FakeContainer>, program: &str, args: &str) -> (String, u32) {
    let script = format!(
        "exec python3 -c '{}' {args}",
        program.replace('\'', "'\\''")
    );
    let script = match container {
        Some(container) => container.wrap(&script),
        None => script,
    };
    let child = Command::new("/bin/sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("client");
    let pid = child.id();
    let output = child.wait_with_output().expect("client ran");
    (
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
        pid,
    )
}

/// The address a name resolves to (from the host, outside any policy), if it does.
fn resolve(container: Option<&FakeContainer>, server: &str, name: &str) -> Option<String> {
    let (out, _) = resolve_and_connect(container, server, name, 0);
    out.strip_prefix("resolved ").map(str::to_string)
}

/// Egress alerts written so far to the agent's file sink.
fn egress_alerts(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|alert| alert["rule"] == "Egress not allowlisted")
        .collect()
}

fn wait_alert(file: &Path, pid: u32) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(alert) = egress_alerts(file)
            .into_iter()
            .find(|a| a["output_fields"]["proc.pid"] == pid)
        {
            return alert;
        }
        assert!(Instant::now() < deadline, "no egress alert for pid {pid}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Agent {
    running: Running,
    alerts: PathBuf,
    metrics: String,
}

fn start_agent(scratch: &Scratch, mode: &str, container: &FakeContainer, host: &TestHost) -> Agent {
    let allow = format!(
        "    - cidr: {v4}/32\n      ports: [8080]\n      protocol: tcp\n    \
         - cidr: {v6}/128\n      ports: [8080]\n      protocol: tcp\n    \
         - cidr: {v4}/32\n      ports: [5353]\n      protocol: udp\n    \
         - cidr: {v6}/128\n      ports: [5353]\n      protocol: udp\n",
        v4 = host.v4,
        v6 = host.v6,
    );
    start_agent_with(scratch, mode, container, &allow)
}

/// Starts `vigil run` with one policy for the container, `allow` being its YAML rule list.
fn start_agent_with(
    scratch: &Scratch,
    mode: &str,
    container: &FakeContainer,
    allow: &str,
) -> Agent {
    let selector = format!("container.id: {}", &container.id[..12]);
    start_agent_selecting(scratch, mode, &selector, allow, &[])
}

/// Starts `vigil run` with one policy, `selector` its `match:` entry and `allow` its rules.
fn start_agent_selecting(
    scratch: &Scratch,
    mode: &str,
    selector: &str,
    allow: &str,
    extra_args: &[&str],
) -> Agent {
    let rules = scratch.path("rules.yaml");
    std::fs::write(&rules, RULE).expect("rules");
    let policy = scratch.path(&format!("egress-{mode}.yaml"));
    std::fs::write(
        &policy,
        format!("- policy: test-app\n  mode: {mode}\n  match:\n    {selector}\n  allow:\n{allow}"),
    )
    .expect("policy");
    let alerts = scratch.path(&format!("alerts-{mode}.jsonl"));
    let config = scratch.path(&format!("vigil-{mode}.yaml"));
    std::fs::write(
        &config,
        format!(
            "sinks:\n  - type: file\n    path: {}\nheartbeat_interval: off\negress: [{}]\n",
            alerts.display(),
            policy.display()
        ),
    )
    .expect("config");
    let metrics = free_addr();
    let mut running = Running(
        Command::new(vigil_binary())
            .args(["run", "--metrics-addr", &metrics, "--rules"])
            .arg(&rules)
            .arg("--config")
            .arg(&config)
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vigil run"),
    );
    drop(wait_running(&mut running.0));
    Agent {
        running,
        alerts,
        metrics,
    }
}

#[test]
fn monitor_mode_reports_and_enforce_mode_refuses_what_the_allowlist_lacks() {
    require_root();
    let scratch = Scratch::new("egress");
    let mut host = TestHost::new(std::process::id() % 200 + 20);
    host.serve_tcp(&[8080, 9090]);
    let container = FakeContainer::new(0xe9e55);
    let (v4, v6) = (host.v4.clone(), host.v6.clone());

    // Monitor: everything gets through; what the allowlist lacks is reported.
    let mut agent = start_agent(&scratch, "monitor", &container, &host);
    assert_eq!(client(Some(&container), &v4, 8080, "tcp").0, "ok");
    assert_eq!(client(Some(&container), &v4, 5353, "udp").0, "ok");
    let (out, pid) = client(Some(&container), &v4, 9090, "tcp");
    assert_eq!(out, "ok", "monitor mode lets the connection through");
    let alert = wait_alert(&agent.alerts, pid);
    assert_eq!(alert["output_fields"]["egress.verdict"], "monitored");
    assert_eq!(alert["output_fields"]["egress.policy"], "test-app");
    assert_eq!(alert["output_fields"]["fd.sip"], v4.as_str());
    assert_eq!(alert["output_fields"]["fd.sport"], 9090);
    assert_eq!(alert["output_fields"]["fd.l4proto"], "tcp");
    assert_eq!(alert["output_fields"]["evt.type"], "connect");
    assert_eq!(
        alert["output_fields"]["container.id"],
        Value::from(&container.id[..12])
    );
    let (out, udp_pid) = client(Some(&container), &v4, 5354, "udp");
    assert_eq!(out, "ok");
    let alert = wait_alert(&agent.alerts, udp_pid);
    assert_eq!(alert["output_fields"]["evt.type"], "sendto");
    assert_eq!(alert["output_fields"]["fd.l4proto"], "udp");
    // Outside the policy's container nothing is restricted or reported.
    let (out, outside) = client(None, &v4, 9090, "tcp");
    assert_eq!(out, "ok");
    // The allowed calls above raised nothing.
    std::thread::sleep(Duration::from_millis(500));
    let alerts = egress_alerts(&agent.alerts);
    assert_eq!(
        alerts.len(),
        2,
        "only the two disallowed calls: {alerts:#?}"
    );
    assert!(
        !alerts
            .iter()
            .any(|a| a["output_fields"]["proc.pid"] == outside)
    );
    stop(&mut agent.running.0);

    // Enforce: what the allowlist lacks fails with EPERM, IPv4 and IPv6, TCP and UDP.
    let mut agent = start_agent(&scratch, "enforce", &container, &host);
    assert_eq!(client(Some(&container), &v4, 8080, "tcp").0, "ok");
    assert_eq!(client(Some(&container), &v6, 8080, "tcp").0, "ok");
    assert_eq!(client(Some(&container), &v4, 5353, "udp").0, "ok");
    assert_eq!(client(Some(&container), &v6, 5353, "udp").0, "ok");
    let eperm = format!("errno {}", libc::EPERM);
    for (address, port, proto) in [
        (v4.as_str(), 9090, "tcp"),
        (v6.as_str(), 9090, "tcp"),
        (v4.as_str(), 5354, "udp"),
        (v6.as_str(), 5354, "udp"),
    ] {
        let (out, pid) = client(Some(&container), address, port, proto);
        assert_eq!(out, eperm, "{proto} to {address}:{port} is refused");
        let alert = wait_alert(&agent.alerts, pid);
        assert_eq!(alert["output_fields"]["egress.verdict"], "blocked");
        assert_eq!(alert["output_fields"]["fd.sip"], address);
    }
    assert_eq!(
        client(None, &v4, 9090, "tcp").0,
        "ok",
        "other cgroups are left alone"
    );
    stop(&mut agent.running.0);

    // Stopped agent: fail-open, nothing enforced any more.
    assert_eq!(client(Some(&container), &v4, 9090, "tcp").0, "ok");
}

#[test]
fn host_rules_allow_what_real_dns_answers_resolve_and_follow_address_changes() {
    require_root();
    let scratch = Scratch::new("egress-dns");
    let mut host = TestHost::new(std::process::id() % 200 + 20 + 1);
    let api_first = host.add_address(3);
    let api_moved = host.add_address(4);
    let elsewhere = host.add_address(5);
    host.serve_tcp(&[9090]);
    host.serve_dns(
        &scratch,
        &[("api.allowed.test", &api_first), ("other.test", &elsewhere)],
    );
    let container = FakeContainer::new(0xd45);
    let dns = host.v4.clone();
    let allow = format!(
        "    - cidr: {dns}/32\n      ports: [53]\n      protocol: udp\n    \
         - host: \"*.allowed.test\"\n      ports: [9090]\n      protocol: tcp\n"
    );
    let mut agent = start_agent_with(&scratch, "enforce", &container, &allow);
    let eperm = format!("errno {}", libc::EPERM);

    // Not resolved yet: the address is nobody's allowed name.
    assert_eq!(client(Some(&container), &api_first, 9090, "tcp").0, eperm);
    // Through a real DNS answer the name's address is allowed, before the connect.
    assert_eq!(
        resolve_and_connect(Some(&container), &dns, "api.allowed.test", 9090).0,
        format!("ok {api_first}")
    );
    // A name the allowlist lacks stays refused, and the alert names it.
    let (out, pid) = resolve_and_connect(Some(&container), &dns, "other.test", 9090);
    assert_eq!(out, eperm);
    let alert = wait_alert(&agent.alerts, pid);
    assert_eq!(alert["output_fields"]["fd.sip"], elsewhere.as_str());
    assert_eq!(alert["output_fields"]["fd.sip.name"], "other.test");
    assert_eq!(alert["output_fields"]["egress.verdict"], "blocked");

    // The name moves to another address: the new one is learned from the next answer.
    host.serve_dns(
        &scratch,
        &[("api.allowed.test", &api_moved), ("other.test", &elsewhere)],
    );
    assert_eq!(client(Some(&container), &api_moved, 9090, "tcp").0, eperm);
    assert_eq!(
        resolve_and_connect(Some(&container), &dns, "api.allowed.test", 9090).0,
        format!("ok {api_moved}")
    );
    stop(&mut agent.running.0);
}

#[test]
fn reloading_allowlists_takes_effect_without_a_gap() {
    require_root();
    let scratch = Scratch::new("egress-reload");
    let mut host = TestHost::new(std::process::id() % 200 + 20 + 2);
    host.serve_tcp(&[8080, 9090]);
    let container = FakeContainer::new(0x4e10ad);
    let v4 = host.v4.clone();
    let narrow = format!("    - cidr: {v4}/32\n      ports: [8080]\n      protocol: tcp\n");
    let wide = format!("{narrow}    - cidr: {v4}/32\n      ports: [9090]\n      protocol: tcp\n");
    let mut agent = start_agent_with(&scratch, "enforce", &container, &narrow);
    let eperm = format!("errno {}", libc::EPERM);
    assert_eq!(client(Some(&container), &v4, 9090, "tcp").0, eperm);

    // A steady stream of decisions while the policy is swapped back and forth: every one of
    // them must come out as both versions agree (8080 allowed, 7070 refused).
    let script = format!(
        "exec python3 -c '{}' {v4} 400",
        STEADY_CLIENT.replace('\'', "'\\''")
    );
    let steady = Command::new("/bin/sh")
        .args(["-c", &container.wrap(&script)])
        .stdout(Stdio::piped())
        .spawn()
        .expect("steady client");
    let policy = scratch.path("egress-enforce.yaml");
    let text = std::fs::read_to_string(&policy).expect("policy");
    for round in 0..10 {
        let allow = if round % 2 == 0 { &wide } else { &narrow };
        let head = text.split("  allow:\n").next().expect("policy head");
        std::fs::write(&policy, format!("{head}  allow:\n{allow}")).expect("rewrite policy");
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(agent.running.0.id() as i32, libc::SIGHUP) };
        std::thread::sleep(Duration::from_millis(150));
    }
    let output = steady.wait_with_output().expect("steady client ran");
    let report = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(
        report.starts_with("800 0 "),
        "decisions during reloads: {report}"
    );

    // Round 9 left the narrow list in force; widen it once more and see 9090 open up.
    let head = text.split("  allow:\n").next().expect("policy head");
    std::fs::write(&policy, format!("{head}  allow:\n{wide}")).expect("rewrite policy");
    // SAFETY: as above.
    unsafe { libc::kill(agent.running.0.id() as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while client(Some(&container), &v4, 9090, "tcp").0 != "ok" {
        assert!(
            Instant::now() < deadline,
            "the reloaded policy never allowed 9090"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A broken file is refused and the running policy stays.
    std::fs::write(&policy, "- policy: [broken\n").expect("break policy");
    // SAFETY: as above.
    unsafe { libc::kill(agent.running.0.id() as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(client(Some(&container), &v4, 9090, "tcp").0, "ok");
    assert_eq!(client(Some(&container), &v4, 7070, "tcp").0, eperm);
    assert_eq!(
        scrape(
            &agent.metrics,
            "vigil_egress_reloads_total{result=\"failed\"}"
        ),
        1.0
    );
    assert_eq!(
        scrape(&agent.metrics, "vigil_egress_reloads_total{result=\"ok\"}"),
        11.0
    );
    assert!(
        scrape(
            &agent.metrics,
            "vigil_egress_reported_total{policy=\"test-app\",verdict=\"blocked\"}"
        ) >= 400.0
    );
    stop(&mut agent.running.0);
}

#[test]
fn policies_select_containers_by_image_including_ones_started_later() {
    require_root();
    let scratch = Scratch::new("egress-image");
    let mut host = TestHost::new(std::process::id() % 200 + 20 + 3);
    host.serve_tcp(&[8080, 9090]);
    let v4 = host.v4.clone();
    // The host's filesystem as a DaemonSet would mount it: docker's state below it.
    let host_root = scratch.path("host");
    let docker = host_root.join("var/lib/docker");
    let before = FakeContainer::new(0x1a6e1);
    fake_docker_state(&docker, &before.id, false);
    let unrelated = FakeContainer::new(0x1a6e2);

    let allow = format!("    - cidr: {v4}/32\n      ports: [8080]\n      protocol: tcp\n");
    let mut agent = start_agent_selecting(
        &scratch,
        "enforce",
        "container.image.repository: docker.io/library/vigil-test",
        &allow,
        &["--host-root", &host_root.display().to_string()],
    );
    let eperm = format!("errno {}", libc::EPERM);
    // A container that was running when the policies were compiled.
    assert_eq!(client(Some(&before), &v4, 8080, "tcp").0, "ok");
    assert_eq!(client(Some(&before), &v4, 9090, "tcp").0, eperm);
    // A container of another image (no runtime state) is not selected.
    assert_eq!(client(Some(&unrelated), &v4, 9090, "tcp").0, "ok");

    // A container of the image that starts now: selected from its first events on.
    let after = FakeContainer::new(0x1a6e3);
    fake_docker_state(&docker, &after.id, false);
    let warm_up = Command::new("/bin/sh")
        .args(["-c", &after.wrap("cat /dev/null")])
        .status()
        .expect("first process of the new container");
    assert!(warm_up.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while client(Some(&after), &v4, 9090, "tcp").0 != eperm {
        assert!(
            Instant::now() < deadline,
            "the new container was never selected"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(client(Some(&after), &v4, 8080, "tcp").0, "ok");
    stop(&mut agent.running.0);
}

/// Releases pinned egress links when dropped, so a failing test leaves no enforcement behind.
struct Unpin;

impl Drop for Unpin {
    fn drop(&mut self) {
        let _ = Command::new(vigil_binary())
            .args(["egress", "unpin"])
            .stdout(Stdio::null())
            .status();
    }
}

#[test]
fn pinned_enforcement_outlives_the_agent_until_the_next_one_takes_over() {
    require_root();
    let _unpin = Unpin;
    let scratch = Scratch::new("egress-pin");
    let mut host = TestHost::new(std::process::id() % 200 + 20 + 4);
    host.serve_tcp(&[8080, 9090]);
    let container = FakeContainer::new(0x914);
    let v4 = host.v4.clone();
    let selector = format!("container.id: {}", &container.id[..12]);
    let rule =
        |port: u16| format!("    - cidr: {v4}/32\n      ports: [{port}]\n      protocol: tcp\n");
    let eperm = format!("errno {}", libc::EPERM);

    let mut first = start_agent_selecting(
        &scratch,
        "enforce",
        &selector,
        &rule(8080),
        &["--egress-pin"],
    );
    assert_eq!(client(Some(&container), &v4, 9090, "tcp").0, eperm);
    first.running.0.kill().expect("SIGKILL");
    let _ = first.running.0.wait();
    // The agent is gone; its pinned programs still decide.
    assert_eq!(client(Some(&container), &v4, 9090, "tcp").0, eperm);
    assert_eq!(client(Some(&container), &v4, 8080, "tcp").0, "ok");

    // The next agent takes over with its own policy, then releases the old links.
    let both = format!("{}{}", rule(8080), rule(9090));
    let mut second =
        start_agent_selecting(&scratch, "enforce", &selector, &both, &["--egress-pin"]);
    assert_eq!(client(Some(&container), &v4, 9090, "tcp").0, "ok");
    assert_eq!(client(Some(&container), &v4, 7070, "tcp").0, eperm);
    stop(&mut second.running.0);
    assert_eq!(
        client(Some(&container), &v4, 7070, "tcp").0,
        eperm,
        "still enforced after a clean stop"
    );

    let unpin = Command::new(vigil_binary())
        .args(["egress", "unpin"])
        .output()
        .expect("vigil egress unpin");
    assert!(unpin.status.success());
    assert!(
        String::from_utf8_lossy(&unpin.stdout).contains("released 5 pinned egress link(s)"),
        "{}",
        String::from_utf8_lossy(&unpin.stdout)
    );
    // Nothing decides any more: the refused port now reaches the host (nobody listens there).
    assert_eq!(
        client(Some(&container), &v4, 7070, "tcp").0,
        format!("errno {}", libc::ECONNREFUSED)
    );
}
