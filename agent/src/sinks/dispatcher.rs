//! The fan-out: gives every alert its id and sequence number, queues it for every sink whose
//! filter it passes, and runs the agent's own records (started, heartbeat, health).

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use serde_json::{Map, Value, json};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use super::{
    config::{DeliveryConfig, SinkConfig, SinkFilter},
    context::ContextExtractor,
    identity::{Identity, IdentityError, PreviousRun},
    queue::{Pushed, SinkQueue},
    record::{Record, RecordKind},
    sink_metrics::SinkMetrics,
    spool::{Spool, SpoolConfig, SpoolError},
    transport::{Transport, TransportError},
    worker::{HealthEvent, Phase, Worker},
};
use crate::{
    clock::now_unix_ns,
    enrich::Enriched,
    metrics::Metrics,
    output::json::rfc3339,
    rules::{alert::Alert, loader::Priority, output::clock_time},
};

/// Segment size of the spools.
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// How often queue gauges, fsync and drop notices are looked after.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// Why delivery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// A sink's transport could not be built.
    #[error("sink {sink}: {source}")]
    Transport {
        /// The sink.
        sink: String,
        /// The reason.
        source: TransportError,
    },
    /// A sink's spool could not be opened.
    #[error("sink {sink}: spool: {source}")]
    Spool {
        /// The sink.
        sink: String,
        /// The reason.
        source: SpoolError,
    },
    /// The agent state could not be read.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// Delivery to every configured sink.
pub struct Dispatcher {
    shared: Arc<Shared>,
    phase: watch::Sender<Phase>,
    workers: Vec<JoinHandle<()>>,
    helpers: Vec<JoinHandle<()>>,
    drain_timeout: Duration,
}

struct Shared {
    identity: Mutex<Identity>,
    sinks: Vec<Slot>,
    hostname: Arc<str>,
    context: ContextExtractor,
    started: Instant,
}

struct Slot {
    name: Arc<str>,
    filter: SinkFilter,
    queue: Arc<SinkQueue>,
    metrics: SinkMetrics,
    /// Drops not yet reported by a `Vigil alerts dropped` record.
    unreported_drops: Mutex<u64>,
}

impl Dispatcher {
    /// Opens the spools, starts one worker per sink and the agent's own records, and sends
    /// `Vigil agent started`. Must run inside a tokio runtime.
    pub fn start(
        config: &DeliveryConfig,
        metrics: &Metrics,
        hostname: Arc<str>,
    ) -> Result<Dispatcher, DispatchError> {
        let (identity, previous) = match &config.spool_dir {
            Some(dir) => Identity::open(dir)?,
            None => (
                Identity::ephemeral(),
                PreviousRun {
                    down_seconds: None,
                    clean_shutdown: None,
                },
            ),
        };
        let (phase, phase_rx) = watch::channel(Phase::Running);
        let (health_tx, health_rx) = mpsc::channel(64);
        let mut sinks = Vec::with_capacity(config.sinks.len());
        let mut workers = Vec::with_capacity(config.sinks.len());
        for sink in &config.sinks {
            let transport =
                Transport::new(&sink.kind).map_err(|source| DispatchError::Transport {
                    sink: sink.name.clone(),
                    source,
                })?;
            let queue = Arc::new(open_queue(sink, config)?);
            let name: Arc<str> = Arc::from(sink.name.as_str());
            let sink_metrics = SinkMetrics::new(metrics, &sink.name);
            let worker = Worker {
                name: Arc::clone(&name),
                format: sink.format,
                batch: sink.batch,
                retry: sink.retry,
                queue: Arc::clone(&queue),
                transport,
                metrics: sink_metrics.clone(),
                rejected_file: config
                    .spool_dir
                    .as_ref()
                    .map(|dir| dir.join(format!("{}.rejected.jsonl", sink.name))),
                health: health_tx.clone(),
            };
            workers.push(tokio::spawn(worker.run(phase_rx.clone())));
            sinks.push(Slot {
                name,
                filter: sink.filter.clone(),
                queue,
                metrics: sink_metrics,
                unreported_drops: Mutex::new(0),
            });
        }
        let shared = Arc::new(Shared {
            identity: Mutex::new(identity),
            sinks,
            hostname,
            context: ContextExtractor::new(),
            started: Instant::now(),
        });
        shared.submit_agent(started_record(previous));
        let mut helpers = vec![
            tokio::spawn(housekeeping(Arc::clone(&shared), phase_rx.clone())),
            tokio::spawn(health(Arc::clone(&shared), health_rx)),
        ];
        if let Some(interval) = config.heartbeat_interval {
            helpers.push(tokio::spawn(heartbeat(
                Arc::clone(&shared),
                interval,
                phase_rx,
            )));
        }
        Ok(Dispatcher {
            shared,
            phase,
            workers,
            helpers,
            drain_timeout: config.drain_timeout,
        })
    }

