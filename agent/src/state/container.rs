//! Container identity from a cgroup v2 path.
//!
//! Container runtimes place each container in a cgroup whose name embeds the
//! 64-hex container id, in a handful of layouts depending on the runtime and
//! the cgroup driver (systemd or cgroupfs). Recognising these lets the agent
//! fill Falco's `container.id` without talking to any runtime.
//!
//! Only the path is trusted, and only the innermost matching component is
//! used, so a container nested in another (kind nodes, docker-in-docker)
//! reports the inner one.

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

/// A container recognised from its cgroup path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ContainerRef {
    /// Runtime inferred from the cgroup naming scheme.
    pub runtime: ContainerRuntime,
    /// The full 64-hex container id.
    pub full_id: String,
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

/// Recognises the container a cgroup v2 path belongs to.
///
/// Returns `None` for host cgroups (`/`, `/init.scope`, `/user.slice/…`,
/// pod-level cgroups without a container); the caller renders that as
/// "host".
pub fn container_from_cgroup(path: &str) -> Option<ContainerRef> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    (0..components.len())
        .rev()
        .find_map(|i| match_component(&components, i))
}

/// Checks whether component `i` names a container, using its ancestors to
/// disambiguate bare ids.
fn match_component(components: &[&str], i: usize) -> Option<ContainerRef> {
    let component = components[i];
    let found = |runtime, id: &str| {
        Some(ContainerRef {
            runtime,
            full_id: id.to_owned(),
        })
    };

    if let Some(unit) = component.strip_suffix(".scope") {
        return SCOPE_PREFIXES.iter().find_map(|&(prefix, runtime)| {
            unit.strip_prefix(prefix)
                .filter(|id| is_container_id(id))
                .and_then(|id| found(runtime, id))
        });
    }
    // CRI-O's cgroupfs manager names the cgroup without the ".scope".
    if let Some(id) = component.strip_prefix("crio-") {
        return if is_container_id(id) {
            found(ContainerRuntime::CriO, id)
        } else {
            None
        };
    }
    if !is_container_id(component) {
        return None;
    }
    let parent = i.checked_sub(1).map(|p| components[p]);
    match parent {
        Some("docker") => found(ContainerRuntime::Docker, component),
        // With the cgroupfs driver, docker (dockershim) and containerd lay
        // pods out identically; containerd is the runtime left on current
        // Kubernetes, so it is the better guess.
        Some(p) if is_cgroupfs_pod(components, i - 1, p) => {
            found(ContainerRuntime::Containerd, component)
        }
        _ => None,
    }
}

/// Whether `component` (at `index`) is a kubepods cgroupfs pod directory,
/// i.e. `pod<uid>` somewhere below a `kubepods` directory.
fn is_cgroupfs_pod(components: &[&str], index: usize, component: &str) -> bool {
    component.strip_prefix("pod").is_some_and(is_pod_uid)
        && components[..index].contains(&"kubepods")
}

/// Extracts the Kubernetes pod UID (with dashes) from a cgroup v2 path.
///
/// Handles the cgroupfs layout (`/kubepods/<qos>/pod<uid>/…`) and the
/// systemd layout (`…/kubepods-<qos>-pod<uid>.slice/…`, where the UID's
/// dashes are written as underscores because '-' is systemd's hierarchy
/// separator).
pub fn pod_uid_from_cgroup(path: &str) -> Option<String> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    components.iter().enumerate().rev().find_map(|(i, c)| {
        if let Some(slice) = c.strip_suffix(".slice") {
            // "kubelet-kubepods-…" appears on kind nodes and with a
            // customised kubelet cgroup root.
            if !slice.contains("kubepods") {
                return None;
            }
            let (_, uid) = slice.rsplit_once("-pod")?;
            let uid = uid.replace('_', "-");
            return is_pod_uid(&uid).then_some(uid);
        }
        if is_cgroupfs_pod(&components, i, c) {
            return c.strip_prefix("pod").map(str::to_owned);
        }
        None
    })
}

/// A container id: exactly 64 lowercase hex characters.
fn is_container_id(s: &str) -> bool {
    s.len() == FULL_ID_LEN && s.bytes().all(is_lower_hex)
}

/// A pod UID: a lowercase UUID, or the 32-hex hash kubelet assigns to
/// static pods.
fn is_pod_uid(s: &str) -> bool {
    let b = s.as_bytes();
    match b.len() {
        32 => b.iter().copied().all(is_lower_hex),
        36 => b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => is_lower_hex(c),
        }),
        _ => false,
    }
}

fn is_lower_hex(c: u8) -> bool {
    c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
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
        let got = container_from_cgroup(path);
        let want = expected.map(|(runtime, id)| ContainerRef {
            runtime,
            full_id: id.to_owned(),
        });
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
        };
        assert_eq!(odd.short_id(), "abc");
        let multibyte = ContainerRef {
            runtime: Docker,
            full_id: "aéééééé".into(),
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
}
