//! Prometheus metrics of the agent and its readiness flag.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
};

use prometheus::{
    Encoder as _, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::{
    events::syscalls::SYSCALLS,
    probes::{DROP_REASONS, SKIP_REASONS},
};

/// Event types counted besides syscalls.
const LIFECYCLE_TYPES: [&str; 5] = ["procfork", "procexec", "procexit", "egress", "dns"];

/// The agent's metrics.
pub struct Metrics {
    registry: Registry,
    events_by_type: HashMap<&'static str, IntCounter>,
    /// Records the decoder rejected.
    pub decode_errors: IntCounter,
    kernel_drops: KernelCounters,
    /// Records the kernel side left out on purpose, by reason (in `SKIP_REASONS` order).
    kernel_skipped: KernelCounters,
    /// Delay between the kernel timestamp of an event and its decoding.
    pub event_lag: Histogram,
    /// The most recent such delay, in seconds.
    pub ring_buffer_lag: prometheus::Gauge,
    /// Processes in the process table.
    pub process_table_size: IntGauge,
    /// eBPF programs attached.
    pub probes_attached: IntGauge,
    /// Syscalls the kernel side traces (the rest are left alone, at no cost).
    pub syscalls_traced: IntGauge,
    /// Alerts raised, by priority.
    pub alerts: IntCounterVec,
    /// Rules running.
    pub rules_loaded: IntGauge,
    /// Alert delivery, by sink.
    pub sinks: SinkMetricVecs,
    /// Egress calls the kernel reported (not allowed), by policy and verdict.
    pub egress_reported: IntCounterVec,
    /// Egress policies in force.
    pub egress_policies: IntGauge,
    /// Egress policy reloads, by result (`ok`, `failed`). Kept for existing dashboards;
    /// [`Metrics::count_reload`] updates it together with `reloads`.
    pub egress_reloads: IntCounterVec,
    /// Configuration reloads, by what was reloaded (`rules`, `egress`) and outcome (`ok`,
    /// `failed`).
    pub reloads: IntCounterVec,
    ready: AtomicBool,
}

/// Metrics of the Kubernetes pod watch. They are registered only when the watch runs (see
/// [`Metrics::k8s_watch`]), so a host without Kubernetes exports no `vigil_k8s_*` series that
/// would read as "down".
#[derive(Clone)]
pub struct K8sWatchMetrics {
    /// 1 while the API server answers the watch (after the first complete list), else 0.
    pub up: IntGauge,
    /// Failed lists, watch starts and broken watch streams.
    pub errors: IntCounter,
    /// Pods of this node in the metadata cache.
    pub pods: IntGauge,
}

/// Delivery metrics, labelled by sink name.
#[derive(Clone)]
pub struct SinkMetricVecs {
    /// Records the receiver accepted.
    pub delivered: IntCounterVec,
    /// Delivery attempts that failed (each failed batch counts once).
    pub failed: IntCounterVec,
    /// Records sent again after a failed attempt.
    pub retried: IntCounterVec,
    /// Records the receiver refused as invalid, set aside in the sink's rejected file.
    pub rejected: IntCounterVec,
    /// Records dropped, by reason (`queue_full`, `shutdown`, `spool_error`).
    pub dropped: IntCounterVec,
    /// Records queued and not yet delivered.
    pub queued_records: IntGaugeVec,
    /// Bytes of undelivered records in the on-disk spool.
    pub spooled_bytes: IntGaugeVec,
    /// Age of the oldest undelivered record.
    pub oldest_undelivered_seconds: GaugeVec,
    /// 1 while the last delivery attempt succeeded (or nothing was tried yet), else 0.
    pub up: IntGaugeVec,
}

impl SinkMetricVecs {
    fn register(registry: &Registry) -> Result<SinkMetricVecs, prometheus::Error> {
        fn counter(
            registry: &Registry,
            name: &str,
            help: &str,
            labels: &[&str],
        ) -> Result<IntCounterVec, prometheus::Error> {
            let vec = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(vec.clone()))?;
            Ok(vec)
        }
        fn gauge(
            registry: &Registry,
            name: &str,
            help: &str,
        ) -> Result<IntGaugeVec, prometheus::Error> {
            let vec = IntGaugeVec::new(Opts::new(name, help), &["sink"])?;
            registry.register(Box::new(vec.clone()))?;
            Ok(vec)
        }
        let oldest = GaugeVec::new(
            Opts::new(
                "sink_oldest_undelivered_seconds",
                "Age of the oldest record not yet delivered to the sink",
            ),
            &["sink"],
        )?;
        registry.register(Box::new(oldest.clone()))?;
        Ok(SinkMetricVecs {
            delivered: counter(
                registry,
                "sink_delivered_total",
                "Records delivered to the sink",
                &["sink"],
            )?,
            failed: counter(
                registry,
                "sink_failed_total",
                "Delivery attempts to the sink that failed",
                &["sink"],
            )?,
            retried: counter(
                registry,
                "sink_retried_total",
                "Records sent again after a failed attempt",
                &["sink"],
            )?,
            rejected: counter(
                registry,
                "sink_rejected_total",
                "Records the receiver refused as invalid, set aside",
                &["sink"],
            )?,
            dropped: counter(
                registry,
                "sink_dropped_total",
                "Records dropped before delivery, by reason",
                &["sink", "reason"],
            )?,
            queued_records: gauge(
                registry,
                "sink_queued_records",
                "Records queued for the sink and not yet delivered",
            )?,
            spooled_bytes: gauge(
                registry,
                "sink_spooled_bytes",
                "Bytes of undelivered records in the sink's on-disk spool",
            )?,
            oldest_undelivered_seconds: oldest,
            up: gauge(
                registry,
                "sink_up",
                "1 while the last delivery attempt to the sink succeeded",
            )?,
        })
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(Some("vigil".into()), None)?;
        let events = IntCounterVec::new(
            Opts::new("events_total", "Kernel events decoded, by event type"),
            &["type"],
        )?;
        registry.register(Box::new(events.clone()))?;
        let mut events_by_type = HashMap::new();
        for name in SYSCALLS.iter().map(|spec| spec.name).chain(LIFECYCLE_TYPES) {
            events_by_type.insert(name, events.with_label_values(&[name]));
        }

        let decode_errors = IntCounter::new(
            "decode_errors_total",
            "Ring buffer records rejected as malformed",
        )?;
        registry.register(Box::new(decode_errors.clone()))?;

        let kernel_drops = KernelCounters::register(
            &registry,
            "kernel_dropped_total",
            "Records the kernel side could not deliver, by reason",
            &DROP_REASONS,
        )?;
        let kernel_skipped = KernelCounters::register(
            &registry,
            "kernel_skipped_total",
            "Records the kernel side left out on purpose (no rule or state can use them), by reason",
            &SKIP_REASONS,
        )?;

        let event_lag = Histogram::with_opts(
            HistogramOpts::new(
                "event_lag_seconds",
                "Time from the kernel recording an event to the agent decoding it",
            )
            .buckets(vec![0.0001, 0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
        )?;
        registry.register(Box::new(event_lag.clone()))?;
        let ring_buffer_lag = prometheus::Gauge::new(
            "ring_buffer_lag_seconds",
            "Age of the most recently read ring buffer record when it was read",
        )?;
        registry.register(Box::new(ring_buffer_lag.clone()))?;
        let process_table_size =
            IntGauge::new("process_table_size", "Processes in the process table")?;
        registry.register(Box::new(process_table_size.clone()))?;
        let probes_attached = IntGauge::new("probes_attached", "eBPF programs attached")?;
        registry.register(Box::new(probes_attached.clone()))?;
        let syscalls_traced = IntGauge::new(
            "syscalls_traced",
            "Syscalls the kernel side traces: those the rules and the state need",
        )?;
        registry.register(Box::new(syscalls_traced.clone()))?;

        let alerts = IntCounterVec::new(
            Opts::new("alerts_total", "Alerts raised by the rules, by priority"),
            &["priority"],
        )?;
        registry.register(Box::new(alerts.clone()))?;
        let rules_loaded = IntGauge::new("rules_loaded", "Rules running")?;
        registry.register(Box::new(rules_loaded.clone()))?;
        let sinks = SinkMetricVecs::register(&registry)?;
        let egress_reported = IntCounterVec::new(
            Opts::new(
                "egress_reported_total",
                "Connections and sends the egress policy does not allow, by policy and verdict",
            ),
            &["policy", "verdict"],
        )?;
        registry.register(Box::new(egress_reported.clone()))?;
        let egress_policies = IntGauge::new("egress_policies", "Egress policies in force")?;
        registry.register(Box::new(egress_policies.clone()))?;
        let egress_reloads = IntCounterVec::new(
            Opts::new("egress_reloads_total", "Egress policy reloads, by result"),
            &["result"],
        )?;
        registry.register(Box::new(egress_reloads.clone()))?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "reloads_total",
                "Configuration reloads, by what was reloaded and outcome",
            ),
            &["what", "outcome"],
        )?;
        registry.register(Box::new(reloads.clone()))?;

        Ok(Metrics {
            registry,
            events_by_type,
            decode_errors,
            kernel_drops,
            kernel_skipped,
            event_lag,
            ring_buffer_lag,
            process_table_size,
            probes_attached,
            syscalls_traced,
            alerts,
            rules_loaded,
            sinks,
            egress_reported,
            egress_policies,
            egress_reloads,
            reloads,
            ready: AtomicBool::new(false),
        })
    }

    /// Registers and returns the Kubernetes pod watch's metrics; fails if they already are.
    pub fn k8s_watch(&self) -> Result<K8sWatchMetrics, prometheus::Error> {
        let up = IntGauge::new(
            "k8s_watch_up",
            "1 while the Kubernetes API server answers the node's pod watch",
        )?;
        self.registry.register(Box::new(up.clone()))?;
        let errors = IntCounter::new(
            "k8s_watch_errors_total",
            "Failed lists, watch starts and broken streams of the node's pod watch",
        )?;
        self.registry.register(Box::new(errors.clone()))?;
        let pods = IntGauge::new("k8s_pods", "Pods of this node in the metadata cache")?;
        self.registry.register(Box::new(pods.clone()))?;
        Ok(K8sWatchMetrics { up, errors, pods })
    }

    /// Counts one event of type `name`.
    pub fn count_event(&self, name: &str) {
        if let Some(counter) = self.events_by_type.get(name) {
            counter.inc();
        }
    }

    /// Events of type `name` counted so far.
    pub fn events_of_type(&self, name: &str) -> u64 {
        self.events_by_type.get(name).map_or(0, IntCounter::get)
    }

    /// Brings the drop counters up to the kernel's totals (indexed like `DROP_REASONS`).
    pub fn observe_kernel_drops(&self, totals: &[u64]) {
        self.kernel_drops.observe(totals);
    }

    /// Brings the counters of records left out on purpose up to the kernel's totals (indexed
    /// like `SKIP_REASONS`).
    pub fn observe_kernel_skipped(&self, totals: &[u64]) {
        self.kernel_skipped.observe(totals);
    }

    /// Records left out on purpose by the kernel side so far, by reason.
    pub fn kernel_skipped_by_reason(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.kernel_skipped.by_reason()
    }

    /// Records dropped by the kernel side so far, by reason (in [`DROP_REASONS`] order).
    pub fn kernel_drops_by_reason(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.kernel_drops.by_reason()
    }

    /// Counts a reload of `what` (`rules` or `egress`) that succeeded or failed.
    pub fn count_reload(&self, what: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.reloads.with_label_values(&[what, outcome]).inc();
        if what == "egress" {
            self.egress_reloads.with_label_values(&[outcome]).inc();
        }
    }

    /// Total records dropped by the kernel side so far, all reasons.
    pub fn kernel_drops_total(&self) -> u64 {
        self.kernel_drops.by_reason().map(|(_, count)| count).sum()
    }

    /// Marks the agent ready (every probe attached) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether the agent is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(%error, "encoding metrics failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// Counters that follow per-CPU totals the kernel side keeps, one per reason: the kernel's
/// totals are read now and then, and each counter grows by what its total grew since.
struct KernelCounters {
    reasons: &'static [&'static str],
    counters: Vec<IntCounter>,
    seen: std::sync::Mutex<Vec<u64>>,
}

