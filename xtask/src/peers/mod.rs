//! The side-by-side part of `cargo xtask bench`: the same workloads timed with no observer,
//! with bpftrace's attach-only floor, with Vigil (bundled rules, then the stable Falco rules)
//! and with auditd, all in one run, plus Vigil's own cost figures and its memory with a
//! 10,000-process table. [`report`] turns the measurements into BENCHMARKS.md and JSON.
//!
//! The suite runs in rounds. In each round every observer, in [`Observer::ORDER`], is started,
//! every workload is run once under it, and it is stopped and undone before the next one
//! starts; a cell's figure is the median over the rounds. Rounds rather than back-to-back
//! repetitions spread a burst of unrelated load on a shared machine over all the observers
//! instead of pinning it on one. auditd comes last but one in each round: once auditing has been
//! switched on, the kernel gives every new task an audit context until reboot, so every round
//! ends with a no-observer pass that shows what that leaves behind.

mod audit;
mod bpftrace;
mod interrupt;
pub mod report;
mod sys;
mod vigil;
mod workload;

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

pub use self::workload::{Scale, Workload};
use self::{
    audit::Auditd,
    bpftrace::Bpftrace,
    sys::{Memory, TempDir},
    vigil::{Agent, Alert, MARKER_RULE},
    workload::Runner,
};

/// What the suite runs, and with how much work.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The smoke-test mode: small workloads, one round, 1,000 held processes.
    pub quick: bool,
    /// Rounds: runs of each workload under each observer; the median is reported.
    pub reps: usize,
    /// Work per run.
    pub scale: Scale,
    /// Sleeping processes held for the process-table memory figure.
    pub processes: u32,
}

impl Settings {
    /// The full suite (5 rounds) or the quick one (1 round); `VIGIL_BENCH_REPS` overrides the
    /// number of rounds.
    pub fn new(quick: bool) -> Result<Settings> {
        let reps = match std::env::var("VIGIL_BENCH_REPS") {
            Ok(text) => text
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .with_context(|| format!("VIGIL_BENCH_REPS={text:?} is not a positive number"))?,
            Err(_) if quick => 1,
            Err(_) => 5,
        };
        Ok(Settings {
            quick,
            reps,
            scale: if quick { Scale::QUICK } else { Scale::FULL },
            processes: if quick { 1_000 } else { 10_000 },
        })
    }
}

/// The programs and rules the suite uses.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// The release `vigil` binary.
    pub vigil: PathBuf,
    /// The release `bench-workload` binary.
    pub workload: PathBuf,
    /// The bundled rules directory (`rules/`).
    pub bundled_rules: PathBuf,
    /// The stable Falco rules file.
    pub falco_rules: PathBuf,
}

/// Who watches the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observer {
    /// Nothing: the baseline.
    None,
    /// bpftrace counting openat enter and exit in the kernel.
    Bpftrace,
    /// `vigil run` with the bundled rules.
    VigilBundled,
    /// `vigil run` with the stable Falco rules.
    VigilFalco,
    /// auditd with rules on open/openat/openat2, execve/execveat and connect.
    Auditd,
    /// Nothing again, after auditd has run.
    NoneAfterAuditd,
}

impl Observer {
    /// The order the suite measures them in.
    pub const ORDER: [Observer; 6] = [
        Observer::None,
        Observer::Bpftrace,
        Observer::VigilBundled,
        Observer::VigilFalco,
        Observer::Auditd,
        Observer::NoneAfterAuditd,
    ];

