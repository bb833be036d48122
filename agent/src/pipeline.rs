//! The data path from kernel to consumer: ring buffer -> decode -> enrich -> bounded channel.
//!
//! The channel is bounded on purpose: when the consumer falls behind, the reader stops draining
//! the ring buffer and the kernel side counts what it cannot deliver, so loss is visible in
//! `vigil_kernel_dropped_total` instead of hidden in an unbounded queue.

use std::{path::PathBuf, sync::Arc, time::Duration};

use aya::maps::{MapData, RingBuf};
use thiserror::Error;
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::mpsc,
    task::JoinHandle,
    time::Instant,
};

use crate::{
    clock::BootClock,
    enrich::{Enriched, Enricher, StateConfig},
    events::{EventKind, decode},
    host::mounts::{self, MountError},
    metrics::Metrics,
    probes::{
        DropCounters, PollSchedule, ProbeError, ProbeOptions, Probes, ReaderPolls,
        egress::EgressMaps,
    },
};

/// Most events handed to the consumer at once: a batch wakes it once, where single events
/// woke it (a context switch, the most expensive thing the agent did) for nearly every one.
const BATCH: usize = 256;

/// Why the pipeline could not start or stopped.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The probes failed.
    #[error(transparent)]
    Probes(#[from] ProbeError),
    /// cgroup v2 could not be found.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// Polling the ring buffer failed.
    #[error("reading the ring buffer failed: {0}")]
    RingBuffer(#[source] std::io::Error),
}

/// Everything the pipeline needs to start.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Probe settings.
    pub probes: ProbeOptions,
    /// State settings.
    pub state: StateConfig,
    /// Capacity of the channel to the consumer, in events.
    pub channel_capacity: usize,
}

impl PipelineConfig {
    /// Defaults for this host: /proc, the cgroup v2 mount found in /proc/self/mounts.
    pub fn for_host(
        max_processes: std::num::NonZeroUsize,
    ) -> Result<PipelineConfig, PipelineError> {
        let cgroup_root = mounts::cgroup2_mount()?;
        Ok(PipelineConfig {
            probes: ProbeOptions {
                cgroup_root: Some(cgroup_root.clone()),
                ..ProbeOptions::default()
            },
            state: StateConfig {
                proc_root: PathBuf::from("/proc"),
                cgroup_root,
                max_processes,
                capture_env: false,
                runtime_roots: crate::state::container_meta::RuntimeRoots::default(),
            },
            channel_capacity: 4096,
        })
    }
}

/// A running pipeline. Dropping it detaches the probes.
pub struct Pipeline {
    /// Batches from the reader: one wakeup of the consumer per batch, not per event.
    events: mpsc::Receiver<Vec<Enriched>>,
    /// The rest of the batch being consumed.
    pending: std::collections::VecDeque<Enriched>,
    egress: Option<EgressMaps>,
    reader: JoinHandle<Result<(), PipelineError>>,
    poller: JoinHandle<()>,
    metrics: Arc<Metrics>,
    // Last: the probes must outlive the tasks reading their maps.
    probes: Probes,
}

