//! One sink's delivery loop: read a batch from the queue, send it, retry with backoff until it
//! is delivered, and acknowledge it. A batch the receiver refuses as invalid is split in halves
//! until the offending record is alone; that record is set aside, never retried forever.

use std::{
    collections::VecDeque,
    fs::OpenOptions,
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use rand::Rng as _;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::{
    SendError,
    config::{BatchConfig, RetryConfig},
    format::Format,
    queue::{Queued, SinkQueue},
    record::Record,
    sink_metrics::SinkMetrics,
    transport::Transport,
};

/// Where the agent is in its life, as the workers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Deliver everything, wait for more.
    Running,
    /// Shutting down: deliver what is queued, then stop.
    Draining,
    /// Stop now; what is queued stays in the spool.
    Stopping,
}

/// What a worker tells the dispatcher, which turns it into a record for the sinks.
#[derive(Clone, Debug, PartialEq)]
pub enum HealthEvent {
    /// Delivery has failed for longer than `alert_after`.
    Failing {
        /// The sink.
        sink: Arc<str>,
        /// The latest error.
        error: String,
        /// How long it has been failing.
        for_seconds: f64,
    },
    /// Delivery works again after a reported failure.
    Recovered {
        /// The sink.
        sink: Arc<str>,
        /// How long it was failing.
        outage_seconds: f64,
    },
    /// The receiver refused a record as invalid; it was set aside.
    Rejected {
        /// The sink.
        sink: Arc<str>,
        /// The receiver's answer.
        error: String,
        /// The record's sequence number.
        seq: u64,
    },
}

/// Delivers one sink's queue.
pub struct Worker {
    /// The sink's name.
    pub name: Arc<str>,
    /// Rendering of each record.
    pub format: Format,
    /// Batch limits.
    pub batch: BatchConfig,
    /// Backoff.
    pub retry: RetryConfig,
    /// The sink's queue.
    pub queue: Arc<SinkQueue>,
    /// The way out.
    pub transport: Transport,
    /// The sink's metrics.
    pub metrics: SinkMetrics,
    /// Where rejected records are kept (`None`: they are logged in full instead).
    pub rejected_file: Option<PathBuf>,
    /// Health reports to the dispatcher.
    pub health: mpsc::Sender<HealthEvent>,
}

/// Failure bookkeeping between attempts.
#[derive(Default)]
struct Failing {
    since: Option<Instant>,
    reported: bool,
    attempt: u32,
}

/// Whether a delivery finished or was cut short by shutdown.
enum Delivery {
    Done,
    Interrupted,
}

