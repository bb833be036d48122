//! What the egress hook costs a `connect()`: the real programs loaded through the library, this
//! process moved into a cgroup named like a docker container's scope (so a `container.id`
//! policy selects it the way it selects a container), and `connect()` timed to a test host in a
//! network namespace with the hook detached, attached with no policy, and deciding against a
//! small and a 10,000-entry allowlist. Needs root; run by `cargo xtask bench`.
//!
//! The main figure is UDP `connect()` on one datagram socket: it runs the `connect4` hook and a
//! route lookup, and sends nothing, so the hook is a large part of what is timed. TCP
//! socket+connect+close (a full handshake over the veth pair) shows the same cost against a real
//! connection.

use std::{
    fs::File,
    io,
    mem::{size_of, size_of_val},
    net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket},
    num::NonZeroUsize,
    os::fd::{AsRawFd as _, RawFd},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tokio::{runtime::Runtime, sync::oneshot};
use vigil::{
    egress::{kernel, policy::PolicySet},
    events::EventKind,
    host::mounts,
    metrics::Metrics,
    pipeline::{Pipeline, PipelineConfig},
    probes::egress::{EgressMaps, KernelPolicy},
};
use vigil_integration_tests::require_root;

/// UDP connects per timed batch.
const UDP_BATCH: u64 = 20_000;
/// Untimed UDP connects before each batch.
const UDP_WARM_UP: u64 = 2_000;
/// TCP socket+connect+close per timed batch.
const TCP_BATCH: u64 = 1_000;
/// Untimed TCP connections before each batch.
const TCP_WARM_UP: u64 = 50;
/// Cycles of (nothing attached, tracing only, tracing + egress): the detached baselines are
/// measured in every cycle, before and after the attached phases, to show drift.
const CYCLES: usize = 4;
/// Batches of each phase per cycle.
const ROUNDS: usize = 8;
/// The large allowlist's dense block (a /18): single hosts packed into it, so a lookup there
/// walks a deep path of the trie. A list spread thinly over 10/8 would leave the destination a
/// few nodes from the root and flatter the lookup.
const DENSE_BLOCK: Ipv4Addr = Ipv4Addr::new(10, 214, 192, 0);
const DENSE_BLOCK_BITS: u32 = 14;
/// /32 entries of the large allowlist, in the dense block.
const DENSE_HOSTS: u32 = 8_000;
/// /24 entries of the large allowlist, spread over 10.0.0.0/13.
const SPREAD_NETWORKS: u32 = 2_000;
const UDP_PORT: u16 = 5353;
const TCP_PORT: u16 = 8080;

/// What is attached and decided while a batch runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No Vigil program loaded.
    Bare,
    /// Vigil's tracepoints attached, the egress hook not: the baseline of the hook's cost.
    Detached,
    /// The egress programs attached (the four `cgroup_sock_addr` hooks and the DNS watcher), no
    /// policy written (`active` = 0: the first check allows).
    NoPolicy,
    /// A policy selecting this process, a handful of entries, an allowed destination.
    Small,
    /// The same policy plus 10,000 entries, an allowed destination.
    Large,
    /// 10,000 entries, a destination the list lacks, monitor mode: every call is reported.
    LargeMiss,
}

const PHASES: [Phase; 6] = [
    Phase::Bare,
    Phase::Detached,
    Phase::NoPolicy,
    Phase::Small,
    Phase::Large,
    Phase::LargeMiss,
];

impl Phase {
    fn label(self, small: usize, large: usize) -> String {
        match self {
            Phase::Bare => "no Vigil programs loaded".into(),
            Phase::Detached => "Vigil tracing, egress hook detached (baseline)".into(),
            Phase::NoPolicy => "hook attached, no policy written".into(),
            Phase::Small => format!("policy selecting the caller, {small} entries, allowed"),
            Phase::Large => format!("same policy, {large} entries, allowed"),
            Phase::LargeMiss => {
                format!("{large} entries, destination not listed (monitor: reported)")
            }
        }
    }
}

/// Which call a sample timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    /// connect(2) on one UDP socket.
    Udp,
    /// socket(2) + connect(2) + close(2), TCP.
    Tcp,
}

/// One timed batch: nanoseconds per call.
struct Sample {
    phase: Phase,
    proto: Proto,
    cycle: usize,
    ns: f64,
}