    /// Queues an alert for every sink whose filter it passes. Never blocks on a sink.
    pub fn submit_alert(&self, alert: &Alert, event: &Enriched) {
        let context = self.shared.context.extract(event);
        self.submit_with_context(alert, event.time_ns, context);
    }

    /// Queues an alert whose context fields were already extracted.
    pub fn submit_with_context(
        &self,
        alert: &Alert,
        time_unix_ns: i64,
        context: Map<String, Value>,
    ) {
        let seq = self.shared.identity().next_seq();
        let record = Record::from_alert(alert, time_unix_ns, context, new_id(), seq);
        self.shared.fan_out(&record, false);
    }

    /// Queues one of the agent's own records about itself (kind `agent_health`, source
    /// `vigil`) for every sink: like the other agent records it passes every filter, since it
    /// describes the agent that produces the alerts. Never blocks on a sink.
    pub fn submit_health(&self, notice: AgentNotice) {
        self.shared.submit_agent(AgentRecord {
            kind: RecordKind::AgentHealth,
            rule: notice.rule,
            priority: notice.priority,
            tag: notice.tag,
            text: notice.text,
            fields: notice.fields,
        });
    }

    /// Makes the kernel side's losses visible downstream: from now on, at most once a second, a
    /// `Vigil kernel events dropped` record reports how many records the kernel could not
    /// deliver since the previous one (as `metrics` counts them from the `DROPS` map). Without
    /// it a ring buffer flood shows only in `vigil_kernel_dropped_total`, which a SIEM does not
    /// scrape.
    pub fn report_kernel_drops(&mut self, metrics: Arc<Metrics>) {
        let phase = self.phase.subscribe();
        self.helpers.push(tokio::spawn(kernel_drops(
            Arc::clone(&self.shared),
            metrics,
            phase,
        )));
    }

    /// The sequence number of the latest record.
    pub fn last_seq(&self) -> u64 {
        self.shared.identity().last_seq()
    }

    /// Delivers what is queued within the drain timeout, then stops the workers; what is left
    /// stays in the spools (or is counted as dropped for memory queues).
    pub async fn shutdown(self) {
        let _ = self.phase.send(Phase::Draining);
        let deadline = tokio::time::Instant::now() + self.drain_timeout;
        let mut running = Vec::new();
        for mut worker in self.workers {
            // A handle must not be polled again once it has completed.
            if tokio::time::timeout_at(deadline, &mut worker)
                .await
                .is_err()
            {
                running.push(worker);
            }
        }
        let _ = self.phase.send(Phase::Stopping);
        for worker in running {
            let _ = worker.await;
        }
        for helper in self.helpers {
            helper.abort();
            // Wait for it to be dropped: it holds the queues, and their spool locks.
            let _ = helper.await;
        }
        for slot in &self.shared.sinks {
            let pending = slot.queue.pending();
            if let Err(error) = slot.queue.sync() {
                tracing::error!(sink = %slot.name, %error, "syncing the spool failed");
            }
            if pending == 0 {
                continue;
            }
            if slot.queue.is_durable() {
                tracing::warn!(sink = %slot.name, pending, "undelivered records stay in the spool and are sent after the restart");
            } else {
                slot.metrics.dropped_shutdown.inc_by(pending);
                tracing::error!(sink = %slot.name, lost = pending, "undelivered records lost at shutdown: the sink has no spool (set spool_dir)");
            }
        }
        if let Err(error) = self.shared.identity().shutdown() {
            tracing::error!(%error, "recording the clean shutdown failed");
        }
    }
}

