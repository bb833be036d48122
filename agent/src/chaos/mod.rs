//! Detection measurement (`vigil chaos`): perform attacker behaviours safely, and measure
//! whether and how fast the agent detects them.
//!
//! [`catalog`] lists the behaviours; [`runner`] starts an agent (or listens for a running one),
//! performs each behaviour in a private sandbox and waits for its alert at a webhook
//! [`receiver`]; [`report`] turns the runs into detection rates and latency percentiles.

pub mod agent;
pub mod catalog;
pub mod certs;
pub mod container;
pub mod faults;
pub mod progress;
pub mod receiver;
pub mod report;
pub mod runner;
pub mod sinkhole;
