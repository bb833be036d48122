//! Turns policies into what the kernel side decides with: a bit per policy, the cgroups and
//! process names that select each, and per-policy allowlist tries whose entries carry the port
//! rules of every shorter prefix that contains them.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use agent_common::{
    EGRESS_MAX_POLICIES, EGRESS_MAX_PORT_RULES, EGRESS_NO_POLICY, EgressConfig, EgressNameKey,
    EgressPortRule, EgressPorts, dns_name_hash,
};
use ipnet::IpNet;

use super::policy::{Destination, Mode, Policy, PolicySet, Protocol, WorkloadMatch};
use crate::{
    probes::egress::{AllowEntry, KernelPolicy},
    state::{
        container::{ContainerRef, container_from_cgroup},
        container_meta::{ContainerMeta, ContainerMetaCache, RuntimeRoots},
    },
};

/// Deepest cgroup directory looked at when finding containers' cgroups.
const MAX_WALK_DEPTH: usize = 12;

/// Why policies cannot be put in the kernel.
#[derive(Debug, thiserror::Error)]
pub enum KernelPolicyError {
    /// A policy uses a selector the kernel side cannot apply yet.
    #[error("policy {policy}: {message}")]
    Unsupported {
        /// The policy.
        policy: String,
        /// What is missing.
        message: String,
    },
    /// Too many port rules cover one destination.
    #[error(
        "policy {policy}: {destination} is covered by {count} port rules; at most {max} can apply to one destination"
    )]
    TooManyPortRules {
        /// The policy.
        policy: String,
        /// The destination prefix or host.
        destination: String,
        /// Rules that apply.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// More policies than the kernel mask holds.
    #[error("{count} policies (with the default): at most {max}")]
    TooManyPolicies {
        /// Policies given.
        count: usize,
        /// The limit.
        max: u32,
    },
}

/// Policies in kernel form, with what userspace needs to explain the kernel's reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompiledPolicies {
    /// What the maps hold.
    pub kernel: KernelPolicy,
    /// Policy names by kernel index.
    pub names: Vec<String>,
    /// Modes by kernel index.
    pub modes: Vec<Mode>,
    /// Host-name rules (allowed through the addresses DNS answers give their names).
    pub host_rules: usize,
    /// Selectors that matched no cgroup at compile time, for a warning.
    pub unmatched: Vec<String>,
    /// Policies that select by container metadata, by kernel index: containers started later
    /// are matched against them when the agent first sees them.
    pub by_metadata: Vec<(u32, WorkloadMatch)>,
}

/// Whether a container (its runtime reference, cgroup path relative to the root, and metadata
/// if the selector needs it) satisfies the cgroup-side conditions of a selector: `cgroup`,
/// `container.id`, `container.name`, `container.image.repository`, `k8s.ns.name` and
/// `k8s.pod.name`. (`proc.name` is the kernel's to check.)
pub fn selects_container(
    selector: &WorkloadMatch,
    container: &ContainerRef,
    path: &str,
    meta: Option<&ContainerMeta>,
) -> bool {
    let any = |wanted: &[String], value: Option<&str>| {
        wanted.is_empty() || value.is_some_and(|value| wanted.iter().any(|w| w == value))
    };
    let path = path.trim_matches('/');
    let in_tree = selector.cgroup.is_empty()
        || selector
            .cgroup
            .iter()
            .any(|tree| path == tree || path.starts_with(&format!("{tree}/")));
    let id_matches = selector.container_id.is_empty()
        || selector
            .container_id
            .iter()
            .any(|wanted| container.full_id.starts_with(wanted.as_str()));
    if !(in_tree && id_matches) {
        return false;
    }
    if !selector.needs_container_metadata() {
        return true;
    }
    let Some(meta) = meta else {
        return false;
    };
    any(&selector.container_name, meta.name.as_deref())
        && any(
            &selector.container_image_repository,
            meta.image_repository.as_deref(),
        )
        && any(&selector.k8s_ns_name, meta.pod_namespace.as_deref())
        && any(&selector.k8s_pod_name, meta.pod_name.as_deref())
}