fn open_queue(sink: &SinkConfig, config: &DeliveryConfig) -> Result<SinkQueue, DispatchError> {
    let Some(dir) = &config.spool_dir else {
        return Ok(SinkQueue::memory(
            sink.queue.max_records,
            sink.queue.when_full,
        ));
    };
    let spool_config = SpoolConfig {
        dir: dir.join(&sink.name),
        max_bytes: sink.queue.max_bytes,
        segment_bytes: SEGMENT_BYTES.min(sink.queue.max_bytes / 4).max(64 * 1024),
        fsync: config.fsync,
        when_full: sink.queue.when_full,
    };
    let (spool, report) = Spool::open(spool_config).map_err(|source| DispatchError::Spool {
        sink: sink.name.clone(),
        source,
    })?;
    if report.pending_records > 0 {
        tracing::info!(sink = %sink.name, records = report.pending_records, bytes = report.pending_bytes, "replaying spooled records from before the restart");
    }
    Ok(SinkQueue::disk(spool))
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Shared {
    fn identity(&self) -> MutexGuard<'_, Identity> {
        self.identity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Numbers and queues one of the agent's own records; they pass every filter, since they
    /// describe the delivery path itself.
    fn submit_agent(&self, draft: AgentRecord) {
        let seq = self.identity().next_seq();
        let now = now_unix_ns();
        let mut output_fields = draft.fields;
        output_fields.insert("vigil.version".into(), env!("CARGO_PKG_VERSION").into());
        let record = Record {
            id: new_id(),
            seq,
            kind: draft.kind,
            hostname: self.hostname.to_string(),
            time_unix_ns: now,
            time: rfc3339(now),
            detected_unix_ns: now,
            rule: draft.rule.to_string(),
            priority: draft.priority.as_str().to_string(),
            output: format!(
                "{}: {} {}",
                clock_time(now),
                draft.priority.as_str(),
                draft.text
            ),
            output_fields,
            tags: vec!["vigil".into(), draft.tag.into()],
            source: "vigil".into(),
            context: Map::new(),
        };
        self.fan_out(&record, draft.kind == RecordKind::AgentHealth);
    }

    fn fan_out(&self, record: &Record, is_drop_notice: bool) {
        let payload = match serde_json::to_vec(record) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(%error, seq = record.seq, "serialising a record failed");
                return;
            }
        };
        let agent_record = record.source == "vigil";
        let now = now_unix_ns();
        for slot in &self.sinks {
            if !agent_record && !slot.filter.passes(record) {
                continue;
            }
            let dropped = match slot.queue.push(&payload, now) {
                Ok(Pushed::Stored { evicted }) => evicted,
                Ok(Pushed::Dropped) => 1,
                Err(error) => {
                    slot.metrics.dropped_spool_error.inc();
                    tracing::error!(sink = %slot.name, %error, seq = record.seq, "the spool could not store a record");
                    self.note_drop(slot, 1, is_drop_notice);
                    continue;
                }
            };
            if dropped > 0 {
                slot.metrics.dropped_full.inc_by(dropped);
                self.note_drop(slot, dropped, is_drop_notice);
            }
        }
    }

    fn note_drop(&self, slot: &Slot, count: u64, is_drop_notice: bool) {
        // A notice that is itself dropped is counted in the metric but not re-reported, or a
        // full queue would generate notices forever.
        if !is_drop_notice {
            *lock(&slot.unreported_drops) += count;
        }
    }

    fn report_drops(&self) {
        for slot in &self.sinks {
            let count = std::mem::take(&mut *lock(&slot.unreported_drops));
            if count == 0 {
                continue;
            }
            tracing::error!(sink = %slot.name, dropped = count, "alerts dropped: the sink's queue is full");
            let mut fields = Map::new();
            fields.insert("vigil.sink".into(), slot.name.to_string().into());
            fields.insert("vigil.dropped".into(), count.into());
            fields.insert("vigil.reason".into(), "queue_full".into());
            self.submit_agent(AgentRecord {
                kind: RecordKind::AgentHealth,
                rule: "Vigil alerts dropped",
                priority: Priority::Critical,
                tag: "health",
                text: format!(
                    "Vigil dropped alerts for a sink whose queue is full (sink={} dropped={count})",
                    slot.name
                ),
                fields,
            });
        }
    }

    fn update_gauges(&self) {
        let now = now_unix_ns();
        for slot in &self.sinks {
            slot.metrics.queued.set(slot.queue.pending() as i64);
            slot.metrics.spooled_bytes.set(if slot.queue.is_durable() {
                slot.queue.pending_bytes() as i64
            } else {
                0
            });
            let age = slot
                .queue
                .oldest_pending_unix_ns()
                .map_or(0.0, |created| (now - created).max(0) as f64 / 1e9);
            slot.metrics.oldest_seconds.set(age);
            if let Err(error) = slot.queue.sync_if_due() {
                tracing::error!(sink = %slot.name, %error, "syncing the spool failed");
            }
        }
    }
}

