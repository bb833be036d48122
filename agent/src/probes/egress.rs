//! The egress programs (`cgroup_sock_addr` on the cgroup v2 root) and their maps: which
//! policies exist, which cgroups and process names select them, and what each allows.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use agent_common::{
    EGRESS_GENERATIONS, EgressConfig, EgressHostKey, EgressKey4, EgressKey6, EgressLearned,
    EgressNameKey, EgressPorts, egress_policy_key,
};
use aya::{
    maps::{
        Array, HashMap, MapData,
        lpm_trie::{Key, LpmTrie},
    },
    programs::CgroupSkb,
    programs::cgroup_skb::CgroupSkbAttachType,
    programs::links::{FdLink, PinnedLink},
    programs::{CgroupAttachMode, CgroupSockAddr},
};

use super::{ProbeError, Probes, attach_error, map_error, open_cgroup};

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
    /// Policy names by index, to carry learned addresses across a reload.
    pub policy_names: Vec<String>,
}

/// The egress maps, owned by whoever applies policies.
pub struct EgressMaps {
    active: Array<MapData, u32>,
    config: Array<MapData, EgressConfig>,
    cgroups: HashMap<MapData, u64, Masks>,
    comms: HashMap<MapData, [u8; 16], Masks>,
    allow4: LpmTrie<MapData, EgressKey4, EgressPorts>,
    allow6: LpmTrie<MapData, EgressKey6, EgressPorts>,
    names: HashMap<MapData, EgressNameKey, Masks>,
    name_ports: HashMap<MapData, EgressNameKey, EgressPorts>,
    hosts: HashMap<MapData, EgressHostKey, EgressLearned>,
    /// The generation in use, and what each generation holds.
    generation: u32,
    written: [Option<KernelPolicy>; EGRESS_GENERATIONS],
}

/// One mask per generation.
type Masks = [u64; EGRESS_GENERATIONS];

impl Probes {
    /// Loads the egress programs and attaches them to the cgroup v2 root as links, alongside
    /// any other programs there. With no policy written they allow everything.
    pub(super) fn attach_egress(
        &mut self,
        cgroup_root: &Path,
        pin: bool,
    ) -> Result<(), ProbeError> {
        let pin_dir = if pin { Some(pin_dir(true)?) } else { None };
        let cgroup = open_cgroup(cgroup_root)?;
        for &program in EGRESS_PROGRAMS {
            let attach_error = attach_error(program, format!("cgroup {}", cgroup_root.display()));
            let prog: &mut CgroupSockAddr = self.program(program, &attach_error)?;
            prog.load().map_err(&attach_error)?;
            // A bpf_link takes no attach flags (the kernel refuses ALLOW_MULTI there) and
            // always coexists with other links on the same cgroup.
            let link = prog
                .attach(&cgroup, CgroupAttachMode::Single)
                .map_err(&attach_error)?;
            if let Some(dir) = &pin_dir {
                let link: FdLink = prog
                    .take_link(link)
                    .map_err(&attach_error)?
                    .try_into()
                    .map_err(|error| pin_error(program, format!("{error}")))?;
                pin_link(link, dir, program)?;
            }
            tracing::debug!(program, cgroup = %cgroup_root.display(), "attached");
            self.attached.push(program);
        }
        self.attach_dns(&cgroup, cgroup_root, pin_dir.as_deref())?;
        self.egress_attached = true;
        Ok(())
    }

    /// Takes the egress maps out, for the policy updater.
    pub fn take_egress_maps(&mut self) -> Result<EgressMaps, ProbeError> {
        Ok(EgressMaps {
            active: self.take_typed_map("EGRESS_ACTIVE")?,
            config: self.take_typed_map("EGRESS_CONFIG")?,
            cgroups: self.take_typed_map("EGRESS_CGROUPS")?,
            comms: self.take_typed_map("EGRESS_COMMS")?,
            allow4: self.take_typed_map("EGRESS_ALLOW4")?,
            allow6: self.take_typed_map("EGRESS_ALLOW6")?,
            names: self.take_typed_map("EGRESS_NAMES")?,
            name_ports: self.take_typed_map("EGRESS_NAME_PORTS")?,
            hosts: self.take_typed_map("EGRESS_HOSTS")?,
            generation: 0,
            written: [None, None],
        })
    }

