//! The running egress policy: what is in the kernel, where it came from, and reloading it.

use std::{
    path::PathBuf,
    sync::{Arc, RwLock},
};

use agent_common::{EGRESS_GENERATIONS, EGRESS_MAX_POLICIES};

use super::{
    kernel::{self, CompiledPolicies, KernelPolicyError},
    policy::{PolicyError, PolicySet},
};
use crate::probes::{ProbeError, egress::EgressMaps};

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

/// The egress policies in force.
pub struct EgressControl {
    maps: EgressMaps,
    files: Vec<PathBuf>,
    cgroup_root: PathBuf,
    names: PolicyNames,
}

impl EgressControl {
    /// Puts the first policies in force.
    pub fn start(
        mut maps: EgressMaps,
        compiled: CompiledPolicies,
        files: Vec<PathBuf>,
        cgroup_root: PathBuf,
        names: PolicyNames,
    ) -> Result<EgressControl, ProbeError> {
        maps.apply(compiled.kernel)?;
        names.set(maps.generation(), compiled.names);
        Ok(EgressControl {
            maps,
            files,
            cgroup_root,
            names,
        })
    }

    /// Loads the files again and puts them in force; on any error the running policies stay.
    /// Returns how many policies are in force.
    pub fn reload(&mut self) -> Result<usize, ReloadError> {
        let set = PolicySet::load(&self.files).map_err(ReloadError::Policy)?;
        let compiled = kernel::compile(&set, &self.cgroup_root, std::process::id())?;
        for warning in &compiled.unmatched {
            tracing::warn!(%warning, "egress policy selects nothing yet");
        }
        let count = compiled.names.len();
        let generation = 1 - self.maps.generation();
        // Names first: a report from the new generation may come as soon as it is in force.
        self.names.set(generation, compiled.names);
        self.maps.apply(compiled.kernel)?;
        Ok(count)
    }
}