fn lock(counter: &Mutex<u64>) -> MutexGuard<'_, u64> {
    counter
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SinkFilter {
    /// Whether an alert goes to the sink.
    pub fn passes(&self, record: &Record) -> bool {
        if let Some(min) = self.min_priority {
            match record.priority.parse::<Priority>() {
                Ok(priority) if priority <= min => {}
                _ => return false,
            }
        }
        if !self.rules.is_empty() && !self.rules.contains(&record.rule) {
            return false;
        }
        self.tags.is_empty() || self.tags.iter().any(|tag| record.tags.contains(tag))
    }
}

/// One of the agent's own records about itself, for [`Dispatcher::submit_health`].
#[derive(Clone, Debug)]
pub struct AgentNotice {
    /// The record's rule name, e.g. `Vigil configuration reloaded`.
    pub rule: &'static str,
    /// How much attention it deserves.
    pub priority: Priority,
    /// The tag after `vigil`: `health` for problems, `lifecycle` for changes of the agent.
    pub tag: &'static str,
    /// The output text after the time and priority.
    pub text: String,
    /// Output fields (`vigil.*`); `vigil.version` is added.
    pub fields: Map<String, Value>,
}

/// One of the agent's own records before it is numbered.
struct AgentRecord {
    kind: RecordKind,
    rule: &'static str,
    priority: Priority,
    tag: &'static str,
    text: String,
    fields: Map<String, Value>,
}

fn started_record(previous: PreviousRun) -> AgentRecord {
    let stop = match previous.clean_shutdown {
        Some(true) => "clean",
        Some(false) => "unclean",
        None => "unknown",
    };
    let down = previous
        .down_seconds
        .map_or_else(|| "unknown".to_string(), |s| format!("{s:.3}s"));
    let mut fields = Map::new();
    fields.insert(
        "vigil.down_seconds".into(),
        previous.down_seconds.map_or(Value::Null, |s| json!(s)),
    );
    fields.insert("vigil.previous_stop".into(), stop.into());
    AgentRecord {
        kind: RecordKind::AgentStarted,
        rule: "Vigil agent started",
        // An unclean stop means a blind window: worth more attention than a restart.
        priority: if previous.clean_shutdown == Some(false) {
            Priority::Warning
        } else {
            Priority::Notice
        },
        tag: "lifecycle",
        text: format!("Vigil agent started (down={down} previous_stop={stop})"),
        fields,
    }
}

async fn heartbeat(shared: Arc<Shared>, interval: Duration, mut phase: watch::Receiver<Phase>) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = phase.changed() => return,
        }
        let uptime = shared.started.elapsed().as_secs();
        let next = shared.identity().last_seq() + 1;
        let mut fields = Map::new();
        fields.insert("vigil.uptime_seconds".into(), uptime.into());
        fields.insert("vigil.seq".into(), next.into());
        shared.submit_agent(AgentRecord {
            kind: RecordKind::Heartbeat,
            rule: "Vigil heartbeat",
            priority: Priority::Informational,
            tag: "heartbeat",
            text: format!("Vigil heartbeat (seq={next} uptime={uptime}s)"),
            fields,
        });
        if let Err(error) = shared.identity().touch() {
            tracing::warn!(%error, "recording the heartbeat time failed");
        }
    }
}

