//! `vigil trace` and `vigil run`: the probes, the pipeline and the endpoints.

mod reload;
mod watch;
mod watchdog;

use std::{
    io::{self, Write},
    net::SocketAddr,
    num::NonZeroUsize,
    path::PathBuf,
    sync::Arc,
};

use anyhow::{Context as _, Result};
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};
use vigil::{
    egress::{
        self,
        alert::EgressAlerts,
        control::{EgressControl, PolicyNames},
        policy::PolicySet,
    },
    enrich::Enriched,
    events::syscalls::{self, Syscall},
    host::mounts,
    metrics::Metrics,
    output,
    pipeline::{Pipeline, PipelineConfig},
    rules::alert::hostname,
    selfwatch::SelfWatch,
    server,
    sinks::{config::DeliveryConfig, dispatcher::Dispatcher},
    state::{
        container_meta::RuntimeRoots,
        pod_watch::{self, PodWatchConfig},
        pods::PodIndex,
    },
};

pub use self::reload::ConfigSource;
use self::reload::{Reloader, Work};
use super::rules::RuleArgs;

/// Options of every command that runs the probes.
#[derive(Args, Clone)]
pub struct AgentArgs {
    /// Address of the /metrics, /healthz and /readyz endpoint.
    #[arg(long, env = "VIGIL_METRICS_ADDR", default_value = "127.0.0.1:9376")]
    pub metrics_addr: SocketAddr,
    /// Ring buffer size in bytes (rounded up to a power of two).
    #[arg(long, env = "VIGIL_RING_BUFFER_BYTES", default_value_t = 16 * 1024 * 1024,
          value_parser = clap::value_parser!(u32).range(4096..=1 << 30))]
    pub ring_buffer_bytes: u32,
    /// Most processes kept in the process table.
    #[arg(long, env = "VIGIL_MAX_PROCESSES", default_value = "65536")]
    pub max_processes: NonZeroUsize,
    /// Also report the agent's own syscalls.
    #[arg(long, env = "VIGIL_INCLUDE_SELF")]
    pub include_self: bool,
    /// Where the host's filesystem is mounted when the agent runs in a container (e.g.
    /// `/host`): container runtimes' state is read below it.
    #[arg(long, env = "VIGIL_HOST_ROOT", value_name = "PATH")]
    pub host_root: Option<PathBuf>,
    /// This node's name in Kubernetes (a DaemonSet passes `spec.nodeName` through the
    /// downward API): watch this node's pods on the API server for `k8s.*` and `container.*`
    /// metadata (docs/kubernetes.md). Unset or empty: no watch.
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub k8s_node_name: Option<String>,
    /// Kubeconfig for the pod watch instead of the pod's service account (development).
    #[arg(long, value_name = "FILE", requires = "k8s_node_name")]
    pub k8s_kubeconfig: Option<PathBuf>,
}

impl AgentArgs {
    /// Where the container runtimes keep their state, as this agent sees it.
    fn runtime_roots(&self) -> RuntimeRoots {
        match &self.host_root {
            Some(root) => RuntimeRoots::default().with_host_root(root),
            None => RuntimeRoots::default(),
        }
    }

    /// The pod watch's configuration, when a node name is set.
    fn pod_watch(&self) -> Option<PodWatchConfig> {
        let node = self.k8s_node_name.as_deref().map(str::trim)?;
        if node.is_empty() {
            return None;
        }
        Some(PodWatchConfig {
            kubeconfig: self.k8s_kubeconfig.clone(),
            ..PodWatchConfig::new(node)
        })
    }
}

/// The pod watch, running in the background, and the index it fills.
struct PodWatch {
    index: PodIndex,
    task: tokio::task::JoinHandle<()>,
}

impl PodWatch {
    /// Starts watching when `args` name a node. Never waits for the API server: until the first
    /// list arrives, events simply lack what it adds.
    fn start(args: &AgentArgs, metrics: &Arc<Metrics>) -> Option<PodWatch> {
        let config = args.pod_watch()?;
        let index = PodIndex::default();
        let task = tokio::spawn(pod_watch::run(config, index.clone(), Arc::clone(metrics)));
        Some(PodWatch { index, task })
    }
}