    /// Attaches the DNS watcher (a `cgroup_skb` ingress program) to the cgroup v2 root; it
    /// learns addresses for host rules from the DNS answers workloads receive.
    fn attach_dns(
        &mut self,
        cgroup: &File,
        cgroup_root: &Path,
        pin_dir: Option<&Path>,
    ) -> Result<(), ProbeError> {
        let program = "egress_dns";
        let attach_error = attach_error(
            program,
            format!("cgroup {} (ingress)", cgroup_root.display()),
        );
        let prog: &mut CgroupSkb = self.program(program, &attach_error)?;
        prog.load().map_err(&attach_error)?;
        let link = prog
            .attach(
                cgroup,
                CgroupSkbAttachType::Ingress,
                CgroupAttachMode::Single,
            )
            .map_err(&attach_error)?;
        if let Some(dir) = pin_dir {
            let link: FdLink = prog
                .take_link(link)
                .map_err(&attach_error)?
                .try_into()
                .map_err(|error| pin_error(program, format!("{error}")))?;
            pin_link(link, dir, program)?;
        }
        self.attached.push(program);
        Ok(())
    }

    /// Whether the egress programs are attached.
    pub fn egress_attached(&self) -> bool {
        self.egress_attached
    }
}

impl EgressMaps {
    /// The generation the kernel uses now.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Puts a policy set in force without a moment in which a call goes undecided: it is
    /// written into the generation not in use, the addresses learned from DNS for host rules
    /// that carry over are copied to it, the kernel switches to it in one word, and only then
    /// is the old generation cleared.
    pub fn apply(&mut self, next: KernelPolicy) -> Result<(), ProbeError> {
        let old = self.generation;
        let new = 1 - old;
        // Leftovers of a failed earlier apply into this generation.
        if let Some(stale) = self.written[new as usize].take() {
            self.clear(new, &stale)?;
        }
        self.write(new, &next)?;
        self.written[new as usize] = Some(next.clone());
        self.carry_learned(old, new, &next);
        self.config
            .set(new, next.config, 0)
            .map_err(map_error("EGRESS_CONFIG"))?;
        self.active
            .set(0, new, 0)
            .map_err(map_error("EGRESS_ACTIVE"))?;
        self.generation = new;
        // Answers that arrived while switching were learned for the old generation.
        self.carry_learned(old, new, &next);
        if let Some(previous) = self.written[old as usize].take() {
            self.clear(old, &previous)?;
        }
        Ok(())
    }

    /// Adds policies to a cgroup's mask in the generation in use (a container that started after
    /// the policies were compiled); the next apply recomputes every cgroup anyway.
    pub fn select_cgroup(&mut self, cgroup: u64, policies: u64) -> Result<(), ProbeError> {
        let slot = self.generation as usize;
        set_mask(&mut self.cgroups, "EGRESS_CGROUPS", cgroup, slot, |mask| {
            mask | policies
        })?;
        if let Some(written) = self.written[slot].as_mut() {
            match written.cgroups.iter_mut().find(|(id, _)| *id == cgroup) {
                Some((_, mask)) => *mask |= policies,
                None => written.cgroups.push((cgroup, policies)),
            }
        }
        Ok(())
    }