/// Compiles the policies; `cgroup_root` is the cgroup v2 mount (selectors name cgroups below
/// it) and `exempt_tgid` the agent's own process. Container metadata comes from the runtimes'
/// default state directories.
pub fn compile(
    set: &PolicySet,
    cgroup_root: &Path,
    exempt_tgid: u32,
) -> Result<CompiledPolicies, KernelPolicyError> {
    compile_for_host(set, cgroup_root, exempt_tgid, &RuntimeRoots::default())
}

/// [`compile`], reading container metadata below `roots`.
pub fn compile_for_host(
    set: &PolicySet,
    cgroup_root: &Path,
    exempt_tgid: u32,
    roots: &RuntimeRoots,
) -> Result<CompiledPolicies, KernelPolicyError> {
    let mut metadata = ContainerMetaCache::new(roots.clone(), 4096);
    let count = set.policies.len() + usize::from(set.default.is_some());
    if count > EGRESS_MAX_POLICIES as usize {
        return Err(KernelPolicyError::TooManyPolicies {
            count,
            max: EGRESS_MAX_POLICIES,
        });
    }
    let mut compiled = CompiledPolicies::default();
    let mut config = EgressConfig {
        default_policy: EGRESS_NO_POLICY,
        exempt_tgid,
        ..EgressConfig::default()
    };
    let mut cgroups: BTreeMap<u64, u64> = BTreeMap::new();
    let mut comms: BTreeMap<[u8; 16], u64> = BTreeMap::new();
    let mut containers: Option<Vec<ContainerCgroup>> = None;
    let all = set
        .policies
        .iter()
        .map(|p| (p, false))
        .chain(set.default.iter().map(|p| (p, true)));
    for (index, (policy, is_default)) in all.enumerate() {
        let bit = 1u64 << index;
        config.active |= bit;
        if policy.mode == Mode::Enforce {
            config.enforce |= bit;
        }
        compiled.names.push(policy.name.clone());
        compiled.modes.push(policy.mode);
        allowlist(policy, index as u32, &mut compiled)?;
        if is_default {
            // Never selected by a mask: only when no other policy selects the caller.
            config.default_policy = index as u32;
            continue;
        }
        let selector = &policy.matcher;
        let mut ids: Option<Vec<u64>> = None;
        if !selector.cgroup.is_empty() && selector.container_id.is_empty() {
            let found: Vec<u64> = selector
                .cgroup
                .iter()
                .filter_map(|path| {
                    let id = cgroup_id(cgroup_root, path);
                    if id.is_none() {
                        compiled.unmatched.push(format!(
                            "policy {}: cgroup {path} does not exist",
                            policy.name
                        ));
                    }
                    id
                })
                .collect();
            ids = Some(found);
        }
        if !selector.container_id.is_empty() || selector.needs_container_metadata() {
            let known = containers.get_or_insert_with(|| container_cgroups(cgroup_root));
            let found: Vec<u64> = known
                .iter()
                .filter(|container| {
                    let meta = if selector.needs_container_metadata() {
                        metadata.get(&container.reference)
                    } else {
                        None
                    };
                    selects_container(
                        selector,
                        &container.reference,
                        &container.path,
                        meta.as_deref(),
                    )
                })
                .map(|container| container.cgroup)
                .collect();
            if selector.needs_container_metadata() {
                // Containers that start later are added as the agent first sees them.
                compiled.by_metadata.push((index as u32, selector.clone()));
            }
            if found.is_empty() {
                compiled.unmatched.push(format!(
                    "policy {}: no running container matches",
                    policy.name
                ));
            }
            ids = Some(found);
        }
        match ids {
            None => config.cgroup_free |= bit,
            Some(ids) => {
                for id in ids {
                    *cgroups.entry(id).or_default() |= bit;
                }
            }
        }
        if selector.proc_name.is_empty() {
            config.comm_free |= bit;
        } else {
            for name in &selector.proc_name {
                *comms.entry(comm_key(name)).or_default() |= bit;
            }
        }
    }
    compiled.kernel.config = config;
    compiled.kernel.policy_names = compiled.names.clone();
    compiled.kernel.cgroups = cgroups.into_iter().collect();
    compiled.kernel.comms = comms.into_iter().collect();
    Ok(compiled)
}