/// What the kernel side and the state capture beyond the defaults.
struct TracingOptions {
    capture_env: bool,
    capture_buffers: bool,
    syscalls: Vec<Syscall>,
    skip_failed: Vec<Syscall>,
    /// Rules running, for the `vigil_rules_loaded` gauge.
    rules_loaded: usize,
    /// Egress policies for the kernel.
    egress: Option<EgressSetup>,
    /// Where to report programs detached by someone else (`vigil run` only).
    watchdog: Option<Arc<Dispatcher>>,
}

impl Default for TracingOptions {
    fn default() -> Self {
        TracingOptions {
            capture_env: false,
            capture_buffers: false,
            syscalls: syscalls::default_interest().collect(),
            skip_failed: Vec::new(),
            rules_loaded: 0,
            egress: None,
            watchdog: None,
        }
    }
}

/// Egress policies to put in force once the programs are attached.
struct EgressSetup {
    cgroup_root: PathBuf,
    pin: bool,
    files: Vec<PathBuf>,
    compiled: egress::kernel::CompiledPolicies,
    names: PolicyNames,
}

/// `vigil trace`: every event on stdout.
pub async fn trace(args: AgentArgs, json: bool) -> Result<()> {
    let mut stdout = io::BufWriter::new(io::stdout().lock());
    let metrics = Arc::new(Metrics::new().context("creating metrics")?);
    run_agent(
        args,
        TracingOptions::default(),
        metrics,
        None,
        move |event, more, _| {
            if json {
                serde_json::to_writer(&mut stdout, &output::json::to_json(event))?;
                stdout.write_all(b"\n")?;
            } else {
                writeln!(stdout, "{}", output::text::to_line(event))?;
            }
            if !more {
                stdout.flush()?;
            }
            Ok(())
        },
    )
    .await
}

