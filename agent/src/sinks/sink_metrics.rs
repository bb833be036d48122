//! One sink's handles into the delivery metrics.

use prometheus::{Gauge, IntCounter, IntGauge};

use crate::metrics::Metrics;

/// The metrics of one sink, resolved once.
#[derive(Clone)]
pub struct SinkMetrics {
    /// Records delivered.
    pub delivered: IntCounter,
    /// Failed attempts.
    pub failed: IntCounter,
    /// Records sent again.
    pub retried: IntCounter,
    /// Records set aside as rejected.
    pub rejected: IntCounter,
    /// Records dropped because the queue was full.
    pub dropped_full: IntCounter,
    /// Records dropped because the spool could not store them.
    pub dropped_spool_error: IntCounter,
    /// Records still in a memory queue at shutdown.
    pub dropped_shutdown: IntCounter,
    /// Records queued.
    pub queued: IntGauge,
    /// Spool bytes.
    pub spooled_bytes: IntGauge,
    /// Oldest undelivered record's age.
    pub oldest_seconds: Gauge,
    /// Last attempt succeeded.
    pub up: IntGauge,
}

impl SinkMetrics {
    /// The handles for sink `name`.
    pub fn new(metrics: &Metrics, name: &str) -> SinkMetrics {
        let vecs = &metrics.sinks;
        let dropped = |reason: &str| vecs.dropped.with_label_values(&[name, reason]);
        let up = vecs.up.with_label_values(&[name]);
        up.set(1);
        SinkMetrics {
            delivered: vecs.delivered.with_label_values(&[name]),
            failed: vecs.failed.with_label_values(&[name]),
            retried: vecs.retried.with_label_values(&[name]),
            rejected: vecs.rejected.with_label_values(&[name]),
            dropped_full: dropped("queue_full"),
            dropped_spool_error: dropped("spool_error"),
            dropped_shutdown: dropped("shutdown"),
            queued: vecs.queued_records.with_label_values(&[name]),
            spooled_bytes: vecs.spooled_bytes.with_label_values(&[name]),
            oldest_seconds: vecs.oldest_undelivered_seconds.with_label_values(&[name]),
            up,
        }
    }
}
