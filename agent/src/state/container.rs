//! Container identity from a cgroup path.
//!
//! Container runtimes place each container in a cgroup whose name embeds the
//! 64-hex container id, in a handful of layouts depending on the runtime and
//! the cgroup driver (systemd or cgroupfs). Recognising these lets the agent
//! fill Falco's `container.id` without talking to any runtime. Under
//! Kubernetes the kubelet puts every container below a pod cgroup named after
//! the pod's UID, so the same path also says which pod a process belongs to,
//! before any metadata source has heard of the container.
//!
//! The layouts recognised, with `<id>` the container id and `<uid>` the pod
//! UID (`<uid_>` with `_` for `-`, since `-` is systemd's hierarchy
//! separator):
//!
//! | runtime, driver | path |
//! | --- | --- |
//! | kubelet, cgroupfs (containerd, cri-dockerd) | `/kubepods[/<qos>]/pod<uid>/<id>` |
//! | kubelet, cgroupfs, CRI-O | `/kubepods[/<qos>]/pod<uid>/crio-<id>` |
//! | kubelet, systemd, containerd | `/kubepods.slice/…/kubepods-<qos>-pod<uid_>.slice/cri-containerd-<id>.scope` |
//! | kubelet, systemd, CRI-O | `/kubepods.slice/…/kubepods-<qos>-pod<uid_>.slice/crio-<id>.scope[/container]` |
//! | kubelet, systemd, cri-dockerd | `/kubepods.slice/…/kubepods-<qos>-pod<uid_>.slice/docker-<id>.scope` |
//! | kubelet systemd, containerd cgroupfs (mismatched drivers) | `…/kubepods-<qos>-pod<uid_>.slice:cri-containerd:<id>` |
//! | Docker | `/docker/<id>`, `/system.slice/docker-<id>.scope` |
//! | Podman | `/machine.slice/libpod-<id>.scope[/container]` |
//!
//! The same names appear under cgroup v1 (in every hierarchy of
//! `/proc/<pid>/cgroup`, see [`container_from_proc_cgroup`]) and v2, and
//! below a kind node's or docker-in-docker's own cgroup.
//!
//! Only the path is trusted, and only the innermost matching component is
//! used, so a container nested in another (kind nodes, docker-in-docker)
//! reports the inner one.

use std::fmt;

/// The container runtime that created a cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ContainerRuntime {
    /// Docker (`docker-<id>.scope`, `/docker/<id>`).
    Docker,
    /// containerd via its CRI plugin (`cri-containerd-<id>.scope`, or a bare
    /// id in a kubepods cgroupfs layout).
    Containerd,
    /// CRI-O (`crio-<id>.scope`, `crio-<id>`).
    CriO,
    /// Podman (`libpod-<id>.scope`).
    Podman,
}

impl ContainerRuntime {
    /// The lowercase runtime name used in rule output.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Containerd => "containerd",
            Self::CriO => "cri-o",
            Self::Podman => "podman",
        }
    }
}

/// A Kubernetes pod UID as the kubelet names pod cgroups: a lowercase UUID,
/// or the 32-hex hash it gives static pods.
///
/// Kept as 128 bits rather than a string so that copying a process's
/// container reference (which happens on every copy-on-write of the process
/// snapshot) allocates nothing for it. Two `u64` halves rather than a
/// `u128`: a `u128` is 16-byte aligned, which padded every process snapshot
/// that embeds a container reference by 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PodUid {
    /// The upper and lower 64 bits.
    halves: [u64; 2],
    /// Written as a dashed UUID (36 chars) rather than 32 bare hex digits.
    dashed: bool,
}

impl PodUid {
    /// Parses a UID written as a lowercase UUID (`1a2b3c4d-5e6f-…`) or 32
    /// lowercase hex digits; anything else is `None`.
    pub fn parse(s: &str) -> Option<PodUid> {
        let b = s.as_bytes();
        let dashed = match b.len() {
            32 => false,
            36 => true,
            _ => return None,
        };
        let mut bits = 0u128;
        for (i, &c) in b.iter().enumerate() {
            if dashed && matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return None;
                }
                continue;
            }
            bits = (bits << 4) | u128::from(lower_hex_value(c)?);
        }
        Some(PodUid {
            halves: [(bits >> 64) as u64, bits as u64],
            dashed,
        })
    }

    /// The 128 bits of the UID.
    fn bits(&self) -> u128 {
        (u128::from(self.halves[0]) << 64) | u128::from(self.halves[1])
    }
}

