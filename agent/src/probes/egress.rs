//! The egress programs (`cgroup_sock_addr` on the cgroup v2 root) and their maps: which
//! policies exist, which cgroups and process names select them, and what each allows.

use std::{fs::File, path::Path};

use agent_common::{
    EgressConfig, EgressHostKey, EgressKey4, EgressKey6, EgressLearned, EgressNameKey, EgressPorts,
};
use aya::{
    maps::{
        Array, HashMap, MapData,
        lpm_trie::{Key, LpmTrie},
    },
    programs::CgroupSkb,
    programs::cgroup_skb::CgroupSkbAttachType,
    programs::{CgroupAttachMode, CgroupSockAddr, ProgramError},
};

use super::{ProbeError, Probes, hint_for, map_error, missing_map};

/// The egress programs, in attach order.
pub const EGRESS_PROGRAMS: &[&str] = &[
    "egress_connect4",
    "egress_connect6",
    "egress_sendmsg4",
    "egress_sendmsg6",
];

/// One allowlist entry: a prefix of one policy and the ports it allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowEntry<K> {
    /// Bits of the key data that count (32 for the policy index, plus the prefix length).
    pub prefix_len: u32,
    /// Policy index (big endian) then address.
    pub data: K,
    /// What the prefix allows.
    pub ports: EgressPorts,
}

/// Everything the kernel side needs to decide, computed from the policies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelPolicy {
    /// Which policies exist and how they select.
    pub config: EgressConfig,
    /// cgroup id -> policies it selects (for itself and its descendants).
    pub cgroups: Vec<(u64, u64)>,
    /// comm -> policies it selects.
    pub comms: Vec<([u8; 16], u64)>,
    /// IPv4 allowlist.
    pub allow4: Vec<AllowEntry<EgressKey4>>,
    /// IPv6 allowlist.
    pub allow6: Vec<AllowEntry<EgressKey6>>,
    /// Names with host rules -> policies with such a rule.
    pub names: Vec<(EgressNameKey, u64)>,
    /// (name, policy) -> the ports its host rules allow.
    pub name_ports: Vec<(EgressNameKey, EgressPorts)>,
}

/// The egress maps, owned by whoever applies policies.
pub struct EgressMaps {
    config: Array<MapData, EgressConfig>,
    cgroups: HashMap<MapData, u64, u64>,
    comms: HashMap<MapData, [u8; 16], u64>,
    allow4: LpmTrie<MapData, EgressKey4, EgressPorts>,
    allow6: LpmTrie<MapData, EgressKey6, EgressPorts>,
    names: HashMap<MapData, EgressNameKey, u64>,
    name_ports: HashMap<MapData, EgressNameKey, EgressPorts>,
    hosts: HashMap<MapData, EgressHostKey, EgressLearned>,
    current: KernelPolicy,
}

impl Probes {
    /// Loads the egress programs and attaches them to the cgroup v2 root as links, alongside
    /// any other programs there. With no policy written they allow everything.
    pub(super) fn attach_egress(&mut self, cgroup_root: &Path) -> Result<(), ProbeError> {
        let cgroup = File::open(cgroup_root).map_err(|error| ProbeError::Map {
            map: "cgroup",
            reason: format!(
                "opening the cgroup v2 root {}: {error}",
                cgroup_root.display()
            ),
        })?;
        for &program in EGRESS_PROGRAMS {
            let attach_error = |source: ProgramError| {
                let hint = hint_for(&format!("{source:?}"));
                ProbeError::Attach {
                    program,
                    tracepoint: format!("cgroup {}", cgroup_root.display()),
                    source: Box::new(source),
                    hint,
                }
            };
            let prog: &mut CgroupSockAddr = self
                .ebpf
                .program_mut(program)
                .ok_or_else(|| ProbeError::Map {
                    map: "programs",
                    reason: format!("program {program} is missing from the object"),
                })?
                .try_into()
                .map_err(attach_error)?;
            prog.load().map_err(attach_error)?;
            // A bpf_link takes no attach flags (the kernel refuses ALLOW_MULTI there) and
            // always coexists with other links on the same cgroup.
            prog.attach(&cgroup, CgroupAttachMode::Single)
                .map_err(attach_error)?;
            tracing::debug!(program, cgroup = %cgroup_root.display(), "attached");
            self.attached.push(program);
        }
        self.attach_dns(&cgroup, cgroup_root)?;
        self.egress_attached = true;
        Ok(())
    }

    /// Takes the egress maps out, for the policy updater.
    pub fn take_egress_maps(&mut self) -> Result<EgressMaps, ProbeError> {
        let mut take =
            |name: &'static str| self.ebpf.take_map(name).ok_or_else(|| missing_map(name));
        Ok(EgressMaps {
            config: Array::try_from(take("EGRESS_CONFIG")?).map_err(map_error("EGRESS_CONFIG"))?,
            cgroups: HashMap::try_from(take("EGRESS_CGROUPS")?)
                .map_err(map_error("EGRESS_CGROUPS"))?,
            comms: HashMap::try_from(take("EGRESS_COMMS")?).map_err(map_error("EGRESS_COMMS"))?,
            allow4: LpmTrie::try_from(take("EGRESS_ALLOW4")?)
                .map_err(map_error("EGRESS_ALLOW4"))?,
            allow6: LpmTrie::try_from(take("EGRESS_ALLOW6")?)
                .map_err(map_error("EGRESS_ALLOW6"))?,
            names: HashMap::try_from(take("EGRESS_NAMES")?).map_err(map_error("EGRESS_NAMES"))?,
            name_ports: HashMap::try_from(take("EGRESS_NAME_PORTS")?)
                .map_err(map_error("EGRESS_NAME_PORTS"))?,
            hosts: HashMap::try_from(take("EGRESS_HOSTS")?).map_err(map_error("EGRESS_HOSTS"))?,
            current: KernelPolicy::default(),
        })
    }