    /// The name in the JSON.
    pub fn id(self) -> &'static str {
        match self {
            Observer::None => "none",
            Observer::Bpftrace => "bpftrace",
            Observer::VigilBundled => "vigil-bundled",
            Observer::VigilFalco => "vigil-falco-stable",
            Observer::Auditd => "auditd",
            Observer::NoneAfterAuditd => "none-after-auditd",
        }
    }

    /// The name in the tables.
    pub fn label(self) -> &'static str {
        match self {
            Observer::None => "none",
            Observer::Bpftrace => "bpftrace floor",
            Observer::VigilBundled => "Vigil, bundled rules",
            Observer::VigilFalco => "Vigil, Falco stable",
            Observer::Auditd => "auditd",
            Observer::NoneAfterAuditd => "none, after auditd",
        }
    }

    /// What runs, for the method section.
    pub fn description(self) -> &'static str {
        match self {
            Observer::None => "no observer: the baseline every slowdown is relative to",
            Observer::Bpftrace => {
                "`bpftrace -e` with `tracepoint:syscalls:sys_enter_openat` and `sys_exit_openat`, \
                 each only `count()`ing into a map (nothing sent to userspace): the cost of \
                 merely attaching to openat"
            }
            Observer::VigilBundled => {
                "`vigil run` (release build) with the bundled `rules/` plus the marker rule, \
                 alerts to a Falco-format file sink"
            }
            Observer::VigilFalco => {
                "`vigil run` (release build) with the stable Falco file `falco_rules.yaml` plus \
                 the marker rule, alerts to a Falco-format file sink"
            }
            Observer::Auditd => {
                "Debian's `auditd -n` with Debian's auditd.conf (log moved to the scratch \
                 directory), `-b 8192 --backlog_wait_time 60000` as Debian's audit.rules, and \
                 `-a always,exit -F arch=b64 -S open -S openat -S openat2 -S execve -S execveat \
                 -S connect`; rules deleted, settings restored and the daemon stopped afterwards"
            }
            Observer::NoneAfterAuditd => {
                "no observer again, right after auditd in each round: once auditd has switched \
                 auditing on, the kernel gives every new task an audit context until reboot \
                 (`audit_ever_enabled`), so this shows that residue (it is also in the \
                 baseline of rounds after the first, and of every run after the first since \
                 boot)"
            }
        }
    }

    /// Whether this is one of the peers (their failure is reported, not fatal).
    fn is_peer(self) -> bool {
        matches!(self, Observer::Bpftrace | Observer::Auditd)
    }

    fn is_vigil(self) -> bool {
        matches!(self, Observer::VigilBundled | Observer::VigilFalco)
    }
}

/// One workload measured under one observer.
#[derive(Clone, Debug)]
pub struct Cell {
    /// The workload.
    pub workload: Workload,
    /// Wall time of each run, seconds.
    pub wall_s: Vec<f64>,
    /// Workload counts of one run (`rounds`, `execs`, `connects`).
    pub counts: BTreeMap<String, u64>,
    /// CPU seconds the observer's process used over the runs (user + system).
    pub cpu_s: Option<f64>,
    /// Events Vigil decoded over the runs (`vigil_events_total`, every type, whole host).
    pub events: Option<u64>,
    /// Records lost on the way to the observer: Vigil's `vigil_kernel_dropped_total`, auditd's
    /// kernel `lost` count.
    pub drops: Option<u64>,
    /// Marker files opened over the runs.
    pub markers_expected: u64,
    /// Marker alerts received (Vigil only).
    pub markers_received: Option<u64>,
    /// Event-to-alert latency of each marker alert, milliseconds.
    pub latency_ms: Vec<f64>,
    /// Other alerts raised over the runs, by rule.
    pub other_alerts: BTreeMap<String, u64>,
}

impl Cell {
    /// The median wall time.
    pub fn median_s(&self) -> f64 {
        sys::median(&self.wall_s)
    }

    /// Adds another session's run of the same workload.
    fn merge(&mut self, other: Cell) {
        fn add<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
            Some(a? + b?)
        }
        self.wall_s.extend(other.wall_s);
        self.counts = other.counts;
        self.cpu_s = add(self.cpu_s, other.cpu_s);
        self.events = add(self.events, other.events);
        self.drops = add(self.drops, other.drops);
        self.markers_expected += other.markers_expected;
        self.markers_received = add(self.markers_received, other.markers_received);
        self.latency_ms.extend(other.latency_ms);
        for (rule, n) in other.other_alerts {
            *self.other_alerts.entry(rule).or_insert(0) += n;
        }
    }
}

/// Everything measured under one observer.
#[derive(Clone, Debug)]
pub struct ObserverRun {
    /// The observer.
    pub observer: Observer,
    /// Why it was not measured, if it was not.
    pub skipped: Option<String>,
    /// One per workload.
    pub cells: Vec<Cell>,
    /// The observer process's memory at the end (Vigil: VmHWM is the session's peak).
    pub memory: Option<Memory>,
    /// What bpftrace counted.
    pub bpftrace: Option<bpftrace::Counts>,
    /// `/proc/loadavg` when each session started: how busy the shared machine was.
    pub loadavg: Vec<String>,
    /// Other processes holding eBPF programs during the sessions (`comm (pid)`): another
    /// agent attached to the same tracepoints slows every column, the baseline included.
    pub other_bpf: BTreeSet<String>,
}