impl fmt::Display for PodUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = format!("{:032x}", self.bits());
        if self.dashed {
            write!(
                f,
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            )
        } else {
            f.write_str(&hex)
        }
    }
}

impl fmt::Debug for PodUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PodUid({self})")
    }
}

impl serde::Serialize for PodUid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PodUid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        PodUid::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not a pod UID: {text:?}")))
    }
}

/// A container recognised from its cgroup path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ContainerRef {
    /// Runtime inferred from the cgroup naming scheme.
    pub runtime: ContainerRuntime,
    /// The full 64-hex container id. Shared: every process of a container, and every
    /// copy-on-write copy of their snapshots, holds one reference instead of a copy.
    pub full_id: super::intern::SharedStr,
    /// The Kubernetes pod the container belongs to, when the path is a
    /// kubelet's pod layout. It identifies the pod even while the API server
    /// has not yet reported the container's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<PodUid>,
}

/// Length of the id Falco shows as `container.id`.
const SHORT_ID_LEN: usize = 12;

/// Length of a runtime's full container id.
const FULL_ID_LEN: usize = 64;

impl ContainerRef {
    /// The first 12 characters of the id, as Falco's `container.id` shows it.
    pub fn short_id(&self) -> &str {
        // full_id is public, so it may not be the 64 chars the parser
        // guarantees; never slice out of bounds or inside a character.
        self.full_id.get(..SHORT_ID_LEN).unwrap_or(&self.full_id)
    }
}

/// Prefixes of systemd scope units (`<prefix><id>.scope`) per runtime.
///
/// The conmon monitors (`crio-conmon-<id>.scope`, `libpod-conmon-<id>.scope`)
/// fail the id check because "conmon-…" is not hex, which is what we want:
/// they are the runtime's helper, not the container.
const SCOPE_PREFIXES: [(&str, ContainerRuntime); 4] = [
    ("docker-", ContainerRuntime::Docker),
    ("cri-containerd-", ContainerRuntime::Containerd),
    ("crio-", ContainerRuntime::CriO),
    ("libpod-", ContainerRuntime::Podman),
];

/// What containerd's cgroupfs manager names a container's cgroup when the
/// kubelet passes it a systemd-style parent (`<slice>:<prefix>:<name>`), i.e.
/// when the kubelet uses the systemd driver and containerd does not
/// (`SystemdCgroup = false`). It happens in real clusters, so it is
/// recognised rather than treated as a host process.
const CRI_CONTAINERD_COLON: &str = ":cri-containerd:";

/// Recognises the container a cgroup path belongs to (v2, or the path of
/// one v1 hierarchy), with its pod when the path is a kubelet layout.
///
/// Returns `None` for host cgroups (`/`, `/init.scope`, `/user.slice/…`,
/// pod-level cgroups without a container); the caller renders that as
/// "host".
pub fn container_from_cgroup(path: &str) -> Option<ContainerRef> {
    let components = components(path);
    (0..components.len()).rev().find_map(|i| {
        let (runtime, id) = match_component(&components, i)?;
        Some(ContainerRef {
            runtime,
            full_id: id.into(),
            // The pod is the container's own cgroup or one of its ancestors;
            // never look below the container (its sub-cgroups are its own).
            pod_uid: pod_uid_in(&components[..=i]),
        })
    })
}

