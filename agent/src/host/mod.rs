//! Host facilities the agent depends on: pseudo-filesystems it needs mounted.

pub mod mounts;