/// `vigil run`: every event through the rules (and egress decisions through the built-in egress
/// rule), alerts to the configured sinks. The rules (loaded from `rule_args`) and the egress
/// policies are reloaded on SIGHUP and when their files change.
pub async fn run(
    args: AgentArgs,
    rule_args: RuleArgs,
    delivery: DeliveryConfig,
    policies: PolicySet,
    policy_files: Vec<PathBuf>,
    egress_pin: bool,
    config: Option<ConfigSource>,
) -> Result<()> {
    let ruleset = rule_args.load()?;
    // Only the syscalls the rules and the state need are traced.
    let capture = ruleset.capture();
    let names = |list: &[Syscall]| -> Vec<&'static str> {
        list.iter().map(|s| syscalls::spec(*s).name).collect()
    };
    tracing::info!(
        syscalls = ?names(&capture.syscalls),
        failures_counted_not_recorded = ?names(&capture.skip_failed),
        "traced syscalls"
    );
    let policy_names = PolicyNames::default();
    let egress = if policies.policies.is_empty() && policies.default.is_none() {
        None
    } else {
        let cgroup_root =
            mounts::cgroup2_mount().context("finding cgroup v2 for egress control")?;
        let compiled = egress::kernel::compile_for_host(
            &policies,
            &cgroup_root,
            std::process::id(),
            &args.runtime_roots(),
        )
        .context("preparing the egress policies for the kernel")?;
        for warning in &compiled.unmatched {
            tracing::warn!(%warning, "egress policy selects nothing yet");
        }
        tracing::info!(policies = compiled.names.len(), "egress policies loaded");
        Some(EgressSetup {
            cgroup_root,
            pin: egress_pin,
            files: policy_files.clone(),
            compiled,
            names: policy_names.clone(),
        })
    };
    let mut tracing_options = TracingOptions {
        capture_env: capture.env,
        capture_buffers: capture.buffers,
        syscalls: capture.syscalls.clone(),
        skip_failed: capture.skip_failed.clone(),
        rules_loaded: ruleset.len(),
        egress,
        watchdog: None,
    };
    let host = hostname();
    let egress_alerts = EgressAlerts::new(Arc::clone(&host));
    let metrics = Arc::new(Metrics::new().context("creating metrics")?);
    let mut dispatcher =
        Dispatcher::start(&delivery, &metrics, host).context("starting alert delivery")?;
    dispatcher.report_kernel_drops(Arc::clone(&metrics));
    let dispatcher = Arc::new(dispatcher);
    tracing_options.watchdog = Some(Arc::clone(&dispatcher));
    let sink = Arc::clone(&dispatcher);
    let (running_rules, mut rules) = tokio::sync::watch::channel(Arc::new(ruleset));
    let mut ruleset = Arc::clone(&rules.borrow_and_update());
    let reloader = Reloader::start(
        rule_args,
        running_rules,
        capture,
        Arc::clone(&dispatcher),
        policy_files,
        config,
    );
    let mut alerts = Vec::new();
    let self_watch = SelfWatch::new(std::process::id());
    let consume = move |event: &Enriched, _: bool, metrics: &Metrics| {
        // A reload puts the new rules in between two events, on this same task: each event is
        // evaluated by exactly one set, the old or the new.
        if rules.has_changed().unwrap_or(false) {
            ruleset = Arc::clone(&rules.borrow_and_update());
        }
        alerts.clear();
        ruleset.evaluate(event, &mut alerts);
        if let Some(alert) = egress_alerts.alert(event, |policy| policy_names.get(policy)) {
            metrics
                .egress_reported
                .with_label_values(&[
                    alert.output_fields["egress.policy"]
                        .as_str()
                        .unwrap_or_default(),
                    alert.output_fields["egress.verdict"]
                        .as_str()
                        .unwrap_or_default(),
                ])
                .inc();
            alerts.push(alert);
        }
        for alert in &alerts {
            metrics.alerts.with_label_values(&[alert.priority]).inc();
            sink.submit_alert(alert, event);
        }
        if let Some(notice) = self_watch.check(event) {
            tracing::warn!(rule = notice.rule, "{}", notice.text);
            sink.submit_health(notice);
        }
        Ok(())
    };
    let outcome = run_agent(args, tracing_options, metrics, Some(reloader), consume).await;
    // Intake has stopped and the probes are detached: now drain the sinks.
    match Arc::try_unwrap(dispatcher) {
        Ok(dispatcher) => dispatcher.shutdown().await,
        Err(_) => tracing::error!("alert delivery still in use at shutdown; not drained"),
    }
    outcome
}