/// Recognises the container of a process from the whole text of
/// `/proc/<pid>/cgroup`, cgroup v1 or v2.
///
/// On cgroup v2 the one line is `0::<path>`. Under v1 every mounted
/// hierarchy has its own line (`12:memory:/kubepods/…/<id>`), plus `0::…`
/// for the unified hierarchy on hybrid hosts, where it may be `/` for
/// processes the runtime did not place there. The v2 line wins when it names
/// a container, since that is the path the rest of the agent resolves;
/// otherwise the first v1 hierarchy that names one answers.
pub fn container_from_proc_cgroup(text: &str) -> Option<ContainerRef> {
    let mut from_v1 = None;
    for line in text.lines() {
        // The path is everything after the second ':' and may itself contain
        // ':' (the mismatched-driver containerd layout).
        let mut fields = line.splitn(3, ':');
        let (Some(hierarchy), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        // The kernel marks a removed cgroup; the process still lives there.
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        if hierarchy == "0" && controllers.is_empty() {
            if let Some(found) = container_from_cgroup(path) {
                return Some(found);
            }
        } else if from_v1.is_none() {
            from_v1 = container_from_cgroup(path);
        }
    }
    from_v1
}

/// The non-empty components of a cgroup path. `..` is kept: it is what a
/// reader in a cgroup namespace sees for cgroups outside its own subtree
/// (an agent pod without the host's cgroup namespace).
fn components(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

/// Checks whether component `i` names a container, using its ancestors to
/// disambiguate bare ids.
fn match_component<'a>(components: &[&'a str], i: usize) -> Option<(ContainerRuntime, &'a str)> {
    let component = components[i];

    if let Some((_, id)) = component.rsplit_once(CRI_CONTAINERD_COLON) {
        return is_container_id(id).then_some((ContainerRuntime::Containerd, id));
    }
    if let Some(unit) = component.strip_suffix(".scope") {
        return SCOPE_PREFIXES.iter().find_map(|&(prefix, runtime)| {
            unit.strip_prefix(prefix)
                .filter(|id| is_container_id(id))
                .map(|id| (runtime, id))
        });
    }
    // CRI-O's cgroupfs manager names the cgroup without the ".scope".
    if let Some(id) = component.strip_prefix("crio-") {
        return is_container_id(id).then_some((ContainerRuntime::CriO, id));
    }
    if !is_container_id(component) {
        return None;
    }
    let parent = i.checked_sub(1).map(|p| components[p]);
    match parent {
        Some("docker") => Some((ContainerRuntime::Docker, component)),
        // With the cgroupfs driver, docker (dockershim, cri-dockerd) and
        // containerd lay pods out identically; containerd is the runtime
        // most clusters run, so it is the better guess. The API server's
        // `containerID` scheme settles it when pod metadata is watched.
        Some(p) if is_cgroupfs_pod(components, i - 1, p) => {
            Some((ContainerRuntime::Containerd, component))
        }
        _ => None,
    }
}

/// The pod UID in `components` of a kubelet pod layout, if any; the
/// innermost pod wins, as for containers.
fn pod_uid_in(components: &[&str]) -> Option<PodUid> {
    components.iter().enumerate().rev().find_map(|(i, c)| {
        // The mismatched-driver layout names the pod slice and the container
        // in one component: `kubepods-<qos>-pod<uid_>.slice:cri-containerd:<id>`.
        let c = c.split_once(':').map_or(*c, |(slice, _)| slice);
        if let Some(slice) = c.strip_suffix(".slice") {
            // "kubelet-kubepods-…" appears on kind nodes and with a
            // customised kubelet cgroup root.
            if !slice.contains("kubepods") {
                return None;
            }
            let (_, uid) = slice.rsplit_once("-pod")?;
            return PodUid::parse(&uid.replace('_', "-"));
        }
        if is_cgroupfs_pod(components, i, c) {
            return c.strip_prefix("pod").and_then(PodUid::parse);
        }
        None
    })
}

/// Whether `component` (at `index`) is a kubepods cgroupfs pod directory,
/// i.e. `pod<uid>` somewhere below a `kubepods` directory. A path that
/// starts with `..` comes from a cgroup namespace that hides the ancestors,
/// so there the `pod<uid>` shape has to suffice.
fn is_cgroupfs_pod(components: &[&str], index: usize, component: &str) -> bool {
    component
        .strip_prefix("pod")
        .is_some_and(|uid| PodUid::parse(uid).is_some())
        && (components[..index].contains(&"kubepods") || components.first() == Some(&".."))
}