impl Worker {
    /// Runs until the phase says stop (or, when draining, the queue is empty).
    pub async fn run(mut self, mut phase: watch::Receiver<Phase>) {
        let mut failing = Failing::default();
        tracing::info!(sink = %self.name, target = %self.transport.describe(), pending = self.queue.pending(), "sink started");
        loop {
            let now = *phase.borrow_and_update();
            if now == Phase::Stopping {
                break;
            }
            let mut batch = match self
                .queue
                .read(self.batch.max_records, self.batch.max_bytes)
            {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(sink = %self.name, %error, "reading the sink's queue failed");
                    if !pause(Duration::from_secs(1), &mut phase).await {
                        break;
                    }
                    continue;
                }
            };
            if batch.is_empty() {
                if now == Phase::Draining {
                    break;
                }
                tokio::select! {
                    () = self.queue.wait() => {}
                    _ = phase.changed() => {}
                }
                continue;
            }
            if batch.len() < self.batch.max_records
                && !self.batch.max_wait.is_zero()
                && now == Phase::Running
            {
                pause(self.batch.max_wait, &mut phase).await;
                let used: usize = batch.iter().map(|q| q.payload.len()).sum();
                if let Ok(more) = self.queue.read(
                    self.batch.max_records - batch.len(),
                    self.batch.max_bytes.saturating_sub(used).max(1),
                ) {
                    batch.extend(more);
                }
            }
            if let Delivery::Interrupted = self.deliver(batch, &mut failing, &mut phase).await {
                break;
            }
        }
        tracing::info!(sink = %self.name, pending = self.queue.pending(), "sink stopped");
    }

    async fn deliver(
        &mut self,
        batch: Vec<Queued>,
        failing: &mut Failing,
        phase: &mut watch::Receiver<Phase>,
    ) -> Delivery {
        let Some(last_id) = batch.last().map(|q| q.id) else {
            return Delivery::Done;
        };
        let mut decoded = Vec::with_capacity(batch.len());
        for queued in batch {
            match serde_json::from_slice::<Record>(&queued.payload) {
                Ok(record) => decoded.push((queued.id, record)),
                Err(error) => self.set_aside_raw(&queued, &error.to_string()),
            }
        }
        let mut chunks = VecDeque::from([decoded]);
        while let Some(chunk) = chunks.pop_front() {
            let Some(chunk_last) = chunk.last().map(|(id, _)| *id) else {
                continue;
            };
            let records: Vec<Record> = chunk.iter().map(|(_, record)| record.clone()).collect();
            loop {
                match self.transport.send(&records, self.format).await {
                    Ok(()) => {
                        self.metrics.delivered.inc_by(records.len() as u64);
                        self.recovered(failing).await;
                        self.ack(chunk_last);
                        break;
                    }
                    Err(SendError::Rejected(error)) if records.len() > 1 => {
                        // Split and try each half; order is kept because halves go first.
                        let mut first = chunk;
                        let second = first.split_off(first.len() / 2);
                        chunks.push_front(second);
                        chunks.push_front(first);
                        tracing::debug!(sink = %self.name, %error, "batch rejected, splitting it");
                        break;
                    }
                    Err(SendError::Rejected(error)) => {
                        self.recovered(failing).await;
                        for record in &records {
                            self.set_aside(record, &error).await;
                        }
                        self.ack(chunk_last);
                        break;
                    }
                    Err(SendError::Retryable(error)) => {
                        self.metrics.failed.inc();
                        self.metrics.up.set(0);
                        self.failed(failing, &error).await;
                        let delay = backoff(&self.retry, failing.attempt);
                        failing.attempt = failing.attempt.saturating_add(1);
                        tracing::warn!(sink = %self.name, %error, retry_in_ms = delay.as_millis() as u64, records = records.len(), "delivery failed");
                        if !pause(delay, phase).await {
                            return Delivery::Interrupted;
                        }
                        self.metrics.retried.inc_by(records.len() as u64);
                    }
                }
            }
        }
        self.ack(last_id);
        Delivery::Done
    }

    fn ack(&self, id: u64) {
        if let Err(error) = self.queue.ack(id) {
            tracing::error!(sink = %self.name, %error, "acknowledging delivered records failed; they may be sent again after a restart");
        }
    }

    async fn failed(&self, failing: &mut Failing, error: &str) {
        let since = *failing.since.get_or_insert_with(Instant::now);
        let elapsed = since.elapsed();
        if !failing.reported && elapsed >= self.retry.alert_after {
            failing.reported = true;
            self.report(HealthEvent::Failing {
                sink: Arc::clone(&self.name),
                error: error.to_string(),
                for_seconds: elapsed.as_secs_f64(),
            })
            .await;
        }
    }

    async fn recovered(&self, failing: &mut Failing) {
        self.metrics.up.set(1);
        if let Some(since) = failing.since.take()
            && failing.reported
        {
            let outage_seconds = since.elapsed().as_secs_f64();
            tracing::info!(sink = %self.name, outage_seconds, "delivery recovered");
            self.report(HealthEvent::Recovered {
                sink: Arc::clone(&self.name),
                outage_seconds,
            })
            .await;
        }
        *failing = Failing::default();
    }

    async fn report(&self, event: HealthEvent) {
        // Bounded: health records are few, and a full channel must not stall delivery.
        if self.health.try_send(event).is_err() {
            tracing::warn!(sink = %self.name, "health report channel full; report skipped");
        }
    }

    async fn set_aside(&self, record: &Record, error: &str) {
        self.metrics.rejected.inc();
        tracing::error!(sink = %self.name, seq = record.seq, id = %record.id, rule = %record.rule, %error, "the receiver rejected a record; it is set aside");
        let line = json!({"error": error, "record": record});
        self.keep_rejected(&line);
        if record.source != "vigil" {
            self.report(HealthEvent::Rejected {
                sink: Arc::clone(&self.name),
                error: error.to_string(),
                seq: record.seq,
            })
            .await;
        }
    }

    fn set_aside_raw(&self, queued: &Queued, error: &str) {
        self.metrics.rejected.inc();
        tracing::error!(sink = %self.name, queue_id = queued.id, %error, "a queued record cannot be decoded; it is set aside");
        let line = json!({
            "error": format!("undecodable: {error}"),
            "raw": String::from_utf8_lossy(&queued.payload),
        });
        self.keep_rejected(&line);
    }

    fn keep_rejected(&self, line: &serde_json::Value) {
        let Some(path) = &self.rejected_file else {
            tracing::error!(sink = %self.name, record = %line, "rejected record (no spool_dir to keep it in)");
            return;
        };
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut file| writeln!(file, "{line}"));
        if let Err(error) = written {
            tracing::error!(sink = %self.name, path = %path.display(), %error, record = %line, "keeping a rejected record failed");
        }
    }
}

/// Exponential backoff with jitter: uniform in [delay/2, delay], where delay doubles per
/// attempt up to the maximum. Keeping half the delay means retries never hammer a receiver;
/// the random half spreads agents that failed together.
pub fn backoff(retry: &RetryConfig, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
    let ceiling = retry
        .initial_backoff
        .saturating_mul(factor)
        .min(retry.max_backoff);
    let floor = ceiling / 2;
    let spread = (ceiling - floor).as_millis() as u64;
    floor + Duration::from_millis(rand::rng().random_range(0..=spread))
}

/// Sleeps, waking early when told to stop; returns false if the phase became `Stopping`.
async fn pause(delay: Duration, phase: &mut watch::Receiver<Phase>) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        if *phase.borrow() == Phase::Stopping {
            return false;
        }
        tokio::select! {
            () = &mut sleep => return true,
            changed = phase.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let retry = RetryConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            alert_after: Duration::from_secs(1),
        };
        for _ in 0..100 {
            let first = backoff(&retry, 0);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let late = backoff(&retry, 30);
            assert!(late >= Duration::from_secs(1) && late <= Duration::from_secs(2));
        }
    }
}