fn main() {
    require_root();
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let cgroup_root = mounts::cgroup2_mount().expect("cgroup v2 is mounted");
    let destinations = Destinations::new();
    // The link network 10.214.<n>.0/24 stays below the dense block.
    let net = TestHost::new(std::process::id() % 150 + 20, &destinations);
    let _server = Server::start(&net.name, TCP_PORT);
    let container = BenchContainer::enter(&cgroup_root);
    let policies = Policies::compile(&cgroup_root, &container, &destinations);
    let (allowed, unlisted) = (destinations.listed, destinations.unlisted);
    let client = Client::new();
    let reports = Arc::new(AtomicU64::new(0));
    let mut expected_reports = 0u64;
    let mut samples = Vec::new();
    let mut timings = ApplyTimings::default();
    let mut warnings = Vec::new();
    // Programs someone else attached run in every phase; they are reported, not subtracted.
    let foreign = connect4_programs(&cgroup_root);
    let agents_at_start = other_agents();
    let hooks = |attached: bool, warnings: &mut Vec<String>| {
        let found = connect4_programs(&cgroup_root);
        let wanted = foreign + u32::from(attached);
        if found != wanted {
            warnings.push(format!(
                "{found} connect4 programs on the cgroup root where {wanted} were expected"
            ));
        }
    };

    for cycle in 0..CYCLES {
        hooks(false, &mut warnings);
        for _ in 0..ROUNDS {
            samples.extend(client.measure(Phase::Bare, cycle, allowed));
        }

        let agent = Agent::start(&runtime, None, &reports);
        hooks(false, &mut warnings);
        for _ in 0..ROUNDS {
            samples.extend(client.measure(Phase::Detached, cycle, allowed));
        }
        agent.stop(&runtime);

        let mut agent = Agent::start(&runtime, Some(&cgroup_root), &reports);
        hooks(true, &mut warnings);
        let mut maps = agent
            .maps
            .take()
            .expect("the egress maps of an egress pipeline");
        let mut current = State::Empty;
        for round in 0..ROUNDS {
            // Each round visits every policy state; rotating the order spreads slow moments of
            // the shared VM over all of them rather than one.
            for step in 0..3 {
                let state = State::ALL[(round + step) % 3];
                let took = apply(&mut maps, policies.kernel(state));
                timings.record(current, state, took);
                current = state;
                match state {
                    State::Empty => samples.extend(client.measure(Phase::NoPolicy, cycle, allowed)),
                    State::Small => samples.extend(client.measure(Phase::Small, cycle, allowed)),
                    State::Large => {
                        samples.extend(client.measure(Phase::Large, cycle, allowed));
                        samples.extend(client.measure(Phase::LargeMiss, cycle, unlisted));
                        expected_reports += UDP_WARM_UP + UDP_BATCH + TCP_WARM_UP + TCP_BATCH;
                        // Let the reader finish with the reports before the next phase is timed.
                        settle(&reports, expected_reports);
                    }
                }
            }
        }
        // Applying the same 10,000 entries again: what a reload of an unchanged policy costs.
        if current != State::Large {
            timings.record(
                current,
                State::Large,
                apply(&mut maps, policies.kernel(State::Large)),
            );
        }
        timings
            .reapply
            .push(apply(&mut maps, policies.kernel(State::Large)));
        drop(maps);
        agent.stop(&runtime);
        // Dropping the pipeline must have detached the hook.
        hooks(false, &mut warnings);
        let delivered = reports.load(Ordering::SeqCst);
        assert!(
            delivered > 0,
            "no egress report reached userspace: the policy does not select the bench process"
        );
    }

    let delivered = reports.load(Ordering::SeqCst);
    report(
        &samples,
        &policies,
        &timings,
        &container,
        delivered,
        expected_reports,
    );
    if foreign > 0 {
        warnings.push(format!(
            "{foreign} connect4 programs of others are attached to the cgroup root: every \
             figure includes them"
        ));
    }
    if delivered != expected_reports {
        warnings.push(format!(
            "{delivered} reports of the bench reached userspace where {expected_reports} were \
             expected: more means allowed calls were reported, fewer that records were lost"
        ));
    }
    let agents = other_agents().max(agents_at_start);
    if agents > 0 {
        warnings.push(format!(
            "{agents} other vigil processes are running: their probes and load are in the figures"
        ));
    }
    warnings.sort();
    warnings.dedup();
    for warning in &warnings {
        println!("egress: WARNING: {warning}");
    }
    println!(
        "egress: total run time {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Writes a policy to the maps; returns how long it took.
fn apply(maps: &mut EgressMaps, policy: KernelPolicy) -> Duration {
    let start = Instant::now();
    maps.apply(policy).expect("write the policy to the maps");
    start.elapsed()
}

/// Waits until the reader has delivered `expected` reports of this process (or gives up).
fn settle(reports: &AtomicU64, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while reports.load(Ordering::SeqCst) < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The policy states the egress phases cycle through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Empty,
    Small,
    Large,
}

impl State {
    const ALL: [State; 3] = [State::Empty, State::Small, State::Large];
}

/// The three kernel policies, compiled once.
struct Policies {
    small: KernelPolicy,
    large: KernelPolicy,
    /// Parsing and compiling each (userspace, at every start and reload).
    compile_small: Duration,
    compile_large: Duration,
}

impl Policies {
    fn compile(
        cgroup_root: &Path,
        container: &BenchContainer,
        destinations: &Destinations,
    ) -> Policies {
        let head = format!(
            "- policy: bench\n  mode: monitor\n  match:\n    container.id: {id}\n  allow:\n    \
             - cidr: {host}/32\n      ports: [{UDP_PORT}]\n      protocol: udp\n    \
             - cidr: {host}/32\n      ports: [{TCP_PORT}]\n      protocol: tcp\n    \
             - cidr: 172.16.0.0/12\n      ports: [5432]\n    \
             - cidr: 192.168.0.0/16\n      ports: [443]\n      protocol: tcp\n    \
             - cidr: \"2001:db8::/32\"\n",
            id = &container.id[..12],
            host = destinations.listed,
        );
        let mut large = head.clone();
        // The listed destination is one of the dense hosts: its entry merges both rules.
        for host in &destinations.dense {
            large.push_str(&format!("    - cidr: {host}/32\n      ports: [443]\n"));
        }
        for i in 0..SPREAD_NETWORKS {
            large.push_str(&format!(
                "    - cidr: 10.{}.{}.0/24\n      ports: [443]\n",
                i / 250,
                i % 250
            ));
        }
        let start = Instant::now();
        let small = compile(&head, cgroup_root);
        let compile_small = start.elapsed();
        let start = Instant::now();
        let large = compile(&large, cgroup_root);
        let compile_large = start.elapsed();
        Policies {
            small,
            large,
            compile_small,
            compile_large,
        }
    }

    fn kernel(&self, state: State) -> KernelPolicy {
        match state {
            State::Empty => KernelPolicy::default(),
            State::Small => self.small.clone(),
            State::Large => self.large.clone(),
        }
    }
}

fn compile(yaml: &str, cgroup_root: &Path) -> KernelPolicy {
    let set = PolicySet::parse(yaml, Path::new("bench-egress.yaml")).unwrap_or_else(|errors| {
        panic!("the bench policy does not parse: {errors:?}");
    });
    // tgid 0 exempts nobody: the bench's own connects must be decided by the programs.
    let compiled = kernel::compile(&set, cgroup_root, 0).expect("compile the bench policy");
    assert!(
        compiled.unmatched.is_empty(),
        "the bench policy selects nothing: {:?}",
        compiled.unmatched
    );
    compiled.kernel
}

/// How long `EgressMaps::apply` took, by transition.
#[derive(Default)]
struct ApplyTimings {
    /// Writing the large policy over the empty or small one (10,000 new entries).
    write_large: Vec<Duration>,
    /// Replacing the large policy by the empty or small one (10,000 entries removed).
    remove_large: Vec<Duration>,
    /// Applying the large policy while it is in force (a reload that changes nothing).
    reapply: Vec<Duration>,
}

impl ApplyTimings {
    fn record(&mut self, from: State, to: State, took: Duration) {
        if to == State::Large && from != State::Large {
            self.write_large.push(took);
        } else if from == State::Large && to != State::Large {
            self.remove_large.push(took);
        }
    }
}

/// A running pipeline whose events a task drains, counting this process's egress reports.
struct Agent {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Pipeline>,
    maps: Option<EgressMaps>,
}

impl Agent {
    /// Loads and attaches the programs; the egress hook too when `egress_root` is given.
    fn start(runtime: &Runtime, egress_root: Option<&Path>, reports: &Arc<AtomicU64>) -> Agent {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let mut config = PipelineConfig::for_host(NonZeroUsize::new(65536).expect("non-zero"))
            .expect("host configuration");
        config.probes.egress_cgroup_root = egress_root.map(Path::to_path_buf);
        let mut pipeline = runtime
            .block_on(Pipeline::start(config, Arc::clone(&metrics)))
            .expect("the probes attach");
        assert!(metrics.is_ready(), "every probe attached");
        let maps = pipeline.take_egress_maps();
        assert_eq!(
            maps.is_some(),
            egress_root.is_some(),
            "egress maps exactly when the hook is attached"
        );
        let (stop, stopped) = oneshot::channel();
        let task = runtime.spawn(drain(pipeline, Arc::clone(reports), stopped));
        Agent { stop, task, maps }
    }

    /// Stops draining and detaches everything.
    fn stop(self, runtime: &Runtime) {
        drop(self.maps);
        // The task may have ended already (reader gone); the join below says so.
        let _ = self.stop.send(());
        let pipeline = runtime.block_on(self.task).expect("the drain task ran");
        runtime
            .block_on(pipeline.shutdown())
            .expect("the reader ran cleanly");
    }
}

/// Consumes every event so the ring buffer never fills; counts this process's egress reports.
async fn drain(
    mut pipeline: Pipeline,
    reports: Arc<AtomicU64>,
    mut stop: oneshot::Receiver<()>,
) -> Pipeline {
    let me = std::process::id();
    loop {
        tokio::select! {
            _ = &mut stop => return pipeline,
            event = pipeline.next() => match event {
                Some(event) => {
                    if matches!(event.event.kind, EventKind::Egress(_)) && event.event.task.pid == me {
                        reports.fetch_add(1, Ordering::SeqCst);
                    }
                }
                None => {
                    let _ = stop.await;
                    return pipeline;
                }
            },
        }
    }
}

/// The timed calls.
struct Client {
    udp: UdpSocket,
}

impl Client {
    fn new() -> Client {
        Client {
            udp: UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("a UDP socket"),
        }
    }

    /// One warmed-up batch of UDP connects and one of TCP connections to `host`.
    fn measure(&self, phase: Phase, cycle: usize, host: Ipv4Addr) -> [Sample; 2] {
        let udp = sockaddr(SocketAddrV4::new(host, UDP_PORT));
        let tcp = sockaddr(SocketAddrV4::new(host, TCP_PORT));
        let fd = self.udp.as_raw_fd();
        let failed = udp_connects(fd, &udp, UDP_WARM_UP);
        assert_eq!(failed, 0, "{phase:?}: UDP connect to {host} failed");
        let start = Instant::now();
        let failed = udp_connects(fd, &udp, UDP_BATCH);
        let udp_ns = start.elapsed().as_nanos() as f64 / UDP_BATCH as f64;
        assert_eq!(failed, 0, "{phase:?}: UDP connect to {host} failed");

        let failed = tcp_connections(&tcp, TCP_WARM_UP);
        assert_eq!(failed, 0, "{phase:?}: TCP connect to {host} failed");
        let start = Instant::now();
        let failed = tcp_connections(&tcp, TCP_BATCH);
        let tcp_ns = start.elapsed().as_nanos() as f64 / TCP_BATCH as f64;
        assert_eq!(failed, 0, "{phase:?}: TCP connect to {host} failed");
        [
            Sample {
                phase,
                proto: Proto::Udp,
                cycle,
                ns: udp_ns,
            },
            Sample {
                phase,
                proto: Proto::Tcp,
                cycle,
                ns: tcp_ns,
            },
        ]
    }
}

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// `count` connect(2) calls on one UDP socket (each re-connects it); returns how many failed.
fn udp_connects(fd: RawFd, addr: &libc::sockaddr_in, count: u64) -> u64 {
    let mut failed = 0;
    for _ in 0..count {
        // SAFETY: addr is a valid sockaddr_in of the length given.
        let rc = unsafe {
            libc::connect(
                fd,
                (addr as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        failed += u64::from(rc != 0);
    }
    failed
}

/// `count` TCP connections, each socket + connect + close; returns how many failed to connect.
fn tcp_connections(addr: &libc::sockaddr_in, count: u64) -> u64 {
    let mut failed = 0;
    // Closing with a zero linger resets the connection: no TIME_WAIT, so tens of thousands of
    // connections to one destination do not run out of ephemeral ports.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    for _ in 0..count {
        // SAFETY: plain socket calls on a descriptor this loop owns and closes; the pointers
        // are to live values of the lengths given.
        let connected = unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                size_of::<libc::linger>() as libc::socklen_t,
            );
            let rc = libc::connect(
                fd,
                (addr as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            libc::close(fd);
            rc == 0
        };
        failed += u64::from(!connected);
    }
    failed
}

/// Where the timed calls go: a host of the large list's dense block (allowed by both policies)
/// and the nearest address after it that the list lacks.
struct Destinations {
    dense: Vec<Ipv4Addr>,
    listed: Ipv4Addr,
    unlisted: Ipv4Addr,
}

impl Destinations {
    fn new() -> Destinations {
        let base = u32::from(DENSE_BLOCK);
        let size = 1u32 << DENSE_BLOCK_BITS;
        // A stride coprime with the block size: distinct offsets spread over all of it.
        let offsets: Vec<u32> = (0..DENSE_HOSTS).map(|i| i * 13 % size).collect();
        let listed = offsets[offsets.len() / 2];
        let taken: std::collections::HashSet<u32> = offsets.iter().copied().collect();
        let unlisted = (listed + 1..size)
            .find(|offset| !taken.contains(offset))
            .expect("the dense block has gaps");
        Destinations {
            dense: offsets
                .iter()
                .map(|offset| Ipv4Addr::from(base + offset))
                .collect(),
            listed: Ipv4Addr::from(base + listed),
            unlisted: Ipv4Addr::from(base + unlisted),
        }
    }
}

/// A network namespace with one veth link to the host (10.214.<n>.1 here, .2 there), owning
/// both destinations; the dense block is routed through the link.
struct TestHost {
    name: String,
    host_link: String,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {}", args.join(" "));
}

impl TestHost {
    fn new(n: u32, destinations: &Destinations) -> TestHost {
        let name = format!("vigil-egb-{n}");
        let host_link = format!("vgbh{n}");
        let peer = format!("vgbn{n}");
        // A stale namespace of an interrupted run would make `add` fail.
        remove(&["netns", "del", &name]);
        remove(&["link", "del", &host_link]);
        ip(&["netns", "add", &name]);
        // From here on the guard cleans up, whatever fails next.
        let host = TestHost { name, host_link };
        ip(&[
            "link",
            "add",
            &host.host_link,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ]);
        ip(&["link", "set", &peer, "netns", &host.name]);
        ip(&[
            "addr",
            "add",
            &format!("10.214.{n}.1/24"),
            "dev",
            &host.host_link,
        ]);
        ip(&["link", "set", &host.host_link, "up"]);
        ip(&[
            "route",
            "add",
            &format!("{DENSE_BLOCK}/{}", 32 - DENSE_BLOCK_BITS),
            "dev",
            &host.host_link,
        ]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", host.name.as_str(), "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("10.214.{n}.2/24"), "dev", &peer]);
        for address in [destinations.listed, destinations.unlisted] {
            inside(&["addr", "add", &format!("{address}/32"), "dev", &peer]);
        }
        inside(&["link", "set", &peer, "up"]);
        inside(&["link", "set", "lo", "up"]);
        host
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        remove(&["link", "del", &self.host_link]);
        remove(&["netns", "del", &self.name]);
    }
}

/// Removes something that may not exist; its absence is no error worth printing.
fn remove(args: &[&str]) {
    let _ = Command::new("ip")
        .args(args)
        .stderr(std::process::Stdio::null())
        .status();
}

/// A TCP listener inside the test host, accepting and closing connections until dropped.
struct Server {
    listener: Arc<TcpListener>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(netns: &str, port: u16) -> Server {
        let path = format!("/run/netns/{netns}");
        // A socket belongs to the namespace it was created in: a short-lived thread enters the
        // test host's namespace (only its own), creates the listener, and hands it back.
        let listener = std::thread::spawn(move || {
            let namespace = File::open(&path).expect("open the test host's namespace");
            // SAFETY: the descriptor is an open network namespace; setns changes the namespace
            // of this thread only, which ends right after.
            let rc = unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", io::Error::last_os_error());
            TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).expect("listen in the test host")
        })
        .join()
        .expect("the listener thread");
        // std listens with a backlog of 128: a batch outruns that whenever the accepting thread
        // is descheduled, and a dropped SYN costs a one-second retransmit. Listening again only
        // raises the backlog.
        // SAFETY: the descriptor is the listener's own.
        let rc = unsafe { libc::listen(listener.as_raw_fd(), 4096) };
        assert_eq!(rc, 0, "listen: {}", io::Error::last_os_error());
        let listener = Arc::new(listener);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let listener = Arc::clone(&listener);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                loop {
                    match listener.accept() {
                        Ok((connection, _)) => drop(connection),
                        Err(_) if stop.load(Ordering::SeqCst) => return,
                        // A reset connection can fail accept(); keep serving.
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
            })
        };
        Server {
            listener,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Shutting a listening socket down wakes the accept() blocked on it with an error.
        // SAFETY: the listener is alive (this struct holds a reference).
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A cgroup named like a docker container's scope, holding this process until dropped.
struct BenchContainer {
    /// The 64-hex container id.
    id: String,
    slice: PathBuf,
    scope: PathBuf,
    /// The cgroup this process came from.
    home: PathBuf,
}

impl BenchContainer {
    fn enter(root: &Path) -> BenchContainer {
        let pid = std::process::id();
        let own = std::fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup");
        let relative = own
            .lines()
            .find_map(|line| line.strip_prefix("0::"))
            .expect("this process has a cgroup v2 path");
        let home = root.join(relative.trim_start_matches('/'));
        let id = format!("{:08x}", 0xe9b0_0000 | (pid & 0xffff)).repeat(8);
        let slice = root.join(format!("vigil-egress-bench-{pid}.slice"));
        let scope = slice.join(format!("docker-{id}.scope"));
        std::fs::create_dir_all(&scope).expect("create the bench cgroup");
        let container = BenchContainer {
            id,
            slice,
            scope,
            home,
        };
        // Every thread of the process moves, the runtime's included.
        std::fs::write(container.scope.join("cgroup.procs"), pid.to_string())
            .expect("move the bench into its cgroup");
        container
    }

    /// Depth below the cgroup v2 root: how many ancestors the hook looks up.
    fn depth(&self, root: &Path) -> usize {
        self.scope
            .strip_prefix(root)
            .map(|relative| relative.components().count())
            .unwrap_or(0)
    }
}

impl Drop for BenchContainer {
    fn drop(&mut self) {
        // A cgroup with processes in it cannot be removed: go home first.
        let _ = std::fs::write(
            self.home.join("cgroup.procs"),
            std::process::id().to_string(),
        );
        let _ = std::fs::remove_dir(&self.scope);
        let _ = std::fs::remove_dir(&self.slice);
    }
}

/// How many programs decide IPv4 connect(2) for the cgroup (BPF_PROG_QUERY, effective): the
/// detached phases must see none of Vigil's, the attached ones exactly one.
fn connect4_programs(cgroup: &Path) -> u32 {
    const BPF_PROG_QUERY: libc::c_long = 16;
    const BPF_CGROUP_INET4_CONNECT: u32 = 10;
    const BPF_F_QUERY_EFFECTIVE: u32 = 1;
    let dir = File::open(cgroup).expect("open the cgroup v2 root");
    // union bpf_attr, query member: target_fd, attach_type, query_flags, attach_flags, then
    // prog_ids (a u64 pointer; null asks for the count only) and prog_cnt. The rest stays zero.
    let mut attr = [0u32; 32];
    attr[0] = dir.as_raw_fd() as u32;
    attr[1] = BPF_CGROUP_INET4_CONNECT;
    attr[2] = BPF_F_QUERY_EFFECTIVE;
    // SAFETY: attr is a zeroed bpf_attr of the size given; the kernel writes only prog_cnt.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            attr.as_mut_ptr(),
            size_of_val(&attr),
        )
    };
    assert_eq!(rc, 0, "BPF_PROG_QUERY: {}", io::Error::last_os_error());
    attr[6]
}

/// Processes named `vigil` (agents someone else runs on this machine meanwhile).
fn other_agents() -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|entry| {
            std::fs::read_to_string(entry.path().join("comm"))
                .is_ok_and(|comm| comm.trim_end() == "vigil")
        })
        .count()
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = q * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

fn sorted(samples: &[Sample], phase: Phase, proto: Proto, cycle: Option<usize>) -> Vec<f64> {
    let mut values: Vec<f64> = samples
        .iter()
        .filter(|s| s.phase == phase && s.proto == proto && cycle.is_none_or(|c| s.cycle == c))
        .map(|s| s.ns)
        .collect();
    values.sort_by(f64::total_cmp);
    values
}

fn median_ms(durations: &[Duration]) -> f64 {
    let mut ms: Vec<f64> = durations.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    quantile(&ms, 0.5)
}

fn report(
    samples: &[Sample],
    policies: &Policies,
    timings: &ApplyTimings,
    container: &BenchContainer,
    delivered: u64,
    expected: u64,
) {
    let root = mounts::cgroup2_mount().expect("cgroup v2 is mounted");
    let small = policies.small.allow4.len() + policies.small.allow6.len();
    let large = policies.large.allow4.len() + policies.large.allow6.len();
    let batches = CYCLES * ROUNDS;
    println!(
        "egress: {batches} batches per setup ({CYCLES} cycles x {ROUNDS}) of {UDP_BATCH} UDP \
         connect() and {TCP_BATCH} TCP socket+connect+close, each after a warm-up; caller at \
         cgroup depth {}, selected by container.id",
        container.depth(&root)
    );
    println!();
    println!(
        "| setup | UDP connect(), ns [q1-q3] | vs baseline | TCP connect+close, us [q1-q3] | vs baseline |"
    );
    println!("| --- | --- | --- | --- | --- |");
    let base_udp = quantile(&sorted(samples, Phase::Detached, Proto::Udp, None), 0.5);
    let base_tcp = quantile(&sorted(samples, Phase::Detached, Proto::Tcp, None), 0.5);
    for phase in PHASES {
        let udp = sorted(samples, phase, Proto::Udp, None);
        let tcp = sorted(samples, phase, Proto::Tcp, None);
        let (udp_median, tcp_median) = (quantile(&udp, 0.5), quantile(&tcp, 0.5));
        let versus = |median: f64, base: f64, scale: f64, unit: &str| {
            if phase == Phase::Detached {
                "1.00x".to_string()
            } else {
                format!(
                    "{:.2}x ({:+.1} {unit})",
                    median / base,
                    (median - base) / scale
                )
            }
        };
        println!(
            "| {} | {:.0} [{:.0}-{:.0}] | {} | {:.1} [{:.1}-{:.1}] | {} |",
            phase.label(small, large),
            udp_median,
            quantile(&udp, 0.25),
            quantile(&udp, 0.75),
            versus(udp_median, base_udp, 1.0, "ns"),
            tcp_median / 1e3,
            quantile(&tcp, 0.25) / 1e3,
            quantile(&tcp, 0.75) / 1e3,
            versus(tcp_median, base_tcp, 1e3, "us"),
        );
    }
    println!();
    for (phase, name) in [
        (Phase::Bare, "no Vigil"),
        (Phase::Detached, "baseline"),
        (Phase::NoPolicy, "no policy"),
        (Phase::LargeMiss, "reported"),
    ] {
        let by_cycle: Vec<String> = (0..CYCLES)
            .map(|cycle| {
                format!(
                    "{:.0}",
                    quantile(&sorted(samples, phase, Proto::Udp, Some(cycle)), 0.5)
                )
            })
            .collect();
        println!(
            "egress: drift, UDP {name} median by cycle: {} ns",
            by_cycle.join(" / ")
        );
    }
    println!(
        "egress: parsing and compiling the {small}-entry policy took {:.1} ms, the {large}-entry \
         one {:.0} ms",
        policies.compile_small.as_secs_f64() * 1e3,
        policies.compile_large.as_secs_f64() * 1e3
    );
    println!(
        "egress: maps.apply writing {large} entries: {:.1} ms (median of {}); removing them again \
         (replaced by the small or the empty policy): {:.1} ms; reloading the same {large} (written \
         into the other generation, the old one cleared): {:.1} ms",
        median_ms(&timings.write_large),
        timings.write_large.len(),
        median_ms(&timings.remove_large),
        median_ms(&timings.reapply),
    );
    println!("egress: reports of the bench delivered to userspace: {delivered} of {expected}");
}