/// Extracts the Kubernetes pod UID (with dashes) from a cgroup path.
///
/// Handles the cgroupfs layout (`/kubepods/<qos>/pod<uid>/…`) and the
/// systemd layout (`…/kubepods-<qos>-pod<uid>.slice/…`, where the UID's
/// dashes are written as underscores because '-' is systemd's hierarchy
/// separator).
pub fn pod_uid_from_cgroup(path: &str) -> Option<String> {
    pod_uid_in(&components(path)).map(|uid| uid.to_string())
}

/// A container id: exactly 64 lowercase hex characters.
fn is_container_id(s: &str) -> bool {
    s.len() == FULL_ID_LEN && s.bytes().all(|c| lower_hex_value(c).is_some())
}

fn lower_hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ContainerRuntime::*;

    const ID: &str = "3f2a9c1be0d54c7a8e6b2f1d0c9a8b7e6f5d4c3b2a1908f7e6d5c4b3a2918f70";
    const ID2: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d";
    const UID_: &str = "1a2b3c4d_5e6f_4a8b_9c0d_1e2f3a4b5c6d";

    fn check(path: &str, expected: Option<(ContainerRuntime, &str)>) {
        let got = container_from_cgroup(path).map(|c| (c.runtime, c.full_id));
        let want = expected.map(|(runtime, id)| (runtime, id.into()));
        assert_eq!(got, want, "path {path}");
    }

    #[test]
    fn recognises_runtime_layouts() {
        let cases: Vec<(String, ContainerRuntime)> = vec![
            (format!("/system.slice/docker-{ID}.scope"), Docker),
            (format!("/docker/{ID}"), Docker),
            (format!("/docker/{ID}/init.scope"), Docker),
            (
                format!("/system.slice/cri-containerd-{ID}.scope"),
                Containerd,
            ),
            (format!("/kubepods/besteffort/pod{UID}/{ID}"), Containerd),
            (format!("/kubepods/burstable/pod{UID}/{ID}"), Containerd),
            (format!("/kubepods/pod{UID}/{ID}"), Containerd),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/\
                     kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope"
                ),
                Containerd,
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/\
                     kubepods-besteffort-pod{UID_}.slice/docker-{ID}.scope"
                ),
                Docker,
            ),
            (
                format!("/kubepods.slice/kubepods-pod{UID_}.slice/crio-{ID}.scope"),
                CriO,
            ),
            (format!("/system.slice/crio-{ID}.scope"), CriO),
            (format!("/kubepods/burstable/pod{UID}/crio-{ID}"), CriO),
            (format!("/machine.slice/libpod-{ID}.scope"), Podman),
            (
                format!("/machine.slice/libpod-{ID}.scope/container"),
                Podman,
            ),
            (
                format!(
                    "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"
                ),
                Podman,
            ),
        ];
        for (path, runtime) in &cases {
            check(path, Some((*runtime, ID)));
        }
    }

    #[test]
    fn innermost_container_wins() {
        // docker-in-docker, and a kind node (itself a docker container)
        // running pods under containerd.
        check(&format!("/docker/{ID2}/docker/{ID}"), Some((Docker, ID)));
        check(
            &format!(
                "/system.slice/docker-{ID2}.scope/kubelet.slice/kubelet-kubepods.slice/\
                 kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/\
                 cri-containerd-{ID}.scope"
            ),
            Some((Containerd, ID)),
        );
        // The node itself, outside any pod.
        check(
            &format!("/system.slice/docker-{ID2}.scope/system.slice/containerd.service"),
            Some((Docker, ID2)),
        );
    }

    #[test]
    fn rejects_host_and_helper_cgroups() {
        let cases = [
            String::new(),
            "/".into(),
            "/init.scope".into(),
            "/user.slice/user-1000.slice/session-3.scope".into(),
            "/system.slice/docker.service".into(),
            "/system.slice/containerd.service".into(),
            format!("/system.slice/crio-conmon-{ID}.scope"),
            format!("/machine.slice/libpod-conmon-{ID}.scope"),
            // Pod-level cgroups hold no container.
            format!("/kubepods/besteffort/pod{UID}"),
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice"),
            // A bare id needs a recognised parent.
            format!("/{ID}"),
            format!("/lxc/{ID}"),
            format!("/besteffort/pod{UID}/{ID}"),
            format!("/kubepods/besteffort/notapod/{ID}"),
            // Ids must be exactly 64 lowercase hex.
            format!("/docker/{}", &ID[..63]),
            format!("/docker/{ID}0"),
            format!("/docker/{}", ID.to_uppercase()),
            format!("/system.slice/docker-{}.scope", ID.replace('a', "g")),
            format!("/system.slice/docker-{ID}.service"),
            format!("/system.slice/docker-{ID}"),
            format!("/system.slice/podman-{ID}.scope"),
        ];
        for path in &cases {
            check(path, None);
        }
    }

    #[test]
    fn names_and_short_id() {
        let names: Vec<_> = [Docker, Containerd, CriO, Podman]
            .iter()
            .map(ContainerRuntime::as_str)
            .collect();
        assert_eq!(names, ["docker", "containerd", "cri-o", "podman"]);

        let c = container_from_cgroup(&format!("/docker/{ID}")).unwrap();
        assert_eq!(c.short_id(), "3f2a9c1be0d5");
        let odd = ContainerRef {
            runtime: Docker,
            full_id: "abc".into(),
            pod_uid: None,
        };
        assert_eq!(odd.short_id(), "abc");
        let multibyte = ContainerRef {
            runtime: Docker,
            full_id: "aéééééé".into(),
            pod_uid: None,
        };
        // Byte 12 falls inside a character: no panic, no split.
        assert_eq!(multibyte.short_id(), "aéééééé");
    }

    #[test]
    fn pod_uids() {
        let static_uid = "6e5c4e6d1c7e4f1d8a0d9b8c7a6f5e4d";
        let cases: Vec<(String, Option<&str>)> = vec![
            (format!("/kubepods/besteffort/pod{UID}/{ID}"), Some(UID)),
            (format!("/kubepods/pod{UID}/{ID}"), Some(UID)),
            (format!("/kubepods/burstable/pod{UID}"), Some(UID)),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/\
                     kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope"
                ),
                Some(UID),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{UID_}.slice/crio-{ID}.scope"),
                Some(UID),
            ),
            (
                format!(
                    "/system.slice/docker-{ID2}.scope/kubelet.slice/kubelet-kubepods.slice/\
                     kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/\
                     cri-containerd-{ID}.scope"
                ),
                Some(UID),
            ),
            (
                format!("/kubepods/besteffort/pod{static_uid}/{ID}"),
                Some(static_uid),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{static_uid}.slice"),
                Some(static_uid),
            ),
            ("/".into(), None),
            (format!("/docker/{ID}"), None),
            (format!("/system.slice/docker-{ID}.scope"), None),
            ("/kubepods.slice/kubepods-besteffort.slice".into(), None),
            (format!("/podman/pod{UID}/{ID}"), None),
            (format!("/user.slice/user-pod{UID_}.slice"), None),
            (
                format!("/kubepods/besteffort/pod{}/{ID}", UID.to_uppercase()),
                None,
            ),
            (format!("/kubepods/besteffort/pod{}/{ID}", &UID[..35]), None),
            (
                format!("/kubepods/besteffort/pod{}/{ID}", UID.replace('-', "x")),
                None,
            ),
        ];
        for (path, want) in &cases {
            assert_eq!(pod_uid_from_cgroup(path).as_deref(), *want, "path {path}");
        }
    }

    /// `/proc/<pid>/cgroup` as recorded on nodes of each layout; `@ID@` is the container id,
    /// `@UID@` the pod UID and `@UID_@` the same with underscores.
    const RECORDED: &[(&str, &str, Option<ContainerRuntime>)] = &[
        (
            "v1 cgroupfs containerd (kubeadm, hybrid host: the unified line is /)",
            "12:hugetlb:/kubepods/burstable/pod@UID@/@ID@\n\
             11:freezer:/kubepods/burstable/pod@UID@/@ID@\n\
             10:cpu,cpuacct:/kubepods/burstable/pod@UID@/@ID@\n\
             9:net_cls,net_prio:/kubepods/burstable/pod@UID@/@ID@\n\
             8:blkio:/kubepods/burstable/pod@UID@/@ID@\n\
             7:perf_event:/kubepods/burstable/pod@UID@/@ID@\n\
             6:pids:/kubepods/burstable/pod@UID@/@ID@\n\
             5:devices:/kubepods/burstable/pod@UID@/@ID@\n\
             4:rdma:/\n\
             3:memory:/kubepods/burstable/pod@UID@/@ID@\n\
             2:cpuset:/kubepods/burstable/pod@UID@/@ID@\n\
             1:name=systemd:/kubepods/burstable/pod@UID@/@ID@\n\
             0::/\n",
            Some(Containerd),
        ),
        (
            "v1 cgroupfs cri-o",
            "11:memory:/kubepods/besteffort/pod@UID@/crio-@ID@\n\
             10:pids:/kubepods/besteffort/pod@UID@/crio-@ID@\n\
             9:cpu,cpuacct:/kubepods/besteffort/pod@UID@/crio-@ID@\n\
             1:name=systemd:/kubepods/besteffort/pod@UID@/crio-@ID@\n",
            Some(CriO),
        ),
        (
            "v1 systemd docker (dockershim, pure v1: no unified line)",
            "11:devices:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod@UID_@.slice/docker-@ID@.scope\n\
             10:cpuset:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod@UID_@.slice/docker-@ID@.scope\n\
             9:memory:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod@UID_@.slice/docker-@ID@.scope\n\
             8:cpu,cpuacct:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod@UID_@.slice/docker-@ID@.scope\n\
             1:name=systemd:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod@UID_@.slice/docker-@ID@.scope\n",
            Some(Docker),
        ),
        (
            "v1 systemd cri-o (OpenShift)",
            "12:pids:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod@UID_@.slice/crio-@ID@.scope\n\
             7:memory:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod@UID_@.slice/crio-@ID@.scope\n\
             1:name=systemd:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod@UID_@.slice/crio-@ID@.scope\n",
            Some(CriO),
        ),
        (
            "v1 systemd containerd",
            "5:memory:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod@UID_@.slice/cri-containerd-@ID@.scope\n\
             1:name=systemd:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod@UID_@.slice/cri-containerd-@ID@.scope\n\
             0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod@UID_@.slice/cri-containerd-@ID@.scope\n",
            Some(Containerd),
        ),
        (
            "v2 systemd containerd",
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod@UID_@.slice/cri-containerd-@ID@.scope\n",
            Some(Containerd),
        ),
        (
            "v2 systemd containerd, guaranteed QoS",
            "0::/kubepods.slice/kubepods-pod@UID_@.slice/cri-containerd-@ID@.scope\n",
            Some(Containerd),
        ),
        (
            "v2 cgroupfs containerd (k3s)",
            "0::/kubepods/besteffort/pod@UID@/@ID@\n",
            Some(Containerd),
        ),
        (
            "v2 systemd cri-o, crun's container sub-cgroup",
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod@UID_@.slice/crio-@ID@.scope/container\n",
            Some(CriO),
        ),
        (
            "v2 cgroupfs cri-o",
            "0::/kubepods/burstable/pod@UID@/crio-@ID@\n",
            Some(CriO),
        ),
        (
            "v2 systemd cri-dockerd",
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod@UID_@.slice/docker-@ID@.scope\n",
            Some(Docker),
        ),
        (
            "v2 kubelet systemd, containerd cgroupfs (mismatched drivers)",
            "0::/system.slice/containerd.service/kubepods-burstable-pod@UID_@.slice:cri-containerd:@ID@\n",
            Some(Containerd),
        ),
        (
            "v2 seen from a cgroup namespace (agent pod without the host's), cgroupfs",
            "0::/../../../besteffort/pod@UID@/@ID@\n",
            Some(Containerd),
        ),
        (
            "v2 seen from a cgroup namespace, systemd",
            "0::/../../../kubepods-besteffort.slice/kubepods-besteffort-pod@UID_@.slice/cri-containerd-@ID@.scope\n",
            Some(Containerd),
        ),
        (
            "v2 kind node (the node is a docker container)",
            "0::/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope/\
             kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/\
             kubelet-kubepods-besteffort-pod@UID_@.slice/cri-containerd-@ID@.scope\n",
            Some(Containerd),
        ),
        (
            "v2, the container's cgroup already removed",
            "0::/kubepods/burstable/pod@UID@/@ID@ (deleted)\n",
            Some(Containerd),
        ),
        (
            "v2 cri-o's conmon, in the pod but not a container",
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod@UID_@.slice/crio-conmon-@ID@.scope\n",
            None,
        ),
        (
            "v2 host service",
            "0::/system.slice/containerd.service\n",
            None,
        ),
        (
            "v1 host process",
            "12:pids:/system.slice/sshd.service\n1:name=systemd:/system.slice/sshd.service\n0::/\n",
            None,
        ),
        ("empty or unreadable", "", None),
    ];

    #[test]
    fn recorded_proc_cgroup_files() {
        let uids = [UID, "6e5c4e6d1c7e4f1d8a0d9b8c7a6f5e4d"];
        for (layout, text, runtime) in RECORDED {
            for uid in uids {
                let text = text
                    .replace("@ID@", ID)
                    .replace("@UID@", uid)
                    .replace("@UID_@", &uid.replace('-', "_"));
                let got = container_from_proc_cgroup(&text);
                let want = runtime.map(|runtime| ContainerRef {
                    runtime,
                    full_id: ID.into(),
                    pod_uid: PodUid::parse(uid),
                });
                assert_eq!(got, want, "{layout} (pod {uid})");
                // Each line on its own is a cgroup path the v2 reader could have.
                if let Some(last) = text.lines().find_map(|l| l.strip_prefix("0::"))
                    && want.is_some()
                    && last != "/"
                {
                    let path = last.trim_end_matches(" (deleted)");
                    assert_eq!(container_from_cgroup(path), want, "{layout}: {path}");
                    assert_eq!(pod_uid_from_cgroup(path).as_deref(), Some(uid));
                }
            }
        }
    }

    #[test]
    fn unified_line_wins_over_v1_hierarchies() {
        // A hybrid host where the unified hierarchy and a v1 hierarchy disagree (a process
        // moved by hand): the unified one is the path the rest of the agent resolves.
        let text = format!("3:memory:/docker/{ID2}\n0::/kubepods/besteffort/pod{UID}/{ID}\n");
        let got = container_from_proc_cgroup(&text).unwrap();
        assert_eq!((got.runtime, got.full_id.as_str()), (Containerd, ID));
        // Lines that are not cgroup lines are skipped.
        assert_eq!(
            container_from_proc_cgroup(&format!("garbage\n3:memory:/docker/{ID2}\n"))
                .map(|c| c.full_id),
            Some(ID2.into())
        );
    }

    #[test]
    fn pod_uid_round_trips() {
        for text in [
            UID,
            "6e5c4e6d1c7e4f1d8a0d9b8c7a6f5e4d",
            "00000000-0000-0000-0000-000000000000",
        ] {
            let uid = PodUid::parse(text).unwrap();
            assert_eq!(uid.to_string(), text);
            let json = serde_json::to_string(&uid).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<PodUid>(&json).unwrap(), uid);
        }
        for bad in [
            "",
            &UID[..35],
            &UID.to_uppercase(),
            &UID.replace('-', "_"),
            "1a2b3c4d5-e6f-4a8b-9c0d-1e2f3a4b5c6d",
            "6e5c4e6d1c7e4f1d8a0d9b8c7a6f5e4g",
        ] {
            assert_eq!(PodUid::parse(bad), None, "{bad:?}");
        }
        assert!(serde_json::from_str::<PodUid>("\"nope\"").is_err());
        // A recorded container reference without a pod still reads back.
        let old = format!(r#"{{"runtime":"Docker","full_id":"{ID}"}}"#);
        let parsed: ContainerRef = serde_json::from_str(&old).unwrap();
        assert_eq!(parsed.pod_uid, None);
        assert_eq!(serde_json::to_string(&parsed).unwrap(), old);
    }
}
