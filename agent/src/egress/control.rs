//! The running egress policy: what is in the kernel, where it came from, and reloading it.

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{Arc, RwLock},
};

use agent_common::{EGRESS_GENERATIONS, EGRESS_MAX_POLICIES};

use super::{
    kernel::{self, CompiledPolicies, KernelPolicyError},
    policy::{PolicyError, PolicySet, WorkloadMatch},
};
use crate::{
    enrich::Enriched,
    probes::{ProbeError, egress::EgressMaps},
    state::container_meta::RuntimeRoots,
};

/// Why a reload was refused; the running policies stay in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The files have errors.
    #[error("{} error(s) in the egress policies: {}", .0.len(), first(.0))]
    Policy(Vec<PolicyError>),
    /// The policies cannot be put in the kernel.
    #[error(transparent)]
    Kernel(#[from] KernelPolicyError),
    /// Writing the maps failed.
    #[error(transparent)]
    Maps(#[from] ProbeError),
}

fn first(errors: &[PolicyError]) -> String {
    errors.first().map(ToString::to_string).unwrap_or_default()
}

/// Policy names by the number the kernel reports (generation and index), shared with whoever
/// renders egress alerts.
#[derive(Clone, Default)]
pub struct PolicyNames(Arc<RwLock<[Vec<String>; EGRESS_GENERATIONS]>>);

impl PolicyNames {
    /// The name of the policy the kernel reported as `policy`.
    pub fn get(&self, policy: u32) -> Option<String> {
        let generation = (policy / EGRESS_MAX_POLICIES) as usize;
        let index = (policy % EGRESS_MAX_POLICIES) as usize;
        self.0.read().ok()?.get(generation)?.get(index).cloned()
    }

    fn set(&self, generation: u32, names: Vec<String>) {
        if let Ok(mut all) = self.0.write()
            && let Some(slot) = all.get_mut(generation as usize)
        {
            *slot = names;
        }
    }
}

/// Most cgroups remembered as already looked at for metadata selectors.
const MAX_SEEN_CGROUPS: usize = 65_536;

/// The egress policies in force.
pub struct EgressControl {
    maps: EgressMaps,
    files: Vec<PathBuf>,
    cgroup_root: PathBuf,
    roots: RuntimeRoots,
    names: PolicyNames,
    by_metadata: Vec<(u32, WorkloadMatch)>,
    seen: HashSet<u64>,
}

impl EgressControl {
    /// Puts the first policies in force.
    pub fn start(
        mut maps: EgressMaps,
        compiled: CompiledPolicies,
        files: Vec<PathBuf>,
        cgroup_root: PathBuf,
        roots: RuntimeRoots,
        names: PolicyNames,
    ) -> Result<EgressControl, ProbeError> {
        maps.apply(compiled.kernel)?;
        names.set(maps.generation(), compiled.names);
        // Only now that ours decide: links an earlier agent pinned can go.
        crate::probes::egress::release_foreign_pins()?;
        Ok(EgressControl {
            maps,
            files,
            cgroup_root,
            roots,
            names,
            by_metadata: compiled.by_metadata,
            seen: HashSet::new(),
        })
    }

    /// Looks at the cgroup of an event once: a container that started after the policies were
    /// compiled is added to the policies whose metadata selectors it satisfies. Until the
    /// agent sees a first event of a new container, its connections follow the default policy
    /// (or none).
    pub fn observe(&mut self, event: &Enriched) {
        if self.by_metadata.is_empty() {
            return;
        }
        let cgroup = event.process.cgroup_id;
        if cgroup == 0 || self.seen.contains(&cgroup) {
            return;
        }
        let (Some(container), Some(meta)) = (
            event.process.container.as_ref(),
            event.container_meta.as_deref(),
        ) else {
            // No metadata yet (the runtime may still be writing it): look again next time.
            return;
        };
        if self.seen.len() >= MAX_SEEN_CGROUPS {
            self.seen.clear();
        }
        self.seen.insert(cgroup);
        let path = event.process.cgroup_path.as_deref().unwrap_or_default();
        let policies = self
            .by_metadata
            .iter()
            .filter(|(_, selector)| {
                kernel::selects_container(selector, container, path, Some(meta))
            })
            .fold(0u64, |mask, (index, _)| mask | (1u64 << index));
        if policies == 0 {
            return;
        }
        match self.maps.select_cgroup(cgroup, policies) {
            Ok(()) => tracing::info!(
                cgroup,
                container = container.short_id(),
                policies,
                "egress policies now select a new container"
            ),
            Err(error) => tracing::error!(%error, cgroup, "selecting a new container failed"),
        }
    }

    /// Loads the files again and puts them in force; on any error the running policies stay.
    /// Returns how many policies are in force.
    pub fn reload(&mut self) -> Result<usize, ReloadError> {
        let set = PolicySet::load(&self.files).map_err(ReloadError::Policy)?;
        let compiled =
            kernel::compile_for_host(&set, &self.cgroup_root, std::process::id(), &self.roots)?;
        for warning in &compiled.unmatched {
            tracing::warn!(%warning, "egress policy selects nothing yet");
        }
        let count = compiled.names.len();
        let generation = 1 - self.maps.generation();
        // Names first: a report from the new generation may come as soon as it is in force.
        self.names.set(generation, compiled.names);
        self.maps.apply(compiled.kernel)?;
        self.by_metadata = compiled.by_metadata;
        self.seen.clear();
        Ok(count)
    }
}
