//! Support shared by unit tests, integration tests and benchmarks: state that never reads this
//! machine's /proc, and the location of the official Falco rules. Not part of the agent's API.

pub mod http_receiver;

use std::{num::NonZeroUsize, path::PathBuf};

use crate::{
    enrich::{Enricher, StateConfig},
    state::container_meta::RuntimeRoots,
};

/// An enricher whose /proc and cgroup roots are an empty directory, so synthetic pids are never
/// looked up on this machine.
pub fn detached_enricher() -> Enricher {
    let empty = std::env::temp_dir().join("vigil-detached-procfs");
    // Creation races between parallel tests are harmless: the directory only has to exist.
    let _ = std::fs::create_dir_all(&empty);
    Enricher::new(StateConfig {
        proc_root: empty.clone(),
        cgroup_root: empty,
        max_processes: NonZeroUsize::new(65536).unwrap_or(NonZeroUsize::MIN),
        capture_env: false,
        runtime_roots: RuntimeRoots::default(),
    })
}

/// The directory of the official Falco rules files: `VIGIL_FALCO_RULES_DIR`, else the shared
/// checkout next to the repository. Panics, naming where it looked, when they are absent, so a
/// test can never pass without them.
pub fn falco_rules_dir() -> PathBuf {
    let dir = std::env::var_os("VIGIL_FALCO_RULES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/falco-rules")
        });
    assert!(
        dir.join("falco_rules.yaml").is_file(),
        "the official Falco rules are missing: looked in {} (set VIGIL_FALCO_RULES_DIR)",
        dir.display()
    );
    dir
}