    fn write(&mut self, generation: u32, policy: &KernelPolicy) -> Result<(), ProbeError> {
        let slot = generation as usize;
        for &(id, mask) in &policy.cgroups {
            set_mask(&mut self.cgroups, "EGRESS_CGROUPS", id, slot, |_| mask)?;
        }
        for &(comm, mask) in &policy.comms {
            set_mask(&mut self.comms, "EGRESS_COMMS", comm, slot, |_| mask)?;
        }
        for entry in &policy.allow4 {
            let data = with_generation(entry.data, generation);
            self.allow4
                .insert(&Key::new(entry.prefix_len, data), entry.ports, 0)
                .map_err(map_error("EGRESS_ALLOW4"))?;
        }
        for entry in &policy.allow6 {
            let data = with_generation(entry.data, generation);
            self.allow6
                .insert(&Key::new(entry.prefix_len, data), entry.ports, 0)
                .map_err(map_error("EGRESS_ALLOW6"))?;
        }
        for (key, ports) in &policy.name_ports {
            let key = EgressNameKey {
                policy: egress_policy_key(generation, key.policy),
                ..*key
            };
            self.name_ports
                .insert(key, ports, 0)
                .map_err(map_error("EGRESS_NAME_PORTS"))?;
        }
        for &(key, mask) in &policy.names {
            set_mask(&mut self.names, "EGRESS_NAMES", key, slot, |_| mask)?;
        }
        Ok(())
    }

    /// Removes a generation's entries (the other generation's stay).
    fn clear(&mut self, generation: u32, policy: &KernelPolicy) -> Result<(), ProbeError> {
        let slot = generation as usize;
        for &(id, _) in &policy.cgroups {
            clear_mask(&mut self.cgroups, id, slot);
        }
        for &(comm, _) in &policy.comms {
            clear_mask(&mut self.comms, comm, slot);
        }
        for &(key, _) in &policy.names {
            clear_mask(&mut self.names, key, slot);
        }
        for entry in &policy.allow4 {
            let data = with_generation(entry.data, generation);
            let _ = self.allow4.remove(&Key::new(entry.prefix_len, data));
        }
        for entry in &policy.allow6 {
            let data = with_generation(entry.data, generation);
            let _ = self.allow6.remove(&Key::new(entry.prefix_len, data));
        }
        for (key, _) in &policy.name_ports {
            let _ = self.name_ports.remove(&EgressNameKey {
                policy: egress_policy_key(generation, key.policy),
                ..*key
            });
        }
        let range = egress_policy_key(generation, 0)..egress_policy_key(generation, 0) + 64;
        let learned: Vec<EgressHostKey> = self
            .hosts
            .keys()
            .filter_map(Result::ok)
            .filter(|key| range.contains(&key.policy))
            .collect();
        for key in learned {
            let _ = self.hosts.remove(&key);
        }
        Ok(())
    }

    /// Copies addresses learned for the old generation's host rules to the same rules (same
    /// policy name, same name pattern) in the new generation.
    fn carry_learned(&mut self, old: u32, new: u32, next: &KernelPolicy) {
        let Some(previous) = self.written[old as usize].as_ref() else {
            return;
        };
        let base = egress_policy_key(old, 0);
        let learned: Vec<(EgressHostKey, EgressLearned)> = self
            .hosts
            .iter()
            .filter_map(Result::ok)
            .filter(|(key, _)| (base..base + 64).contains(&key.policy))
            .collect();
        for (key, value) in learned {
            let Some(name) = previous.policy_names.get((key.policy - base) as usize) else {
                continue;
            };
            let Some(index) = next.policy_names.iter().position(|n| n == name) else {
                continue;
            };
            let rule = EgressNameKey {
                policy: index as u32,
                ..value.rule
            };
            if !next.name_ports.iter().any(|(k, _)| *k == rule) {
                continue;
            }
            let carried = EgressHostKey {
                policy: egress_policy_key(new, index as u32),
                ..key
            };
            let value = EgressLearned {
                rule: EgressNameKey {
                    policy: egress_policy_key(new, index as u32),
                    ..rule
                },
                ..value
            };
            let _ = self.hosts.insert(carried, value, 0);
        }
    }
}

