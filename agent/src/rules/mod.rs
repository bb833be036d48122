//! Falco-compatible rules: loading rules files, compiling conditions, evaluating events and
//! formatting alerts.

pub mod alert;
pub mod compile;
pub mod condition;
pub mod dns;
pub mod engine;
pub mod evttypes;
pub mod failures;
pub mod fields;
pub mod filter;
pub mod loader;
pub mod output;