/// Kernel drop totals already reported, by reason (in [`crate::probes::DROP_REASONS`] order).
#[derive(Default)]
struct KernelDrops {
    reported: Vec<u64>,
}

impl KernelDrops {
    /// The record to send for the drops counted since the previous call, if any.
    fn record(
        &mut self,
        totals: impl IntoIterator<Item = (&'static str, u64)>,
    ) -> Option<AgentRecord> {
        let totals: Vec<(&'static str, u64)> = totals.into_iter().collect();
        self.reported.resize(totals.len(), 0);
        let mut dropped = 0;
        let mut reasons = Vec::new();
        for ((reason, total), reported) in totals.iter().zip(&mut self.reported) {
            if *total > *reported {
                dropped += *total - *reported;
                reasons.push(*reason);
                *reported = *total;
            }
        }
        if dropped == 0 {
            return None;
        }
        let dropped_total: u64 = totals.iter().map(|(_, total)| total).sum();
        // Usually one reason; several in the same second are listed together rather than sent
        // as several records, so there is at most one record a second.
        let reason = reasons.join(",");
        let mut fields = Map::new();
        fields.insert("vigil.dropped".into(), dropped.into());
        fields.insert("vigil.dropped_total".into(), dropped_total.into());
        fields.insert("vigil.reason".into(), reason.clone().into());
        Some(AgentRecord {
            kind: RecordKind::AgentHealth,
            rule: "Vigil kernel events dropped",
            priority: Priority::Critical,
            tag: "health",
            text: format!(
                "Vigil lost kernel events: the kernel side could not deliver them, so no rule saw them (dropped={dropped} dropped_total={dropped_total} reason={reason})"
            ),
            fields,
        })
    }
}

async fn kernel_drops(
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    mut phase: watch::Receiver<Phase>,
) {
    let mut drops = KernelDrops::default();
    let mut ticker = tokio::time::interval(HOUSEKEEPING);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = phase.changed() => if changed.is_err() { return },
        }
        if let Some(record) = drops.record(metrics.kernel_drops_by_reason()) {
            tracing::error!(
                dropped = %record.fields["vigil.dropped"],
                dropped_total = %record.fields["vigil.dropped_total"],
                reason = %record.fields["vigil.reason"],
                "kernel events dropped: rules did not see them"
            );
            shared.submit_agent(record);
        }
    }
}

async fn housekeeping(shared: Arc<Shared>, mut phase: watch::Receiver<Phase>) {
    let mut ticker = tokio::time::interval(HOUSEKEEPING);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = phase.changed() => if changed.is_err() { return },
        }
        shared.report_drops();
        shared.update_gauges();
    }
}