/// Where this agent pins its egress links: `<bpffs>/vigil/egress`. With `mount`, bpffs is
/// mounted at /sys/fs/bpf when it is not mounted anywhere; without, `None` means no pins can
/// exist.
fn pin_dir_at(mount: bool) -> Result<Option<PathBuf>, ProbeError> {
    let bpffs = if mount {
        Some(
            crate::host::mounts::ensure_mounted("bpf", Path::new("/sys/fs/bpf"))
                .map_err(ProbeError::Mount)?,
        )
    } else {
        crate::host::mounts::read_mounts()
            .ok()
            .and_then(|entries| crate::host::mounts::find_fs(&entries, "bpf"))
    };
    let Some(bpffs) = bpffs else {
        return Ok(None);
    };
    let dir = bpffs.join("vigil").join("egress");
    if mount {
        std::fs::create_dir_all(&dir)
            .map_err(|error| pin_error("egress", format!("creating {}: {error}", dir.display())))?;
    }
    Ok(Some(dir))
}

fn pin_dir(mount: bool) -> Result<PathBuf, ProbeError> {
    pin_dir_at(mount)?.ok_or_else(|| pin_error("egress", "bpffs is not mounted".into()))
}

/// This process's pins are named `<pid>-<program>`, so a later agent tells them from its own.
fn pin_link(link: FdLink, dir: &Path, program: &'static str) -> Result<(), ProbeError> {
    let path = dir.join(format!("{}-{program}", std::process::id()));
    link.pin(&path)
        .map_err(|error| pin_error(program, format!("pinning at {}: {error}", path.display())))?;
    Ok(())
}

fn pin_error(program: &'static str, reason: String) -> ProbeError {
    ProbeError::Map {
        map: program,
        reason,
    }
}

/// Detaches the egress links pinned by other agent processes (a previous run that pinned its
/// programs so enforcement outlived it). Called once this agent's own policies are in force,
/// so there is no moment without enforcement; while both are attached, a call must pass both.
/// Returns how many were released.
pub fn release_foreign_pins() -> Result<usize, ProbeError> {
    let Some(dir) = pin_dir_at(false)? else {
        return Ok(0);
    };
    let own = format!("{}-", std::process::id());
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(0);
    };
    let mut released = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&own) {
            continue;
        }
        let path = entry.path();
        let link = PinnedLink::from_pin(&path)
            .map_err(|error| pin_error("egress", format!("{}: {error}", path.display())))?;
        let link = link
            .unpin()
            .map_err(|error| pin_error("egress", format!("{}: {error}", path.display())))?;
        // Closing the last descriptor of an unpinned link detaches it.
        drop(link);
        tracing::info!(link = %name, "released an egress link pinned by an earlier agent");
        released += 1;
    }
    Ok(released)
}

/// Key data with the policy index moved into `generation`.
fn with_generation<const N: usize>(mut data: [u8; N], generation: u32) -> [u8; N] {
    let index = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    data[..4].copy_from_slice(&egress_policy_key(generation, index).to_be_bytes());
    data
}

/// Sets one generation's mask of a key (`update` gets the current one), leaving the other
/// generation's as it is.
fn set_mask<K: aya::Pod>(
    map: &mut HashMap<MapData, K, Masks>,
    name: &'static str,
    key: K,
    slot: usize,
    update: impl FnOnce(u64) -> u64,
) -> Result<(), ProbeError> {
    let mut masks = map.get(&key, 0).unwrap_or_default();
    masks[slot] = update(masks[slot]);
    map.insert(key, masks, 0).map_err(map_error(name))
}

fn clear_mask<K: aya::Pod>(map: &mut HashMap<MapData, K, Masks>, key: K, slot: usize) {
    let Ok(mut masks) = map.get(&key, 0) else {
        return;
    };
    masks[slot] = 0;
    let _ = if masks.iter().all(|&m| m == 0) {
        map.remove(&key)
    } else {
        map.insert(key, masks, 0)
    };
}