impl ObserverRun {
    fn new(observer: Observer) -> ObserverRun {
        ObserverRun {
            observer,
            skipped: None,
            cells: Vec::new(),
            memory: None,
            bpftrace: None,
            loadavg: Vec::new(),
            other_bpf: BTreeSet::new(),
        }
    }

    /// Marks the observer as not measured, dropping what earlier rounds measured.
    fn skip(&mut self, reason: String) {
        *self = ObserverRun {
            skipped: Some(reason),
            ..ObserverRun::new(self.observer)
        };
    }

    /// Adds one session's figures: runs, counters and latencies accumulate, the memory peak is
    /// the highest of the sessions.
    fn merge(&mut self, session: ObserverRun) {
        for cell in session.cells {
            match self.cells.iter_mut().find(|c| c.workload == cell.workload) {
                Some(existing) => existing.merge(cell),
                None => self.cells.push(cell),
            }
        }
        self.memory = match (self.memory, session.memory) {
            (Some(a), Some(b)) => Some(Memory {
                rss_kib: b.rss_kib,
                hwm_kib: a.hwm_kib.max(b.hwm_kib),
            }),
            (a, b) => b.or(a),
        };
        self.bpftrace = match (self.bpftrace, session.bpftrace) {
            (Some(a), Some(b)) => Some(bpftrace::Counts {
                enter: a.enter + b.enter,
                exit: a.exit + b.exit,
            }),
            (a, b) => b.or(a),
        };
        self.loadavg.extend(session.loadavg);
        self.other_bpf.extend(session.other_bpf);
    }
}

/// Vigil's memory with many processes in its table.
#[derive(Clone, Debug)]
pub struct ProcessTable {
    /// Sleeping processes held.
    pub processes: u32,
    /// `vigil_process_table_size` before they were forked.
    pub table_before: u64,
    /// `vigil_process_table_size` with them alive.
    pub table_with: u64,
    /// Memory before they were forked.
    pub memory_before: Memory,
    /// Memory with them alive.
    pub memory_with: Memory,
}

/// What the suite measured.
#[derive(Clone, Debug)]
pub struct Measurements {
    /// The settings it ran with.
    pub settings: Settings,
    /// One per observer, in [`Observer::ORDER`].
    pub observers: Vec<ObserverRun>,
    /// Vigil (stable Falco rules) holding [`Settings::processes`] extra processes.
    pub process_table: Option<ProcessTable>,
    /// Seconds the suite took.
    pub duration_s: f64,
}

/// Runs the suite (root only).
pub fn run(inputs: &Inputs, settings: &Settings) -> Result<Measurements> {
    let started = Instant::now();
    let scratch = TempDir::new("vigil-bench.")?;
    eprintln!("bench: scratch directory {}", scratch.path().display());
    let mut runner = Runner::prepare(&inputs.workload, scratch.path(), settings.scale)?;
    let _interrupt = interrupt::Guard::install();
    eprintln!("bench: warm-up run of each workload");
    for workload in Workload::ALL {
        runner.run(workload)?;
    }
    let mut observers: Vec<ObserverRun> = Observer::ORDER.map(ObserverRun::new).to_vec();
    for run in &mut observers {
        run.skipped = match run.observer {
            Observer::Bpftrace => bpftrace::unavailable(),
            Observer::Auditd => audit::unavailable(),
            _ => None,
        };
        if let Some(reason) = &run.skipped {
            eprintln!("bench: {} skipped: {reason}", run.observer.label());
        }
    }
    for round in 1..=settings.reps {
        for index in 0..observers.len() {
            let observer = observers[index].observer;
            if observer == Observer::NoneAfterAuditd
                && observers
                    .iter()
                    .any(|run| run.observer == Observer::Auditd && run.skipped.is_some())
            {
                observers[index].skip("auditd did not run".to_owned());
            }
            if observers[index].skipped.is_some() {
                continue;
            }
            interrupt::check()?;
            eprintln!(
                "bench: round {round}/{}: {}",
                settings.reps,
                observer.label()
            );
            let dir = scratch.path().join(format!("{}-{round}", observer.id()));
            match measure(observer, inputs, &dir, &mut runner) {
                Ok(session) => observers[index].merge(session),
                Err(err) if observer.is_peer() && !interrupt::interrupted() => {
                    eprintln!("bench: warning: {} failed: {err:#}", observer.label());
                    observers[index].skip(format!("failed in round {round}: {err:#}"));
                }
                Err(err) => return Err(err.context(format!("measuring {}", observer.label()))),
            }
        }
    }
    // Last: killing thousands of processes at once is a burst the rounds should not see.
    interrupt::check()?;
    eprintln!(
        "bench: Vigil's memory with {} extra processes",
        settings.processes
    );
    let dir = scratch.path().join("process-table");
    let process_table = Some(
        measure_process_table(inputs, settings, &dir, runner.marker())
            .context("measuring the process table")?,
    );
    Ok(Measurements {
        settings: settings.clone(),
        observers,
        process_table,
        duration_s: started.elapsed().as_secs_f64(),
    })
}