impl Pipeline {
    /// Attaches the probes, seeds state from /proc, and starts reading.
    ///
    /// The probes attach before /proc is read, so a process started in between is seen either
    /// in /proc or through its fork event; never neither.
    pub async fn start(
        config: PipelineConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Pipeline, PipelineError> {
        let mut probes = Probes::load(&config.probes)?;
        metrics.probes_attached.set(probes.attached().len() as i64);
        metrics.syscalls_traced.set(probes.traced_syscalls() as i64);

        let mut enricher = Enricher::new(config.state);
        let seeded = enricher.seed();
        probes.seed_parents(enricher.parent_links())?;
        metrics.process_table_size.set(seeded as i64);
        tracing::info!(
            processes = seeded,
            probes = probes.attached().len(),
            "probes attached, process table seeded"
        );

        let egress = if probes.egress_attached() {
            Some(probes.take_egress_maps()?)
        } else {
            None
        };
        let ring = probes.take_ring_buffer()?;
        let polls = probes.take_reader_state()?;
        let drops = probes.take_drop_counters()?;
        let (tx, rx) = mpsc::channel((config.channel_capacity / BATCH).max(1));
        let reader = tokio::spawn(read_ring(
            ring,
            polls,
            config.probes.poll_schedule(),
            enricher,
            Arc::clone(&metrics),
            tx,
        ));
        let poller = tokio::spawn(poll_drops(drops, Arc::clone(&metrics)));
        metrics.set_ready(probes.all_attached());
        Ok(Pipeline {
            events: rx,
            pending: std::collections::VecDeque::new(),
            egress,
            reader,
            poller,
            metrics,
            probes,
        })
    }

    /// The egress policy maps, when the egress programs are attached (taken once).
    pub fn take_egress_maps(&mut self) -> Option<EgressMaps> {
        self.egress.take()
    }

    /// The next enriched event; `None` once the reader stopped.
    pub async fn next(&mut self) -> Option<Enriched> {
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        self.pending = self.events.recv().await?.into();
        self.pending.pop_front()
    }

    /// The next enriched event if one is ready now, without waiting.
    pub fn try_next(&mut self) -> Option<Enriched> {
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        self.pending = self.events.try_recv().ok()?.into();
        self.pending.pop_front()
    }

    /// Names of the attached programs.
    pub fn attached(&self) -> &[&'static str] {
        self.probes.attached()
    }

    /// The attached programs' names and kernel ids.
    pub fn program_ids(&self) -> Vec<(String, u32)> {
        self.probes.program_ids()
    }

    /// Changes what the running probes capture (after a rules reload): the syscalls traced
    /// and whether I/O buffers are copied. Events already in the ring buffer or the channel
    /// were captured under the previous settings.
    pub fn set_interest(
        &mut self,
        syscalls: impl IntoIterator<Item = crate::events::syscalls::Syscall>,
        capture_buffers: bool,
        skip_failed: &[crate::events::syscalls::Syscall],
    ) -> Result<(), PipelineError> {
        self.probes
            .set_interest(syscalls, capture_buffers, skip_failed)?;
        self.metrics
            .syscalls_traced
            .set(self.probes.traced_syscalls() as i64);
        Ok(())
    }

    /// Stops reading and detaches the probes; returns the reader's error, if it failed.
    pub async fn shutdown(self) -> Result<(), PipelineError> {
        self.poller.abort();
        self.reader.abort();
        let outcome = match self.reader.await {
            Ok(result) => result,
            Err(_) => Ok(()),
        };
        drop(self.probes);
        outcome
    }
}

/// Decodes and enriches one record: the whole per-event userspace cost, shared by the reader
/// and the benchmarks.
pub fn handle_record(enricher: &mut Enricher, metrics: &Metrics, bytes: &[u8]) -> Option<Enriched> {
    match decode::decode(bytes) {
        Ok(event) => {
            metrics.count_event(event.type_name());
            if let EventKind::Dns(message) = &event.kind {
                // Not an event of the receiving workload: only its names are kept.
                learn_names(message);
                return None;
            }
            let lag_ns = BootClock::boot_now_ns().saturating_sub(event.task.ts_boot_ns);
            let lag = lag_ns as f64 / 1e9;
            metrics.event_lag.observe(lag);
            metrics.ring_buffer_lag.set(lag);
            Some(enricher.enrich(event))
        }
        Err(error) => {
            metrics.decode_errors.inc();
            tracing::debug!(%error, len = bytes.len(), "rejected a malformed record");
            None
        }
    }
}

fn learn_names(message: &[u8]) {
    let Some(answer) = crate::egress::dns::parse_response(message) else {
        return;
    };
    let names = crate::rules::dns::global();
    for (ip, ttl) in answer.addresses {
        names.learn(ip, &answer.name, Duration::from_secs(u64::from(ttl)));
    }
}

/// Reads the ring buffer until the consumer goes away.
///
/// The kernel wakes this reader at most once per wakeup interval per CPU, and not while the
/// reader has promised (in `polls`) to read anyway: `schedule` says when it reads without a
/// wakeup and what it promises.
async fn read_ring(
    ring: RingBuf<MapData>,
    mut polls: ReaderPolls,
    mut schedule: Option<PollSchedule>,
    mut enricher: Enricher,
    metrics: Arc<Metrics>,
    tx: mpsc::Sender<Vec<Enriched>>,
) -> Result<(), PipelineError> {
    // SAFETY: the RingBuf owns its map fd and keeps it open, unchanged, until it is dropped,
    // which only happens when the AsyncFd is dropped.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|error| PipelineError::RingBuffer(error.into()))?;
    loop {
        let woken = match schedule.as_ref().and_then(PollSchedule::deadline) {
            Some(deadline) => tokio::select! {
                ready = ring.readable_mut() => Some(ready),
                () = tokio::time::sleep_until(deadline.into()) => None,
            },
            None => Some(ring.readable_mut().await),
        };
        // Readiness is cleared before reading, so a wakeup that arrives while reading is kept.
        if let Some(ready) = woken {
            ready.map_err(PipelineError::RingBuffer)?.clear_ready();
        }
        let buffer = ring.get_mut();
        let mut read = 0usize;
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(item) = buffer.next() {
            read += 1;
            let enriched = handle_record(&mut enricher, &metrics, &item);
            drop(item);
            if let Some(enriched) = enriched {
                batch.push(enriched);
                if batch.len() == BATCH
                    && tx
                        .send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                        .await
                        .is_err()
                {
                    // The consumer is gone: nothing left to do.
                    return Ok(());
                }
            }
        }
        if !batch.is_empty() && tx.send(batch).await.is_err() {
            return Ok(());
        }
        // The boot clock first, so the promise is measured from no later than `now`.
        let boot_now = BootClock::boot_now_ns();
        let now = Instant::now();
        if let Some(schedule) = schedule.as_mut()
            && let Some(until) = schedule.after_read(read > 0, now.into_std(), boot_now)
            && let Err(error) = polls.set(until)
        {
            // The kernel side then wakes the reader as if it were not polling.
            tracing::debug!(%error, "cannot tell the probes when the reader polls");
        }
        if read > 0 {
            metrics
                .process_table_size
                .set(enricher.process_count() as i64);
        }
    }
}

async fn poll_drops(drops: DropCounters, metrics: Arc<Metrics>) {
    let mut interval = tokio::time::interval(Duration::from_millis(500));
    loop {
        interval.tick().await;
        match drops.read() {
            Ok(totals) => metrics.observe_kernel_drops(&totals),
            Err(error) => tracing::warn!(%error, "reading the kernel drop counters failed"),
        }
        match drops.read_skipped() {
            Ok(totals) => metrics.observe_kernel_skipped(&totals),
            Err(error) => tracing::warn!(%error, "reading the kernel skip counters failed"),
        }
    }
}
