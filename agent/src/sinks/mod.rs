//! Alert delivery: every alert reaches every configured sink at least once, in order per sink,
//! through outages, slow receivers and restarts.
//!
//! The path: rule engine -> [`record::Record`] (id, sequence, context) -> per-sink filter ->
//! per-sink queue ([`spool`] on disk) -> delivery worker (batching, retries) -> transport
//! ([`syslog`], webhook, file, stdout) rendering each record in the sink's [`format`].

pub mod config;
pub mod context;
pub mod dispatcher;
pub mod file;
pub mod format;
pub mod identity;
pub mod queue;
pub mod record;
pub mod sink_metrics;
pub mod spool;
pub mod syslog;
pub mod tls;
pub mod transport;
pub mod webhook;
pub mod worker;

#[cfg(test)]
mod tests;

/// Why a transport could not deliver a batch.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth retrying the same batch later: the network, a timeout, HTTP 5xx, 408 or 429.
    #[error("{0}")]
    Retryable(String),
    /// The receiver refused the batch as invalid (HTTP 4xx other than 408 and 429): retrying it
    /// unchanged cannot succeed, so the worker splits it to set the bad record aside.
    #[error("{0}")]
    Rejected(String),
}