/// The kernel's comm for a process name: at most 15 bytes, NUL padded.
fn comm_key(name: &str) -> [u8; 16] {
    let mut key = [0u8; 16];
    let bytes = name.as_bytes();
    let len = bytes.len().min(15);
    key[..len].copy_from_slice(&bytes[..len]);
    key
}

fn cgroup_id(root: &Path, relative: &str) -> Option<u64> {
    let path = root.join(relative.trim_start_matches('/'));
    let meta = std::fs::metadata(path).ok()?;
    meta.is_dir().then(|| meta.ino())
}

/// A container's cgroup.
struct ContainerCgroup {
    /// The container as its cgroup names it.
    reference: ContainerRef,
    /// Path relative to the cgroup root, without a leading slash.
    path: String,
    /// cgroup id.
    cgroup: u64,
}

/// Every container cgroup below the root.
fn container_cgroups(root: &Path) -> Vec<ContainerCgroup> {
    let mut found = Vec::new();
    let mut stack: Vec<(PathBuf, usize)> = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_dir() {
                continue;
            }
            let path = entry.path();
            if let Ok(relative) = path.strip_prefix(root) {
                let relative = relative.display().to_string();
                if let Some(container) = container_from_cgroup(&format!("/{relative}")) {
                    found.push(ContainerCgroup {
                        reference: container,
                        path: relative,
                        cgroup: meta.ino(),
                    });
                }
            }
            if depth + 1 < MAX_WALK_DEPTH {
                stack.push((path, depth + 1));
            }
        }
    }
    found
}