/// A started observer.
enum Running {
    Nothing,
    Bpftrace(Bpftrace),
    Auditd(Auditd),
    Vigil(Agent),
}

/// Counters read before and after a workload's runs.
#[derive(Clone, Copy, Default)]
struct Probe {
    cpu_s: Option<f64>,
    events: Option<u64>,
    drops: Option<u64>,
}

impl Running {
    fn start(observer: Observer, inputs: &Inputs, dir: &Path, marker: &Path) -> Result<Running> {
        Ok(match observer {
            Observer::None | Observer::NoneAfterAuditd => Running::Nothing,
            Observer::Bpftrace => Running::Bpftrace(Bpftrace::start()?),
            Observer::Auditd => Running::Auditd(Auditd::start(dir)?),
            Observer::VigilBundled => Running::Vigil(Agent::start(
                &inputs.vigil,
                dir,
                std::slice::from_ref(&inputs.bundled_rules),
                marker,
            )?),
            Observer::VigilFalco => Running::Vigil(Agent::start(
                &inputs.vigil,
                dir,
                std::slice::from_ref(&inputs.falco_rules),
                marker,
            )?),
        })
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Running::Nothing => None,
            Running::Bpftrace(bpftrace) => Some(bpftrace.pid()),
            Running::Auditd(auditd) => Some(auditd.pid()),
            Running::Vigil(agent) => Some(agent.pid()),
        }
    }

    fn probe(&self) -> Result<Probe> {
        let cpu_s = self.pid().map(sys::cpu_seconds).transpose()?;
        let (events, drops) = match self {
            Running::Vigil(agent) => {
                let counters = agent.counters()?;
                (Some(counters.events), Some(counters.kernel_drops))
            }
            Running::Auditd(_) => (None, Some(Auditd::lost()?)),
            _ => (None, None),
        };
        Ok(Probe {
            cpu_s,
            events,
            drops,
        })
    }

    /// Waits until the observer has caught up with the runs: for Vigil, until every marker
    /// alert has arrived (or 30 s passed). Returns the alerts that arrived.
    fn settle(&mut self, markers: u64) -> Result<Vec<Alert>> {
        let Running::Vigil(agent) = self else {
            std::thread::sleep(Duration::from_millis(300));
            return Ok(Vec::new());
        };
        let mut alerts = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            alerts.extend(agent.read_alerts()?);
            if alerts.iter().filter(|a| a.rule == MARKER_RULE).count() as u64 >= markers {
                break;
            }
            interrupt::check()?;
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        alerts.extend(agent.read_alerts()?);
        Ok(alerts)
    }

    fn memory(&self) -> Option<Memory> {
        self.pid().and_then(|pid| sys::memory(pid).ok())
    }

    fn stop(self) -> Result<Option<bpftrace::Counts>> {
        match self {
            Running::Nothing => Ok(None),
            Running::Bpftrace(bpftrace) => bpftrace.stop().map(Some),
            Running::Auditd(auditd) => auditd.stop().map(|()| None),
            Running::Vigil(agent) => agent.stop().map(|()| None),
        }
    }
}

