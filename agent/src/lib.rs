//! Vigil: an eBPF runtime security agent.
//!
//! The data path, one module per stage: [`probes`] (kernel programs) -> [`events`] (decoded
//! records) -> [`enrich`] with [`state`] (processes, fds, containers) -> consumers such as
//! [`output`]. [`pipeline`] wires the stages together; [`metrics`] and [`server`] expose them.
#![warn(missing_docs)]

pub mod chaos;
pub mod clock;
pub mod config;
pub mod egress;
pub mod enrich;
pub mod events;
pub mod host;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod probes;
pub mod rules;
pub mod selfwatch;
pub mod server;
pub mod sinks;
pub mod state;
#[doc(hidden)]
pub mod testing;