async fn health(shared: Arc<Shared>, mut events: mpsc::Receiver<HealthEvent>) {
    while let Some(event) = events.recv().await {
        let mut fields = Map::new();
        let (rule, priority, text) = match event {
            HealthEvent::Failing {
                sink,
                error,
                for_seconds,
            } => {
                let queued = shared
                    .sinks
                    .iter()
                    .find(|slot| slot.name == sink)
                    .map_or(0, |slot| slot.queue.pending());
                tracing::error!(%sink, %error, for_seconds, queued, "sink delivery failing");
                let text = format!(
                    "Vigil cannot deliver alerts to a sink (sink={sink} failing_for={for_seconds:.1}s queued={queued} error={error})"
                );
                fields.insert("vigil.sink".into(), sink.to_string().into());
                fields.insert("vigil.error".into(), error.into());
                fields.insert("vigil.failing_seconds".into(), json!(for_seconds));
                fields.insert("vigil.queued".into(), queued.into());
                ("Vigil sink delivery failing", Priority::Error, text)
            }
            HealthEvent::Recovered {
                sink,
                outage_seconds,
            } => {
                fields.insert("vigil.sink".into(), sink.to_string().into());
                fields.insert("vigil.outage_seconds".into(), json!(outage_seconds));
                let text = format!(
                    "Vigil delivers to the sink again (sink={sink} outage={outage_seconds:.1}s)"
                );
                ("Vigil sink delivery recovered", Priority::Notice, text)
            }
            HealthEvent::Rejected { sink, error, seq } => {
                fields.insert("vigil.sink".into(), sink.to_string().into());
                fields.insert("vigil.error".into(), error.clone().into());
                fields.insert("vigil.rejected_seq".into(), seq.into());
                let text = format!(
                    "A sink rejected an alert; it was set aside (sink={sink} seq={seq} error={error})"
                );
                ("Vigil alert rejected by sink", Priority::Error, text)
            }
        };
        shared.submit_agent(AgentRecord {
            kind: RecordKind::AgentHealth,
            rule,
            priority,
            tag: "health",
            text,
            fields,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_drops_are_reported_as_increases_since_the_last_record() {
        let mut drops = KernelDrops::default();
        let reasons = |totals: [u64; 3]| {
            ["ring_buffer_full", "pending_map_full", "exec_map_full"]
                .into_iter()
                .zip(totals)
        };
        assert!(drops.record(reasons([0, 0, 0])).is_none());
        let first = drops.record(reasons([7, 0, 0])).expect("a record");
        assert_eq!(first.rule, "Vigil kernel events dropped");
        assert_eq!(first.priority, Priority::Critical);
        assert_eq!(first.tag, "health");
        assert_eq!(first.kind, RecordKind::AgentHealth);
        assert_eq!(first.fields["vigil.dropped"], 7);
        assert_eq!(first.fields["vigil.dropped_total"], 7);
        assert_eq!(first.fields["vigil.reason"], "ring_buffer_full");
        // Nothing new: no record.
        assert!(drops.record(reasons([7, 0, 0])).is_none());
        let second = drops.record(reasons([10, 0, 2])).expect("a record");
        assert_eq!(second.fields["vigil.dropped"], 5);
        assert_eq!(second.fields["vigil.dropped_total"], 12);
        assert_eq!(
            second.fields["vigil.reason"],
            "ring_buffer_full,exec_map_full"
        );
        assert!(
            second.text.contains("dropped=5 dropped_total=12"),
            "{}",
            second.text
        );
    }

    #[tokio::test]
    async fn health_notices_reach_every_sink_as_agent_records() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("alerts.jsonl");
        let yaml = format!(
            "sinks:\n  - type: file\n    name: audit\n    path: {}\n    rules: [Some rule]\nheartbeat_interval: off\n",
            file.display()
        );
        let config =
            DeliveryConfig::parse(&yaml, std::path::Path::new("test.yaml")).expect("config");
        let metrics = Metrics::new().expect("metrics");
        let dispatcher =
            Dispatcher::start(&config, &metrics, Arc::from("test-host")).expect("dispatcher");
        let mut fields = Map::new();
        fields.insert("vigil.reload".into(), "rules".into());
        dispatcher.submit_health(AgentNotice {
            rule: "Vigil configuration reload failed",
            priority: Priority::Error,
            tag: "health",
            text: "Vigil could not reload its configuration".into(),
            fields,
        });
        dispatcher.shutdown().await;
        let text = std::fs::read_to_string(&file).expect("file sink output");
        let records: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("JSON"))
            .collect();
        // Passes the sink's rule filter, like every agent record.
        let notice = records
            .iter()
            .find(|r| r["rule"] == "Vigil configuration reload failed")
            .unwrap_or_else(|| panic!("{records:?}"));
        assert_eq!(notice["priority"], "Error");
        assert_eq!(notice["source"], "vigil");
        assert_eq!(notice["tags"], json!(["vigil", "health"]));
        assert_eq!(notice["output_fields"]["vigil.reload"], "rules");
        assert!(notice["output_fields"]["vigil.version"].is_string());
    }
}