/// Starts the endpoint and the pipeline, hands every event to `consume` (with whether more are
/// ready right now), reloads what `reloader` reloads on SIGHUP and file changes, and stops
/// cleanly on SIGINT or SIGTERM.
async fn run_agent(
    args: AgentArgs,
    options: TracingOptions,
    metrics: Arc<Metrics>,
    mut reloader: Option<Reloader>,
    mut consume: impl FnMut(&Enriched, bool, &Metrics) -> io::Result<()>,
) -> Result<()> {
    metrics.rules_loaded.set(options.rules_loaded as i64);
    // Signals are taken over before anything starts: a SIGTERM during start-up (or right after
    // "vigil is running") then stops the agent cleanly instead of killing it outright.
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let listener = server::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding the metrics endpoint to {}", args.metrics_addr))?;
    let (stop_server, mut server_stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(server::serve(listener, Arc::clone(&metrics), async move {
        let _ = server_stopped.changed().await;
    }));
    tracing::info!(addr = %args.metrics_addr, "serving /metrics, /healthz, /readyz");
    // Started before the probes so that the first list overlaps their loading.
    let pod_watch = PodWatch::start(&args, &metrics);
    let runtime_roots = match &pod_watch {
        Some(watch) => args.runtime_roots().with_pods(watch.index.clone()),
        None => args.runtime_roots(),
    };

    let mut config = PipelineConfig::for_host(args.max_processes)
        .context("inspecting the host (cgroup v2, procfs)")?;
    config.probes.ring_buffer_bytes = args.ring_buffer_bytes;
    config.probes.ignore_self = !args.include_self;
    config.state.capture_env = options.capture_env;
    config.probes.capture_buffers = options.capture_buffers;
    config.probes.syscalls = options.syscalls;
    config.probes.skip_failed = options.skip_failed;
    config.probes.egress_cgroup_root = options.egress.as_ref().map(|e| e.cgroup_root.clone());
    config.probes.egress_pin = options.egress.as_ref().is_some_and(|e| e.pin);
    config.state.runtime_roots = runtime_roots.clone();
    let mut pipeline = Pipeline::start(config, Arc::clone(&metrics))
        .await
        .context("starting the eBPF probes")?;
    let mut egress_control = match options.egress {
        Some(setup) => {
            metrics
                .egress_policies
                .set(setup.compiled.names.len() as i64);
            let maps = pipeline
                .take_egress_maps()
                .context("the egress programs are attached but their maps are missing")?;
            Some(
                EgressControl::start(
                    maps,
                    setup.compiled,
                    setup.files,
                    setup.cgroup_root,
                    runtime_roots,
                    setup.names,
                )
                .context("writing the egress policies to the kernel")?,
            )
        }
        None => None,
    };
    tracing::info!(programs = ?pipeline.attached(), "vigil is running");
    let watchdog = options
        .watchdog
        .map(|dispatcher| watchdog::start(pipeline.program_ids(), dispatcher));

    let outcome = loop {
        tokio::select! {
            _ = sigterm.recv() => break Ok("SIGTERM"),
            _ = sigint.recv() => break Ok("SIGINT"),
            _ = sighup.recv() => match reloader.as_mut() {
                Some(reloader) => reloader.on_signal(egress_control.as_mut(), &metrics),
                None => tracing::info!("SIGHUP: nothing to reload"),
            },
            work = next_work(&mut reloader) => {
                if let Some(reloader) = reloader.as_mut() {
                    reloader.handle(work, &mut pipeline, egress_control.as_mut(), &metrics);
                }
            }
            event = pipeline.next() => {
                let Some(event) = event else { break Ok("reader stopped") };
                match deliver(&mut pipeline, &mut consume, &metrics, egress_control.as_mut(), event) {
                    Ok(()) => {}
                    // A closed stdout (`vigil trace | head`) is a normal way to stop.
                    Err(error) if error.kind() == io::ErrorKind::BrokenPipe => break Ok("output closed"),
                    Err(error) => break Err(error).context("writing output"),
                }
            }
        }
    };
    metrics.set_ready(false);
    // Before the probes detach themselves, which is no tampering.
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    if let Some(watch) = pod_watch {
        watch.task.abort();
    }
    let reader = pipeline.shutdown().await;
    let _ = stop_server.send(true);
    let _ = server.await;
    let reason = outcome?;
    tracing::info!(reason, "probes detached, vigil stopped");
    reader.context("the ring buffer reader failed")
}

/// The reloader's next work; never, without one (`vigil trace`).
async fn next_work(reloader: &mut Option<Reloader>) -> Work {
    match reloader {
        Some(reloader) => reloader.next().await,
        None => std::future::pending().await,
    }
}

/// Most events handled in one go. Under a constant stream of events (a syscall storm) a loop
/// that drains until the queue is empty would never return, and SIGTERM, SIGHUP and reloads
/// would wait forever.
const BATCH: usize = 1024;

fn deliver(
    pipeline: &mut Pipeline,
    consume: &mut impl FnMut(&Enriched, bool, &Metrics) -> io::Result<()>,
    metrics: &Metrics,
    mut egress: Option<&mut EgressControl>,
    first: Enriched,
) -> io::Result<()> {
    let mut current = first;
    for _ in 1..BATCH {
        if let Some(egress) = egress.as_deref_mut() {
            egress.observe(&current);
        }
        let next = pipeline.try_next();
        consume(&current, next.is_some(), metrics)?;
        match next {
            Some(event) => current = event,
            None => return Ok(()),
        }
    }
    // The batch is full: the rest waits in the pipeline's queue while the event loop looks at
    // signals and reloads.
    if let Some(egress) = egress {
        egress.observe(&current);
    }
    consume(&current, false, metrics)
}