impl KernelCounters {
    fn register(
        registry: &Registry,
        name: &str,
        help: &str,
        reasons: &'static [&'static str],
    ) -> prometheus::Result<KernelCounters> {
        let vec = IntCounterVec::new(Opts::new(name, help), &["reason"])?;
        registry.register(Box::new(vec.clone()))?;
        Ok(KernelCounters {
            reasons,
            counters: reasons
                .iter()
                .map(|reason| vec.with_label_values(&[reason]))
                .collect(),
            seen: std::sync::Mutex::new(vec![0; reasons.len()]),
        })
    }

    /// Brings the counters up to `totals` (indexed like the reasons).
    fn observe(&self, totals: &[u64]) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        for ((counter, seen), &total) in self.counters.iter().zip(seen.iter_mut()).zip(totals) {
            if total > *seen {
                counter.inc_by(total - *seen);
                *seen = total;
            }
        }
    }

    fn by_reason(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.reasons
            .iter()
            .copied()
            .zip(self.counters.iter().map(IntCounter::get))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloads_are_counted_by_what_and_outcome() {
        let metrics = Metrics::new().unwrap();
        metrics.count_reload("rules", true);
        metrics.count_reload("rules", false);
        metrics.count_reload("egress", false);
        let text = metrics.render();
        for line in [
            "vigil_reloads_total{outcome=\"ok\",what=\"rules\"} 1",
            "vigil_reloads_total{outcome=\"failed\",what=\"rules\"} 1",
            "vigil_reloads_total{outcome=\"failed\",what=\"egress\"} 1",
            // The older egress-only metric keeps counting.
            "vigil_egress_reloads_total{result=\"failed\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from {text}");
        }
        assert!(!text.contains("vigil_egress_reloads_total{result=\"ok\"}"));
    }

    #[test]
    fn counts_and_renders() {
        let metrics = Metrics::new().unwrap();
        metrics.count_event("openat");
        metrics.count_event("openat");
        metrics.count_event("no-such-type");
        metrics.observe_kernel_drops(&[3, 0, 0]);
        metrics.observe_kernel_drops(&[5, 0, 1]);
        assert_eq!(metrics.events_of_type("openat"), 2);
        assert_eq!(metrics.kernel_drops_total(), 6);
        let text = metrics.render();
        assert!(
            text.contains("vigil_events_total{type=\"openat\"} 2"),
            "{text}"
        );
        assert!(text.contains("vigil_kernel_dropped_total{reason=\"ring_buffer_full\"} 5"));
        assert_eq!(
            metrics.kernel_drops_by_reason().collect::<Vec<_>>(),
            [
                ("ring_buffer_full", 5),
                ("pending_map_full", 0),
                ("exec_map_full", 1)
            ]
        );
        assert!(!metrics.is_ready());
        metrics.set_ready(true);
        assert!(metrics.is_ready());
    }
}
