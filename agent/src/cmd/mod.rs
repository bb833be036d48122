//! The subcommands of `vigil`, one module each.

pub mod agent;
pub mod chaos;
pub mod config;
pub mod fields;
pub mod replay;
pub mod rules;