/// One session: starts `observer`, runs every workload once under it, stops it.
fn measure(
    observer: Observer,
    inputs: &Inputs,
    dir: &Path,
    runner: &mut Runner,
) -> Result<ObserverRun> {
    let mut session = ObserverRun::new(observer);
    session.loadavg.push(report::loadavg());
    let mut running = Running::start(observer, inputs, dir, runner.marker())?;
    let own: Vec<u32> = running.pid().into_iter().collect();
    session.other_bpf.extend(sys::bpf_users(&own));
    for workload in Workload::ALL {
        let before = running.probe()?;
        interrupt::check()?;
        let run = runner
            .run(workload)
            .with_context(|| format!("running {}", workload.name()))?;
        let alerts = running.settle(run.markers)?;
        let after = running.probe()?;
        let cell = cell(workload, observer, run, &alerts, before, after);
        eprintln!(
            "bench:   {:<14} {:.3} s{}",
            workload.name(),
            cell.median_s(),
            cell.events
                .map(|events| format!(", {events} events"))
                .unwrap_or_default()
        );
        session.cells.push(cell);
    }
    session.other_bpf.extend(sys::bpf_users(&own));
    session.memory = running.memory();
    session.bpftrace = running.stop()?;
    Ok(session)
}

fn cell(
    workload: Workload,
    observer: Observer,
    run: workload::Run,
    alerts: &[Alert],
    before: Probe,
    after: Probe,
) -> Cell {
    let delta = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
    let mut latency_ms = Vec::new();
    let mut other_alerts = BTreeMap::new();
    let mut received = 0;
    for alert in alerts.iter().filter(|alert| alert.source != "vigil") {
        if alert.rule == MARKER_RULE {
            received += 1;
            if let (Some(event), Some(detected)) = (alert.event_ns, alert.detected_ns) {
                latency_ms.push((detected - event) as f64 / 1e6);
            }
        } else {
            *other_alerts.entry(alert.rule.clone()).or_insert(0) += 1;
        }
    }
    Cell {
        workload,
        wall_s: vec![run.elapsed_s],
        counts: run.counts,
        cpu_s: before.cpu_s.zip(after.cpu_s).map(|(a, b)| b - a),
        events: delta(before.events, after.events),
        drops: delta(before.drops, after.drops),
        markers_expected: run.markers,
        markers_received: observer.is_vigil().then_some(received),
        latency_ms,
        other_alerts,
    }
}

/// Starts Vigil with the stable Falco rules, forks `settings.processes` sleeping processes, and
/// reads its memory once they are all in its process table.
fn measure_process_table(
    inputs: &Inputs,
    settings: &Settings,
    dir: &Path,
    marker: &Path,
) -> Result<ProcessTable> {
    let agent = Agent::start(
        &inputs.vigil,
        dir,
        std::slice::from_ref(&inputs.falco_rules),
        marker,
    )?;
    std::thread::sleep(Duration::from_secs(1));
    let table_before = agent.counters()?.process_table;
    let memory_before = sys::memory(agent.pid())?;
    let mut hold = Hold::start(&inputs.workload, settings.processes)?;
    let want = table_before + u64::from(settings.processes) * 99 / 100;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut table_with = table_before;
    while Instant::now() < deadline {
        interrupt::check()?;
        table_with = agent.counters()?.process_table;
        if table_with >= want {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the agent settle (allocator, caches) before reading its memory.
    std::thread::sleep(Duration::from_secs(1));
    table_with = table_with.max(agent.counters()?.process_table);
    let memory_with = sys::memory(agent.pid())?;
    hold.finish()?;
    agent.stop()?;
    if table_with < want {
        eprintln!(
            "bench: warning: the process table reached only {table_with} entries (wanted \
             {want})"
        );
    }
    Ok(ProcessTable {
        processes: settings.processes,
        table_before,
        table_with,
        memory_before,
        memory_with,
    })
}

/// `bench-workload hold`: the sleeping processes, killed when its stdin closes.
struct Hold {
    child: Child,
}

impl Hold {
    fn start(binary: &Path, count: u32) -> Result<Hold> {
        let mut child = Command::new(binary)
            .args(["hold", "--count", &count.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting bench-workload hold")?;
        let stdout = child.stdout.take().context("hold's stdout")?;
        let mut hold = Hold { child };
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading hold's output")?;
        if !line.starts_with("ready") {
            let status = hold.child.wait().context("waiting for hold")?;
            bail!("bench-workload hold failed ({status})");
        }
        Ok(hold)
    }

    /// Closes stdin, so it kills and reaps its children, and waits for it.
    fn finish(&mut self) -> Result<()> {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().context("polling hold")?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("bench-workload hold did not finish within 60 s; killed it");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        // Its children die with it (PR_SET_PDEATHSIG).
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