    /// Attaches the DNS watcher (a `cgroup_skb` ingress program) to the cgroup v2 root; it
    /// learns addresses for host rules from the DNS answers workloads receive.
    fn attach_dns(&mut self, cgroup: &File, cgroup_root: &Path) -> Result<(), ProbeError> {
        let program = "egress_dns";
        let attach_error = |source: ProgramError| {
            let hint = hint_for(&format!("{source:?}"));
            ProbeError::Attach {
                program,
                tracepoint: format!("cgroup {} (ingress)", cgroup_root.display()),
                source: Box::new(source),
                hint,
            }
        };
        let prog: &mut CgroupSkb = self
            .ebpf
            .program_mut(program)
            .ok_or_else(|| ProbeError::Map {
                map: "programs",
                reason: format!("program {program} is missing from the object"),
            })?
            .try_into()
            .map_err(attach_error)?;
        prog.load().map_err(attach_error)?;
        prog.attach(
            cgroup,
            CgroupSkbAttachType::Ingress,
            CgroupAttachMode::Single,
        )
        .map_err(attach_error)?;
        self.attached.push(program);
        Ok(())
    }

    /// Whether the egress programs are attached.
    pub fn egress_attached(&self) -> bool {
        self.egress_attached
    }
}

impl EgressMaps {
    /// Writes a new policy: entries first, then the configuration that makes them count, then
    /// removes what the old policy had and the new one lacks.
    pub fn apply(&mut self, next: KernelPolicy) -> Result<(), ProbeError> {
        for &(id, mask) in &next.cgroups {
            self.cgroups
                .insert(id, mask, 0)
                .map_err(map_error("EGRESS_CGROUPS"))?;
        }
        for &(comm, mask) in &next.comms {
            self.comms
                .insert(comm, mask, 0)
                .map_err(map_error("EGRESS_COMMS"))?;
        }
        for entry in &next.allow4 {
            self.allow4
                .insert(&Key::new(entry.prefix_len, entry.data), entry.ports, 0)
                .map_err(map_error("EGRESS_ALLOW4"))?;
        }
        for entry in &next.allow6 {
            self.allow6
                .insert(&Key::new(entry.prefix_len, entry.data), entry.ports, 0)
                .map_err(map_error("EGRESS_ALLOW6"))?;
        }
        for (key, ports) in &next.name_ports {
            self.name_ports
                .insert(key, ports, 0)
                .map_err(map_error("EGRESS_NAME_PORTS"))?;
        }
        for (key, mask) in &next.names {
            self.names
                .insert(key, mask, 0)
                .map_err(map_error("EGRESS_NAMES"))?;
        }
        self.config
            .set(0, next.config, 0)
            .map_err(map_error("EGRESS_CONFIG"))?;
        let names_changed = self.current.names != next.names
            || self.current.name_ports != next.name_ports
            || self.current.config.active != next.config.active;
        let old = std::mem::replace(&mut self.current, next);
        if names_changed {
            // Learned addresses are keyed by policy index, which may now mean another policy;
            // the next DNS answers teach them again.
            let learned: Vec<EgressHostKey> = self.hosts.keys().filter_map(Result::ok).collect();
            for key in learned {
                let _ = self.hosts.remove(&key);
            }
        }
        for (key, _) in old.names {
            if !self.current.names.iter().any(|(kept, _)| *kept == key) {
                let _ = self.names.remove(&key);
            }
        }
        for (key, _) in old.name_ports {
            if !self.current.name_ports.iter().any(|(kept, _)| *kept == key) {
                let _ = self.name_ports.remove(&key);
            }
        }
        for (id, _) in old.cgroups {
            if !self.current.cgroups.iter().any(|(kept, _)| *kept == id) {
                let _ = self.cgroups.remove(&id);
            }
        }
        for (comm, _) in old.comms {
            if !self.current.comms.iter().any(|(kept, _)| *kept == comm) {
                let _ = self.comms.remove(&comm);
            }
        }
        for entry in old.allow4 {
            let stale = !self
                .current
                .allow4
                .iter()
                .any(|e| e.prefix_len == entry.prefix_len && e.data == entry.data);
            if stale {
                let _ = self.allow4.remove(&Key::new(entry.prefix_len, entry.data));
            }
        }
        for entry in old.allow6 {
            let stale = !self
                .current
                .allow6
                .iter()
                .any(|e| e.prefix_len == entry.prefix_len && e.data == entry.data);
            if stale {
                let _ = self.allow6.remove(&Key::new(entry.prefix_len, entry.data));
            }
        }
        Ok(())
    }
}
