//! What tests/deploy.rs and tests/deploy_caps.rs share: the repository's paths and the
//! capability set docs/deploy.md documents, which is the one the artifacts must grant and the
//! agent must work with.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A file of the repository, read whole.
pub fn read_repo_file(path: &str) -> String {
    let full = repo().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|err| panic!("read {}: {err}", full.display()))
}

/// One row of the capability table of docs/deploy.md.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capability {
    /// `CAP_BPF`, as the table writes it.
    pub name: String,
    /// Needed only with egress control.
    pub egress_only: bool,
}

impl Capability {
    /// The name Kubernetes uses (`BPF`).
    pub fn kubernetes_name(&self) -> &str {
        self.name.trim_start_matches("CAP_")
    }

    /// The name capsh uses (`cap_bpf`).
    pub fn capsh_name(&self) -> String {
        self.name.to_lowercase()
    }
}

/// The table under `## Capabilities` in docs/deploy.md: rows whose first cell is a backticked
/// `CAP_*` name and whose second says `always` or `with egress control`. The document is the
/// source of truth; an unexpected shape fails loudly rather than yielding a partial set.
pub fn documented_capabilities() -> Vec<Capability> {
    let doc = read_repo_file("docs/deploy.md");
    let section = doc
        .split("\n## Capabilities\n")
        .nth(1)
        .expect("docs/deploy.md has a `## Capabilities` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let capabilities: Vec<Capability> = section
        .lines()
        .filter(|line| line.starts_with("| `CAP_"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`').to_string();
            let egress_only = match cells[2] {
                "always" => false,
                "with egress control" => true,
                other => panic!("docs/deploy.md: {name}: unknown `when` {other:?}"),
            };
            Capability { name, egress_only }
        })
        .collect();
    assert!(
        capabilities.len() >= 3,
        "docs/deploy.md's capability table has {} rows; was it reformatted?",
        capabilities.len()
    );
    capabilities
}

/// The capabilities the agent always needs.
pub fn base_capabilities() -> Vec<Capability> {
    documented_capabilities()
        .into_iter()
        .filter(|cap| !cap.egress_only)
        .collect()
}

/// The capabilities the agent needs with egress control.
pub fn egress_capabilities() -> Vec<Capability> {
    documented_capabilities()
}