/// Adds a policy's CIDR rules to the tries: one entry per distinct prefix, holding the port
/// rules of every rule whose prefix contains it, since a lookup only finds the longest match.
fn allowlist(
    policy: &Policy,
    index: u32,
    compiled: &mut CompiledPolicies,
) -> Result<(), KernelPolicyError> {
    let mut cidrs: Vec<(IpNet, EgressPortRule)> = Vec::new();
    let mut hosts: BTreeMap<EgressNameKey, Vec<EgressPortRule>> = BTreeMap::new();
    for rule in &policy.allow {
        let protocol = match rule.protocol {
            Protocol::Any => 0,
            Protocol::Tcp => libc::IPPROTO_TCP as u8,
            Protocol::Udp => libc::IPPROTO_UDP as u8,
        };
        let mut port_rules: Vec<EgressPortRule> = rule
            .ports
            .iter()
            .map(|range| port_rule(range.lo, range.hi, protocol))
            .collect();
        if port_rules.is_empty() {
            port_rules.push(port_rule(0, u16::MAX, protocol));
        }
        match &rule.destination {
            Destination::Cidr(net) => cidrs.extend(port_rules.into_iter().map(|r| (*net, r))),
            Destination::Host(pattern) => {
                compiled.host_rules += 1;
                let key = EgressNameKey {
                    hash: dns_name_hash(pattern.domain()),
                    policy: index,
                    wildcard: u32::from(pattern.is_wildcard()),
                };
                hosts.entry(key).or_default().extend(port_rules);
            }
        }
    }
    for (key, rules) in hosts {
        let ports = port_set(&policy.name, &rules, || key_description(policy, &key))?;
        compiled.kernel.name_ports.push((key, ports));
        let any_policy = EgressNameKey {
            policy: EGRESS_NO_POLICY,
            ..key
        };
        match compiled
            .kernel
            .names
            .iter_mut()
            .find(|(existing, _)| *existing == any_policy)
        {
            Some((_, mask)) => *mask |= 1u64 << index,
            None => compiled.kernel.names.push((any_policy, 1u64 << index)),
        }
    }
    // Rules by their network, and the prefix lengths in use: the rules covering a prefix are
    // found by truncating it to each of those lengths, not by scanning every rule.
    let mut by_net: HashMap<IpNet, Vec<EgressPortRule>> = HashMap::new();
    for (net, rule) in &cidrs {
        by_net.entry(net.trunc()).or_default().push(*rule);
    }
    let mut lengths: Vec<u8> = by_net.keys().map(IpNet::prefix_len).collect();
    lengths.sort_unstable();
    lengths.dedup();
    let mut prefixes: Vec<IpNet> = by_net.keys().copied().collect();
    prefixes.sort();
    for prefix in prefixes {
        let covering: Vec<EgressPortRule> = lengths
            .iter()
            .take_while(|&&len| len <= prefix.prefix_len())
            .filter_map(|&len| IpNet::new(prefix.addr(), len).ok())
            .filter_map(|net| by_net.get(&net.trunc()))
            .flatten()
            .copied()
            .collect();
        let ports = port_set(&policy.name, &covering, || prefix.to_string())?;
        let policy_bytes = index.to_be_bytes();
        let prefix_len = 32 + u32::from(prefix.prefix_len());
        match prefix.addr() {
            IpAddr::V4(addr) => {
                let mut data = [0u8; 8];
                data[..4].copy_from_slice(&policy_bytes);
                data[4..].copy_from_slice(&addr.octets());
                compiled.kernel.allow4.push(AllowEntry {
                    prefix_len,
                    data,
                    ports,
                });
            }
            IpAddr::V6(addr) => {
                let mut data = [0u8; 20];
                data[..4].copy_from_slice(&policy_bytes);
                data[4..].copy_from_slice(&addr.octets());
                compiled.kernel.allow6.push(AllowEntry {
                    prefix_len,
                    data,
                    ports,
                });
            }
        }
    }
    Ok(())
}

/// The port rules of one destination, as the kernel holds them.
fn port_set(
    policy: &str,
    rules: &[EgressPortRule],
    destination: impl Fn() -> String,
) -> Result<EgressPorts, KernelPolicyError> {
    let mut unique: Vec<EgressPortRule> = Vec::with_capacity(rules.len());
    for rule in rules {
        if !unique.contains(rule) {
            unique.push(*rule);
        }
    }
    if unique.len() > EGRESS_MAX_PORT_RULES {
        return Err(KernelPolicyError::TooManyPortRules {
            policy: policy.to_string(),
            destination: destination(),
            count: unique.len(),
            max: EGRESS_MAX_PORT_RULES,
        });
    }
    let mut ports = EgressPorts::default();
    for (slot, rule) in ports.rules.iter_mut().zip(&unique) {
        *slot = *rule;
    }
    ports.len = unique.len() as u32;
    Ok(ports)
}

fn key_description(policy: &Policy, key: &EgressNameKey) -> String {
    policy
        .allow
        .iter()
        .find_map(|rule| match &rule.destination {
            Destination::Host(pattern)
                if dns_name_hash(pattern.domain()) == key.hash
                    && u32::from(pattern.is_wildcard()) == key.wildcard =>
            {
                Some(pattern.to_string())
            }
            _ => None,
        })
        .unwrap_or_default()
}

