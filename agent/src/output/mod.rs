//! Renderings of enriched events for people and machines.

pub mod json;
pub mod text;