fn port_rule(lo: u16, hi: u16, protocol: u8) -> EgressPortRule {
    EgressPortRule {
        lo,
        hi,
        protocol,
        reserved: [0; 3],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> PolicySet {
        PolicySet::parse(text, Path::new("egress.yaml")).unwrap()
    }

    #[test]
    fn nested_prefixes_carry_the_ports_of_the_prefixes_that_contain_them() {
        let set = parse(
            "- policy: web\n  mode: enforce\n  match:\n    proc.name: [nginx]\n  allow:\n    \
             - cidr: 10.0.0.0/8\n      ports: [53]\n      protocol: udp\n    \
             - cidr: 10.20.0.0/16\n      ports: [5432]\n    - cidr: \"2001:db8::/32\"\n",
        );
        let compiled = compile(&set, Path::new("/nonexistent"), 7).unwrap();
        let config = compiled.kernel.config;
        assert_eq!(config.active, 1);
        assert_eq!(config.enforce, 1);
        assert_eq!(config.cgroup_free, 1);
        assert_eq!(config.comm_free, 0);
        assert_eq!(config.exempt_tgid, 7);
        assert_eq!(config.default_policy, EGRESS_NO_POLICY);
        assert_eq!(compiled.kernel.comms, vec![(comm_key("nginx"), 1)]);
        let inner = compiled
            .kernel
            .allow4
            .iter()
            .find(|e| e.prefix_len == 32 + 16)
            .unwrap();
        assert_eq!(inner.data, [0, 0, 0, 0, 10, 20, 0, 0]);
        assert_eq!(inner.ports.len, 2, "its own rule and the /8's");
        let outer = compiled
            .kernel
            .allow4
            .iter()
            .find(|e| e.prefix_len == 32 + 8)
            .unwrap();
        assert_eq!(outer.ports.len, 1);
        assert_eq!(outer.ports.rules[0].protocol, libc::IPPROTO_UDP as u8);
        assert_eq!(compiled.kernel.allow6.len(), 1);
        assert_eq!(compiled.kernel.allow6[0].ports.rules[0].hi, u16::MAX);
    }

    #[test]
    fn host_rules_become_name_keys_with_their_ports() {
        let set = parse(
            "- policy: a\n  allow:\n    - host: \"*.Payments.example.com\"\n      ports: [443]\n      \
             protocol: tcp\n    - host: api.example.com\n\
             - policy: b\n  allow:\n    - host: \"*.payments.example.com\"\n      ports: [8443]\n",
        );
        let compiled = compile(&set, Path::new("/nonexistent"), 0).unwrap();
        assert_eq!(compiled.host_rules, 3);
        let wildcard = EgressNameKey {
            hash: dns_name_hash("payments.example.com"),
            policy: EGRESS_NO_POLICY,
            wildcard: 1,
        };
        let exact = EgressNameKey {
            hash: dns_name_hash("api.example.com"),
            policy: EGRESS_NO_POLICY,
            wildcard: 0,
        };
        assert!(compiled.kernel.names.contains(&(wildcard, 0b11)));
        assert!(compiled.kernel.names.contains(&(exact, 0b01)));
        let ports_of = |policy: u32, key: EgressNameKey| {
            compiled
                .kernel
                .name_ports
                .iter()
                .find(|(k, _)| *k == EgressNameKey { policy, ..key })
                .map(|(_, ports)| *ports)
                .unwrap()
        };
        let a = ports_of(0, wildcard);
        assert_eq!(
            (a.len, a.rules[0].lo, a.rules[0].protocol),
            (1, 443, libc::IPPROTO_TCP as u8)
        );
        assert_eq!(ports_of(1, wildcard).rules[0].lo, 8443);
        assert_eq!(ports_of(0, exact).rules[0].hi, u16::MAX);
    }

    #[test]
    fn ipv4_and_ipv6_prefixes_never_cover_each_other() {
        let set = parse(
            "- policy: web\n  allow:\n    - cidr: 0.0.0.0/0\n      ports: [53]\n    \
             - cidr: \"::/0\"\n      ports: [443]\n    - cidr: 10.1.2.3\n      ports: [22]\n    \
             - cidr: \"2001:db8::1\"\n      ports: [8443]\n",
        );
        let compiled = compile(&set, Path::new("/nonexistent"), 0).unwrap();
        let ports = |entries: Vec<EgressPorts>| -> Vec<Vec<u16>> {
            entries
                .iter()
                .map(|p| p.rules[..p.len as usize].iter().map(|r| r.lo).collect())
                .collect()
        };
        let v4: Vec<EgressPorts> = compiled.kernel.allow4.iter().map(|e| e.ports).collect();
        let v6: Vec<EgressPorts> = compiled.kernel.allow6.iter().map(|e| e.ports).collect();
        assert_eq!(ports(v4), vec![vec![53], vec![53, 22]]);
        assert_eq!(ports(v6), vec![vec![443], vec![443, 8443]]);
    }

    #[test]
    fn default_policy_is_never_selected_by_a_mask() {
        let set = parse(
            "- policy: a\n  match:\n    proc.name: curl\n  allow: []\n\
             - default:\n    mode: enforce\n    allow: []\n",
        );
        let compiled = compile(&set, Path::new("/nonexistent"), 0).unwrap();
        let config = compiled.kernel.config;
        assert_eq!(config.default_policy, 1);
        assert_eq!(config.active, 0b11);
        assert_eq!(config.enforce, 0b10);
        assert_eq!(config.cgroup_free & 0b10, 0);
        assert_eq!(config.comm_free & 0b10, 0);
        assert_eq!(compiled.names, ["a", "default"]);
    }

    #[test]
    fn cgroup_selectors_resolve_to_directory_inodes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("test.slice/app.scope")).unwrap();
        let set = parse(
            "- policy: app\n  match:\n    cgroup: test.slice/app.scope\n  allow: []\n\
             - policy: gone\n  match:\n    cgroup: missing.slice\n  allow: []\n",
        );
        let compiled = compile(&set, dir.path(), 0).unwrap();
        let inode = std::fs::metadata(dir.path().join("test.slice/app.scope"))
            .unwrap()
            .ino();
        assert_eq!(compiled.kernel.cgroups, vec![(inode, 1)]);
        assert_eq!(compiled.kernel.config.cgroup_free, 0);
        assert_eq!(compiled.unmatched.len(), 1);
    }

    #[test]
    fn container_ids_find_their_scopes() {
        let dir = tempfile::tempdir().unwrap();
        let id = "ab".repeat(32);
        let scope = dir.path().join(format!("system.slice/docker-{id}.scope"));
        std::fs::create_dir_all(&scope).unwrap();
        let set = parse(&format!(
            "- policy: c\n  match:\n    container.id: {}\n  allow: []\n",
            &id[..12]
        ));
        let compiled = compile(&set, dir.path(), 0).unwrap();
        let inode = std::fs::metadata(&scope).unwrap().ino();
        assert_eq!(compiled.kernel.cgroups, vec![(inode, 1)]);
    }

    #[test]
    fn metadata_selectors_find_running_containers_by_their_runtime_state() {
        let dir = tempfile::tempdir().unwrap();
        let cgroups = dir.path().join("cgroup");
        let id = "cd".repeat(32);
        let scope = cgroups.join(format!("system.slice/docker-{id}.scope"));
        std::fs::create_dir_all(&scope).unwrap();
        let docker = dir.path().join("docker");
        let state = docker.join("containers").join(&id);
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(
            state.join("config.v2.json"),
            serde_json::json!({"ID": id, "Name": "/web", "Config": {"Image": "registry.example/web:1.2"}})
                .to_string(),
        )
        .unwrap();
        let roots = RuntimeRoots {
            docker,
            ..RuntimeRoots::default()
        };
        let set = parse(
            "- policy: web\n  match:\n    container.image.repository: registry.example/web\n  allow: []\n\
             - policy: other\n  match:\n    container.image.repository: registry.example/db\n  allow: []\n",
        );
        let compiled = compile_for_host(&set, &cgroups, 0, &roots).unwrap();
        let inode = std::fs::metadata(&scope).unwrap().ino();
        assert_eq!(compiled.kernel.cgroups, vec![(inode, 0b01)]);
        assert_eq!(compiled.kernel.config.cgroup_free, 0);
        assert_eq!(compiled.by_metadata.len(), 2);
    }
}
