//! Container metadata read from the container runtimes' on-disk state.
//!
//! Falco's container plugin asks each runtime's API (Docker's HTTP API, the
//! CRI gRPC service) for a container's image, name, mounts, privilege and
//! Kubernetes pod. Every runtime also keeps that information in files with a
//! stable, well-known layout, so the agent reads those instead and needs no
//! API client, socket access or async machinery:
//!
//! - Docker: `<docker>/containers/<id>/config.v2.json` and `hostconfig.json`.
//! - containerd (and Kubernetes on containerd): the OCI bundle
//!   `<containerd_state>/io.containerd.runtime.v2.task/<namespace>/<id>/config.json`,
//!   whose annotations carry the CRI plugin's pod and image information.
//! - CRI-O and Podman: the OCI spec in
//!   `<storage>/overlay-containers/<id>/userdata/config.json`; Podman's name
//!   and image come from containers/storage's `containers.json`.
//!
//! The cgroup naming scheme only hints at the runtime (a bare id in a
//! kubepods cgroupfs layout may be containerd or Docker), so every layout is
//! tried, starting with the likely one.
//!
//! Mounts follow what Falco shows: the user's volumes and bind mounts. The
//! OCI spec also lists the mounts every container gets (`/proc`, `/sys`,
//! `/dev`, ...) and the files the runtime bind mounts from its own state
//! (`/etc/hostname`, `/etc/resolv.conf`, `/dev/shm`, ...); those are dropped,
//! otherwise `container.mount.dest[/proc*]` would match every container.
//!
//! [`ContainerMetaCache`] caches results per container id. Lookups do
//! blocking file reads, but only on the first sight of a container and on
//! retries of a miss.
//!
//! On a Kubernetes node the API server's view of the node's pods
//! ([`RuntimeRoots::pods`], see [`crate::state::pods`]) complements the files:
//!
//! - `k8s.*` (pod name, namespace, UID, labels) come from the API when it
//!   knows the pod: labels exist only there, and they change during a pod's
//!   life, which the runtime's copy made at creation never reflects.
//! - `container.name` and `container.privileged` come from the API when it
//!   knows the container: the name is the pod spec's (what Falco shows under
//!   CRI, where Docker's files say `k8s_<name>_<pod>_…`), and privilege is the
//!   spec's `securityContext.privileged`, exact where containerd's files only
//!   allow a heuristic.
//! - The image, mounts, start time and container labels come from the files:
//!   they record what the runtime actually started, where the API's status
//!   may hold an image id. The API's image fills in when the files name none.
//! - Anything one source lacks the other fills, so a container is described
//!   as well as either can while the API is unreachable or has not yet
//!   reported a new container.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use lru::LruCache;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use tracing::debug;

use crate::state::{
    container::{ContainerRef, ContainerRuntime},
    pods::{ApiMatch, PodIndex},
};

/// How long a lookup that found nothing is trusted before trying again.
///
/// The first process of a container can run before the runtime has written
/// every state file (containerd writes `init.pid` after the process exists,
/// Docker updates `config.v2.json` after start), so a miss is not final.
pub const DEFAULT_MISS_RETRY: Duration = Duration::from_secs(2);

/// Upper bound on a state file read into memory. Real ones are kilobytes
/// (`containers.json` grows with the number of containers); anything larger
/// is not a runtime's file and is not worth the allocation.
const MAX_STATE_FILE_BYTES: u64 = 16 << 20;

/// A mount of a container, as Falco's `container.mounts` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Mount {
    /// Host path (or volume path) mounted into the container.
    pub source: String,
    /// Path inside the container.
    pub dest: String,
    /// Docker's mode string from `-v src:dst:mode` (e.g. `ro`, `z`); empty
    /// for the other runtimes, as in Falco.
    pub mode: String,
    /// Whether the mount is writable from the container.
    pub rw: bool,
    /// Mount propagation (`rprivate`, `rslave`, ...). For Kubernetes
    /// containers this uses Falco's CRI vocabulary: `private`, `rslave` or
    /// `rshared`.
    pub propagation: String,
}

/// What the runtime knows about a container, for Falco's `container.*` and
/// `k8s.*` fields. Anything the runtime's files do not say is `None`/empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ContainerMeta {
    /// Container name (`container.name`): Docker's name without the leading
    /// `/`, or the Kubernetes container name (the pod name for a pod's
    /// sandbox container).
    pub name: Option<String>,
    /// Image reference as the runtime recorded it (`container.image`), e.g.
    /// `nginx:1.25` for Docker, `docker.io/library/nginx:1.25` under
    /// Kubernetes.
    pub image: Option<String>,
    /// `image` without tag and digest (`container.image.repository`); `None`
    /// when the image was given as an image id.
    pub image_repository: Option<String>,
    /// Tag of `image` (`container.image.tag`).
    pub image_tag: Option<String>,
    /// Whether the container runs privileged (`container.privileged`).
    pub privileged: Option<bool>,
    /// The user's mounts (`container.mounts`), in a stable order.
    pub mounts: Vec<Mount>,
    /// Creation (or, failing that, start) time in ns since the epoch
    /// (`container.start_ts`).
    pub start_ts_ns: Option<i64>,
    /// Kubernetes pod name (`k8s.pod.name`).
    pub pod_name: Option<String>,
    /// Kubernetes namespace (`k8s.ns.name`).
    pub pod_namespace: Option<String>,
    /// Kubernetes pod UID (`k8s.pod.uid`).
    pub pod_uid: Option<String>,
    /// Container labels (`container.label[...]`, `container.labels`).
    pub labels: BTreeMap<String, String>,
    /// Kubernetes pod labels (`k8s.pod.labels`, `k8s.pod.label[...]`), from
    /// the API server.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
    /// The runtime, when a source states it (the API's `containerID`
    /// scheme); the cgroup layout alone cannot tell containerd from
    /// cri-dockerd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<ContainerRuntime>,
}

impl ContainerMeta {
    /// Falco's `container.mount.dest[pattern]`: the first mount whose
    /// destination matches `pattern`, a path or an fnmatch(3) glob in which
    /// `*` also matches `/` (Falco does not pass `FNM_PATHNAME`).
    pub fn mount_dest_matches(&self, pattern: &str) -> Option<&Mount> {
        self.mounts.iter().find(|m| glob_match(pattern, &m.dest))
    }

    /// Falco's `k8s.pod.labels`: `key:value` per label in key order,
    /// separated by `, ` (just `key` for an empty value).
    pub fn pod_labels_string(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.pod_labels {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(key);
            if !value.is_empty() {
                out.push(':');
                out.push_str(value);
            }
        }
        out
    }

    /// Falco's `container.mounts`: `source:dest:mode:rw:propagation` per
    /// mount, comma-separated.
    pub fn mounts_string(&self) -> String {
        let rendered: Vec<String> = self
            .mounts
            .iter()
            .map(|m| {
                format!(
                    "{}:{}:{}:{}:{}",
                    m.source, m.dest, m.mode, m.rw, m.propagation
                )
            })
            .collect();
        rendered.join(",")
    }
}

/// Where the runtimes keep their state, and the other sources of container
/// metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeRoots {
    /// Docker's data root (`dockerd --data-root`).
    pub docker: PathBuf,
    /// containerd's state directory (`state` in its config), which holds the
    /// running tasks' OCI bundles.
    pub containerd_state: PathBuf,
    /// containers/storage roots used by CRI-O and Podman: the graph root and
    /// the run root, both of which may hold a container's `userdata`.
    pub containers_storage: Vec<PathBuf>,
    /// The node's pods as the API server reports them, when the agent
    /// watches them (see the module documentation for what they add).
    pub pods: Option<PodIndex>,
}

impl Default for RuntimeRoots {
    /// The runtimes' default locations on a host.
    fn default() -> Self {
        Self {
            docker: PathBuf::from("/var/lib/docker"),
            containerd_state: PathBuf::from("/run/containerd"),
            containers_storage: vec![
                PathBuf::from("/var/lib/containers/storage"),
                PathBuf::from("/run/containers/storage"),
            ],
            pods: None,
        }
    }
}

impl RuntimeRoots {
    /// Moves every root below `host_root`, for an agent that sees the host's
    /// filesystem mounted at e.g. `/host` (a DaemonSet).
    ///
    /// Mount sources in the results stay host paths, since that is what the
    /// runtime recorded.
    pub fn with_host_root(self, host_root: impl AsRef<Path>) -> Self {
        let host_root = host_root.as_ref();
        let under = |p: PathBuf| host_root.join(p.strip_prefix("/").unwrap_or(&p));
        Self {
            docker: under(self.docker),
            containerd_state: under(self.containerd_state),
            containers_storage: self.containers_storage.into_iter().map(under).collect(),
            pods: self.pods,
        }
    }

    /// Adds the API server's view of the node's pods as a source.
    pub fn with_pods(self, pods: PodIndex) -> Self {
        Self {
            pods: Some(pods),
            ..self
        }
    }
}

/// What the runtime's files said about a container.
#[derive(Clone, Debug)]
enum Files {
    Found(Arc<ContainerMeta>),
    Missing { checked: Instant },
}

impl Files {
    fn meta(&self) -> Option<&Arc<ContainerMeta>> {
        match self {
            Files::Found(meta) => Some(meta),
            Files::Missing { .. } => None,
        }
    }
}

/// A cached lookup result.
#[derive(Clone, Debug)]
struct Entry {
    files: Files,
    /// The files combined with an API record, and that record: valid while
    /// the index still answers with the very same record and the files were
    /// not read again.
    merged: Option<(ApiMatch, Arc<ContainerMeta>)>,
}

/// Bounded cache of [`ContainerMeta`] by container id.
///
/// Not synchronised: `get` needs `&mut self` because it updates the LRU
/// order, so share it behind a lock.
#[derive(Debug)]
pub struct ContainerMetaCache {
    roots: RuntimeRoots,
    miss_retry: Duration,
    entries: LruCache<String, Entry>,
}

impl ContainerMetaCache {
    /// A cache reading from `roots` and holding at most `capacity` containers
    /// (at least one), retrying misses after [`DEFAULT_MISS_RETRY`].
    pub fn new(roots: RuntimeRoots, capacity: usize) -> Self {
        Self {
            roots,
            miss_retry: DEFAULT_MISS_RETRY,
            entries: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
        }
    }

    /// Sets how long a miss is cached before the files are read again.
    pub fn with_retry(mut self, miss_retry: Duration) -> Self {
        self.miss_retry = miss_retry;
        self
    }

    /// Metadata of `container`, read from disk on first use and combined
    /// with the API server's record of it when the pods are watched.
    ///
    /// Found metadata is cached until evicted. A miss is cached too, so a
    /// container without state files (or one we cannot read) costs a few
    /// failed `open`s per retry interval rather than per event. The combined
    /// metadata is cached with the API record it came from and built again
    /// only when the pod changes, so a lookup allocates nothing in the steady
    /// state.
    pub fn get(&mut self, container: &ContainerRef) -> Option<Arc<ContainerMeta>> {
        // full_id is public and ends up in paths: refuse anything that could
        // walk out of the runtime directories.
        if !is_hex(&container.full_id) {
            return None;
        }
        let api = self
            .roots
            .pods
            .as_ref()
            .and_then(|pods| pods.lookup(container));
        let stale = match self.entries.get(container.full_id.as_str()) {
            None => true,
            Some(entry) => match &entry.files {
                Files::Found(_) => false,
                Files::Missing { checked } => checked.elapsed() >= self.miss_retry,
            },
        };
        if stale {
            let files = match load(&self.roots, container) {
                Some(meta) => Files::Found(Arc::new(meta)),
                None => Files::Missing {
                    checked: Instant::now(),
                },
            };
            self.entries.put(
                container.full_id.to_string(),
                Entry {
                    files,
                    merged: None,
                },
            );
        }
        let entry = self.entries.get_mut(container.full_id.as_str())?;
        let Some(api) = api else {
            return entry.files.meta().cloned();
        };
        if let Some((source, meta)) = &entry.merged
            && source.same(&api)
        {
            return Some(Arc::clone(meta));
        }
        let meta = Arc::new(merge(entry.files.meta().map(Arc::as_ref), &api));
        entry.merged = Some((api, Arc::clone(&meta)));
        Some(meta)
    }

    /// Number of cached containers, found or missing.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Combines what the runtime's files say (if anything) with the API server's
/// record, with the precedence the module documentation explains.
fn merge(files: Option<&ContainerMeta>, api: &ApiMatch) -> ContainerMeta {
    let mut meta = files.cloned().unwrap_or_default();
    let pod = api.pod();
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    meta.pod_name = non_empty(&pod.name).or(meta.pod_name);
    meta.pod_namespace = non_empty(&pod.namespace).or(meta.pod_namespace);
    meta.pod_uid = non_empty(&pod.uid).or(meta.pod_uid);
    meta.pod_labels.clone_from(&pod.labels);
    if let ApiMatch::Container(container) = api {
        meta.name = non_empty(&container.name).or(meta.name);
        meta.privileged = Some(container.privileged);
        meta.runtime = container.runtime.or(meta.runtime);
        // An image id from the files names no repository: the API's
        // reference is more useful then.
        if meta.image_repository.is_none() && container.image_repository.is_some() {
            meta.image.clone_from(&container.image);
            meta.image_repository
                .clone_from(&container.image_repository);
            meta.image_tag.clone_from(&container.image_tag);
        } else if meta.image.is_none() {
            meta.image.clone_from(&container.image);
        }
    }
    meta
}

/// Splits an image reference into repository and tag, dropping any digest,
/// the way Falco fills `container.image.repository` and `.tag`:
///
/// - `docker.io/library/nginx:1.25@sha256:…` → (`docker.io/library/nginx`, `1.25`)
/// - `registry:5000/app` → (`registry:5000/app`, none): a colon before the
///   last `/` separates a registry port, not a tag
/// - `nginx@sha256:…` → (`nginx`, none)
///
/// The repository is not normalised (`nginx` stays `nginx`), matching Falco.
/// Image ids (`sha256:…`) are not references; callers check for them first.
pub fn split_image(reference: &str) -> (&str, Option<&str>) {
    let name = reference
        .split_once('@')
        .map_or(reference, |(name, _digest)| name);
    let last_slash = name.rfind('/');
    match name.rfind(':') {
        Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
            let tag = &name[colon + 1..];
            (&name[..colon], (!tag.is_empty()).then_some(tag))
        }
        _ => (name, None),
    }
}

/// Where a container's state may be found.
#[derive(Clone, Copy, Debug)]
enum Source {
    Docker,
    Containerd,
    Storage,
}

/// Reads `container`'s metadata from the first layout that has it.
fn load(roots: &RuntimeRoots, container: &ContainerRef) -> Option<ContainerMeta> {
    use Source::{Containerd, Docker, Storage};
    let order = match container.runtime {
        ContainerRuntime::Docker => [Docker, Containerd, Storage],
        ContainerRuntime::Containerd => [Containerd, Docker, Storage],
        ContainerRuntime::CriO | ContainerRuntime::Podman => [Storage, Containerd, Docker],
    };
    let id = container.full_id.as_str();
    order.into_iter().find_map(|source| match source {
        Docker => load_docker(&roots.docker, id),
        Containerd => load_containerd(&roots.containerd_state, id),
        Storage => load_storage(&roots.containers_storage, id),
    })
}

// ---------------------------------------------------------------------------
// Docker

/// The parts of Docker's `config.v2.json` we use.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct DockerContainer {
    config: DockerConfig,
    name: String,
    created: String,
    state: DockerState,
    #[serde(deserialize_with = "null_as_default")]
    mount_points: BTreeMap<String, DockerMountPoint>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct DockerConfig {
    image: String,
    #[serde(deserialize_with = "null_as_default")]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct DockerState {
    started_at: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct DockerMountPoint {
    source: String,
    destination: String,
    #[serde(rename = "RW")]
    rw: bool,
    // Docker's MountPoint.Mode is serialised under this name for backwards
    // compatibility; it is what `docker inspect` shows as Mode.
    #[serde(rename = "Relabel")]
    mode: String,
    propagation: String,
}

/// The parts of Docker's `hostconfig.json` we use.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct DockerHostConfig {
    privileged: bool,
}

fn load_docker(docker_root: &Path, id: &str) -> Option<ContainerMeta> {
    let dir = docker_root.join("containers").join(id);
    let container: DockerContainer = read_json(&dir.join("config.v2.json"))?;
    // A container is still worth reporting without its host config.
    let host: Option<DockerHostConfig> = read_json(&dir.join("hostconfig.json"));

    let labels = container.config.labels;
    let label = |key: &str| labels.get(key).and_then(|v| non_empty(v));
    let (image, image_repository, image_tag) = image_fields(&container.config.image);
    let mounts = container
        .mount_points
        .into_values()
        .map(|m| Mount {
            source: m.source,
            dest: m.destination,
            mode: m.mode,
            rw: m.rw,
            propagation: m.propagation,
        })
        .collect();
    Some(ContainerMeta {
        name: non_empty(container.name.strip_prefix('/').unwrap_or(&container.name)),
        image,
        image_repository,
        image_tag,
        privileged: host.map(|h| h.privileged),
        mounts,
        // Falco reports Docker's creation time; StartedAt only when that is
        // unusable.
        start_ts_ns: parse_rfc3339_ns(&container.created)
            .or_else(|| parse_rfc3339_ns(&container.state.started_at)),
        pod_name: label(K8S_POD_NAME),
        pod_namespace: label(K8S_POD_NAMESPACE),
        pod_uid: label(K8S_POD_UID),
        labels,
        pod_labels: BTreeMap::new(),
        runtime: None,
    })
}

// ---------------------------------------------------------------------------
// OCI bundles (containerd, CRI-O, Podman)

/// Labels the kubelet puts on every container it creates.
const K8S_POD_NAME: &str = "io.kubernetes.pod.name";
const K8S_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
const K8S_POD_UID: &str = "io.kubernetes.pod.uid";
const K8S_CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// containerd CRI plugin annotations.
const CRI_IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
const CRI_CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
const CRI_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
const CRI_SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
const CRI_SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
const CRI_SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";

/// CRI-O annotations.
const CRIO_IMAGE_NAME: &str = "io.kubernetes.cri-o.ImageName";
const CRIO_CONTAINER_NAME: &str = "io.kubernetes.cri-o.ContainerName";
const CRIO_CONTAINER_TYPE: &str = "io.kubernetes.cri-o.ContainerType";
const CRIO_CREATED: &str = "io.kubernetes.cri-o.Created";
const CRIO_PRIVILEGED: &str = "io.kubernetes.cri-o.Privileged";
const CRIO_LABELS: &str = "io.kubernetes.cri-o.Labels";

/// Podman annotation, set by `podman run --privileged`.
const PODMAN_PRIVILEGED: &str = "io.podman.annotations.privileged";

/// Value of the container-type annotations for a pod's sandbox ("pause")
/// container.
const SANDBOX_TYPE: &str = "sandbox";

/// containerd namespaces in the order they are tried; any other namespace
/// directory present is tried after these.
const CONTAINERD_NAMESPACES: [&str; 3] = ["k8s.io", "moby", "default"];

/// Files whose mtime approximates a task's start, tried before the bundle
/// directory's own mtime: containerd's shim writes `init.pid`, conmon writes
/// `pidfile`.
const PID_FILES: [&str; 2] = ["init.pid", "pidfile"];

/// Directories in which runtimes keep per-container (or per-sandbox) files
/// that they bind mount into containers themselves, followed by a 64-hex id.
const RUNTIME_MOUNT_DIRS: [&str; 3] = [
    "/io.containerd.grpc.v1.cri/sandboxes/",
    "/overlay-containers/",
    "/docker/containers/",
];

const PROPAGATION_OPTIONS: [&str; 8] = [
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

/// The parts of an OCI runtime spec we use.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OciSpec {
    process: Option<OciProcess>,
    #[serde(deserialize_with = "null_as_default")]
    mounts: Vec<OciMount>,
    #[serde(deserialize_with = "null_as_default")]
    annotations: BTreeMap<String, String>,
    linux: Option<OciLinux>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OciProcess {
    capabilities: Option<OciCapabilities>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OciCapabilities {
    #[serde(deserialize_with = "null_as_default")]
    effective: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct OciLinux {
    #[serde(deserialize_with = "null_as_default")]
    masked_paths: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OciMount {
    destination: String,
    source: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(deserialize_with = "null_as_default")]
    options: Vec<String>,
}

fn load_containerd(state: &Path, id: &str) -> Option<ContainerMeta> {
    let tasks = state.join("io.containerd.runtime.v2.task");
    let mut namespaces: Vec<String> = match fs::read_dir(&tasks) {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect(),
        Err(e) => {
            if !is_absent(&e) {
                debug!(path = %tasks.display(), error = %e, "cannot list containerd namespaces");
            }
            return None;
        }
    };
    let rank = |ns: &str| {
        CONTAINERD_NAMESPACES
            .iter()
            .position(|known| *known == ns)
            .unwrap_or(CONTAINERD_NAMESPACES.len())
    };
    namespaces.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    namespaces.iter().find_map(|ns| {
        let bundle = tasks.join(ns).join(id);
        let spec: OciSpec = read_json(&bundle.join("config.json"))?;
        Some(from_oci(spec, &bundle, None))
    })
}

fn load_storage(roots: &[PathBuf], id: &str) -> Option<ContainerMeta> {
    roots.iter().find_map(|root| {
        let bundle = root.join("overlay-containers").join(id).join("userdata");
        let spec: OciSpec = read_json(&bundle.join("config.json"))?;
        Some(from_oci(spec, &bundle, Some((roots, id))))
    })
}

/// Builds metadata from an OCI spec found in `bundle`. `storage` is set for
/// containers/storage layouts, whose `containers.json` can fill what the
/// annotations lack (Podman records name and image only there).
fn from_oci(spec: OciSpec, bundle: &Path, storage: Option<(&[PathBuf], &str)>) -> ContainerMeta {
    let annotations = &spec.annotations;
    let annotation = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| annotations.get(*k).and_then(|v| non_empty(v)))
    };
    // CRI-O keeps the container's CRI labels as a JSON object.
    let crio_labels: BTreeMap<String, String> = annotations
        .get(CRIO_LABELS)
        .and_then(|json| match serde_json::from_str(json) {
            Ok(labels) => Some(labels),
            Err(e) => {
                debug!(path = %bundle.display(), error = %e, "malformed CRI-O labels annotation");
                None
            }
        })
        .unwrap_or_default();
    let kube = |annotation_keys: &[&str], label_key: &str| {
        annotation(annotation_keys)
            .or_else(|| crio_labels.get(label_key).and_then(|v| non_empty(v)))
    };

    let container_type = annotation(&[CRI_CONTAINER_TYPE, CRIO_CONTAINER_TYPE]);
    let is_cri = container_type.is_some();
    let is_sandbox = container_type.as_deref() == Some(SANDBOX_TYPE);

    let pod_name = kube(&[CRI_SANDBOX_NAME, K8S_POD_NAME], K8S_POD_NAME);
    let pod_namespace = kube(
        &[CRI_SANDBOX_NAMESPACE, K8S_POD_NAMESPACE],
        K8S_POD_NAMESPACE,
    );
    let pod_uid = kube(&[CRI_SANDBOX_UID, K8S_POD_UID], K8S_POD_UID);
    // Falco shows a sandbox by its pod's name, and a container by its CRI
    // metadata name, not CRI-O's long "k8s_<container>_<pod>_..." name.
    let mut name = if is_sandbox {
        pod_name.clone()
    } else {
        kube(
            &[CRI_CONTAINER_NAME, K8S_CONTAINER_NAME],
            K8S_CONTAINER_NAME,
        )
        .or_else(|| annotation(&[CRIO_CONTAINER_NAME]).map(|n| crio_short_name(&n)))
    };
    let mut image = annotation(&[CRI_IMAGE_NAME, CRIO_IMAGE_NAME]);
    let mut start_ts_ns = annotation(&[CRIO_CREATED]).and_then(|t| parse_rfc3339_ns(&t));

    if let Some((roots, id)) = storage
        && (name.is_none() || image.is_none() || start_ts_ns.is_none())
        && let Some(record) = storage_record(roots, id)
    {
        name = name.or(record.name);
        image = image.or(record.image);
        start_ts_ns = start_ts_ns.or(record.created_ns);
    }
    let start_ts_ns = start_ts_ns.or_else(|| bundle_start_ns(bundle));

    let labels = if !crio_labels.is_empty() {
        crio_labels
    } else {
        // containerd keeps CRI labels in its database, not the bundle; the
        // kubelet only ever sets these on containers, so rebuild them.
        [
            (K8S_POD_NAME, &pod_name),
            (K8S_POD_NAMESPACE, &pod_namespace),
            (K8S_POD_UID, &pod_uid),
            (
                K8S_CONTAINER_NAME,
                if is_sandbox || !is_cri { &None } else { &name },
            ),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_owned(), v.clone()?)))
        .collect()
    };

    let privileged = annotation(&[CRIO_PRIVILEGED, PODMAN_PRIVILEGED])
        .and_then(|v| parse_bool(&v))
        .unwrap_or_else(|| looks_privileged(&spec));
    let (image, image_repository, image_tag) = match image {
        Some(reference) => image_fields(&reference),
        None => (None, None, None),
    };
    let mounts = spec
        .mounts
        .into_iter()
        .filter(is_user_mount)
        .map(|m| oci_mount(m, is_cri))
        .collect();

    ContainerMeta {
        name,
        image,
        image_repository,
        image_tag,
        privileged: Some(privileged),
        mounts,
        start_ts_ns,
        pod_name,
        pod_namespace,
        pod_uid,
        labels,
        pod_labels: BTreeMap::new(),
        runtime: None,
    }
}

/// Heuristic for specs without a privilege annotation (containerd records
/// none).
///
/// `--privileged` (and a privileged Kubernetes security context) grants all
/// capabilities and, unlike `--cap-add`, also unmasks `/proc` paths; runtimes
/// mask a default set otherwise. Requiring both keeps a container that was
/// merely given CAP_SYS_ADMIN, or a pod with `procMount: Unmasked`, from
/// counting. A container with both added by hand is as dangerous as a
/// privileged one anyway.
fn looks_privileged(spec: &OciSpec) -> bool {
    let unmasked = spec
        .linux
        .as_ref()
        .is_none_or(|l| l.masked_paths.is_empty());
    let sys_admin = spec
        .process
        .as_ref()
        .and_then(|p| p.capabilities.as_ref())
        .is_some_and(|c| c.effective.iter().any(|cap| cap == "CAP_SYS_ADMIN"));
    unmasked && sys_admin
}

/// Whether an OCI mount is one the user asked for: a bind mount that does
/// not come from the runtime's own per-container files.
fn is_user_mount(m: &OciMount) -> bool {
    let bind = m.kind == "bind" || m.options.iter().any(|o| o == "bind" || o == "rbind");
    bind && !is_runtime_file(&m.source)
}

fn is_runtime_file(source: &str) -> bool {
    RUNTIME_MOUNT_DIRS.iter().any(|dir| {
        source.match_indices(dir).any(|(at, _)| {
            source[at + dir.len()..]
                .split_once('/')
                .is_some_and(|(id, _)| id.len() == 64 && is_hex(id))
        })
    })
}

fn oci_mount(m: OciMount, is_cri: bool) -> Mount {
    // Later options override earlier ones, as in mount(8).
    let rw = m
        .options
        .iter()
        .rev()
        .find(|o| *o == "ro" || *o == "rw")
        .is_none_or(|o| o == "rw");
    let propagation = m
        .options
        .iter()
        .rev()
        .find(|o| PROPAGATION_OPTIONS.contains(&o.as_str()))
        .map(String::as_str);
    let propagation = if is_cri {
        // Falco renders the CRI MountPropagation enum, which the runtimes
        // translate to these options.
        match propagation {
            None | Some("private" | "rprivate") => "private",
            Some("slave" | "rslave") => "rslave",
            Some("shared" | "rshared") => "rshared",
            Some(other) => other,
        }
    } else {
        propagation.unwrap_or_default()
    };
    Mount {
        source: m.source,
        dest: m.destination,
        mode: String::new(),
        rw,
        propagation: propagation.to_owned(),
    }
}

/// CRI-O names containers `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`;
/// Kubernetes names cannot contain `_`, so the second field is the name.
fn crio_short_name(full: &str) -> String {
    match full
        .strip_prefix("k8s_")
        .and_then(|rest| rest.split('_').next())
    {
        Some(short) if !short.is_empty() => short.to_owned(),
        _ => full.to_owned(),
    }
}

/// A task's start time from its bundle's files.
fn bundle_start_ns(bundle: &Path) -> Option<i64> {
    PID_FILES
        .iter()
        .map(|f| bundle.join(f))
        .chain([bundle.to_path_buf()])
        .find_map(|p| mtime_ns(&p))
}

fn mtime_ns(path: &Path) -> Option<i64> {
    let modified = fs::metadata(path).ok()?.modified().ok()?;
    let since_epoch = modified.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(since_epoch.as_nanos()).ok()
}

// ---------------------------------------------------------------------------
// containers/storage records (Podman)

/// An entry of containers/storage's `containers.json`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StorageContainer {
    id: String,
    #[serde(deserialize_with = "null_as_default")]
    names: Vec<String>,
    /// JSON written by the container's creator (libpod or CRI-O).
    metadata: String,
    created: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StorageMetadata {
    #[serde(rename = "image-name")]
    image_name: String,
    name: String,
    #[serde(rename = "created-at")]
    created_at: i64,
}

/// What containers/storage knows about a container.
struct StorageRecord {
    name: Option<String>,
    image: Option<String>,
    created_ns: Option<i64>,
}

fn storage_record(roots: &[PathBuf], id: &str) -> Option<StorageRecord> {
    // Podman's --rm containers are "volatile" and listed separately.
    let files = ["containers.json", "volatile-containers.json"];
    let entry = roots.iter().find_map(|root| {
        files.iter().find_map(|f| {
            let list: Vec<StorageContainer> = read_json(&root.join("overlay-containers").join(f))?;
            list.into_iter().find(|c| c.id == id)
        })
    })?;
    let metadata: StorageMetadata = if entry.metadata.is_empty() {
        StorageMetadata::default()
    } else {
        serde_json::from_str(&entry.metadata).unwrap_or_else(|e| {
            debug!(container = id, error = %e, "malformed containers/storage metadata");
            StorageMetadata::default()
        })
    };
    let created_ns = parse_rfc3339_ns(&entry.created).or_else(|| {
        (metadata.created_at > 0)
            .then(|| metadata.created_at.checked_mul(1_000_000_000))
            .flatten()
    });
    Some(StorageRecord {
        name: non_empty(&metadata.name).or_else(|| entry.names.first().and_then(|n| non_empty(n))),
        image: non_empty(&metadata.image_name),
        created_ns,
    })
}

// ---------------------------------------------------------------------------
// Helpers

/// Reads and parses a JSON state file. A missing file is an ordinary miss;
/// any other failure is logged, and is a miss too.
fn read_json<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) => {
            if !is_absent(&e) {
                debug!(path = %path.display(), error = %e, "cannot open container state file");
            }
            return None;
        }
    };
    let mut buf = Vec::new();
    if let Err(e) = file.take(MAX_STATE_FILE_BYTES + 1).read_to_end(&mut buf) {
        debug!(path = %path.display(), error = %e, "cannot read container state file");
        return None;
    }
    if buf.len() as u64 > MAX_STATE_FILE_BYTES {
        debug!(path = %path.display(), "container state file too large");
        return None;
    }
    match serde_json::from_slice(&buf) {
        Ok(value) => Some(value),
        Err(e) => {
            debug!(path = %path.display(), error = %e, "malformed container state file");
            None
        }
    }
}

fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Go encodes nil maps and slices as `null`, which `#[serde(default)]` does
/// not cover.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// The image fields for a recorded reference. An image id (`sha256:…`, or
/// bare hex) names no repository, so only `image` is set.
pub(crate) fn image_fields(reference: &str) -> (Option<String>, Option<String>, Option<String>) {
    let image = non_empty(reference);
    if reference.starts_with("sha256:") || (reference.len() == 64 && is_hex(reference)) {
        return (image, None, None);
    }
    let (repository, tag) = split_image(reference);
    (image, non_empty(repository), tag.map(str::to_owned))
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Parses an RFC 3339 timestamp (as Go's `RFC3339Nano` writes them) into ns
/// since the epoch. Times before the epoch, such as Go's zero time that
/// Docker writes for "never", are `None`.
fn parse_rfc3339_ns(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let field = b.get(from..from + len)?;
        field.iter().try_fold(0i64, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    };
    let byte_is = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));

    let year = digits(0, 4)?;
    let month = digits(5, 2)?;
    let day = digits(8, 2)?;
    let hour = digits(11, 2)?;
    let minute = digits(14, 2)?;
    let second = digits(17, 2)?;
    if !(byte_is(4, b"-")
        && byte_is(7, b"-")
        && byte_is(10, b"Tt ")
        && byte_is(13, b":")
        && byte_is(16, b":"))
    {
        return None;
    }
    if !((1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second <= 60)
    {
        return None;
    }

    let mut at = 19;
    let mut nanos = 0i64;
    if byte_is(at, b".") {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let frac = &b[start..at];
        if frac.is_empty() {
            return None;
        }
        // Only ns precision is kept; pad shorter fractions to 9 digits.
        for i in 0..9 {
            nanos = nanos * 10 + frac.get(i).map_or(0, |d| i64::from(d - b'0'));
        }
    }
    let offset_secs = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if at + 6 == b.len() && byte_is(at + 3, b":") => {
            let offset = digits(at + 1, 2)? * 3600 + digits(at + 4, 2)? * 60;
            if sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };

    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    let ns = secs.checked_mul(1_000_000_000)?.checked_add(nanos)?;
    (ns > 0).then_some(ns)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// fnmatch(3) without flags: `*` matches any run of characters including
/// `/`, `?` any one character, `[...]` a set (`!` or `^` negates, `a-z`
/// ranges), and `\` quotes the next character.
fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where to resume after the last `*` when the rest fails to match: since
    // `*` matches anything, only the most recent one ever needs to grow.
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if p.get(pi) == Some(&'*') {
            pi += 1;
            backtrack = Some((pi, ti));
            continue;
        }
        if let Some(next) = match_one(&p, pi, t[ti]) {
            pi = next;
            ti += 1;
            continue;
        }
        match backtrack {
            Some((star_pi, star_ti)) => {
                pi = star_pi;
                ti = star_ti + 1;
                backtrack = Some((star_pi, star_ti + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches the single pattern element at `p[pi]` (not `*`) against `c`,
/// returning where the pattern continues.
fn match_one(p: &[char], pi: usize, c: char) -> Option<usize> {
    match *p.get(pi)? {
        '?' => Some(pi + 1),
        '[' => match match_set(p, pi, c) {
            Some((matched, next)) => matched.then_some(next),
            // An unterminated set is a literal '['.
            None => (c == '[').then_some(pi + 1),
        },
        '\\' if pi + 1 < p.len() => (p[pi + 1] == c).then_some(pi + 2),
        literal => (literal == c).then_some(pi + 1),
    }
}

/// Matches the set starting at `p[open] == '['` against `c`; `None` if the
/// set is unterminated.
fn match_set(p: &[char], open: usize, c: char) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negated = matches!(p.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        // A ']' right after the opening is a member, not the end.
        if ch == ']' && !first {
            return Some((matched != negated, i + 1));
        }
        first = false;
        let (low, after_low) = set_char(p, i)?;
        if p.get(after_low) == Some(&'-') && p.get(after_low + 1).is_some_and(|&n| n != ']') {
            let (high, after_high) = set_char(p, after_low + 1)?;
            matched |= (low..=high).contains(&c);
            i = after_high;
        } else {
            matched |= low == c;
            i = after_low;
        }
    }
}

/// The (possibly `\`-quoted) character at `p[i]` inside a set, and the index
/// after it.
fn set_char(p: &[char], i: usize) -> Option<(char, usize)> {
    match *p.get(i)? {
        '\\' => Some((*p.get(i + 1)?, i + 2)),
        ch => Some((ch, i + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    const ID: &str = "4c1b9e2f7a3d5c6b8e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f";
    const SANDBOX: &str = "9d8c7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa998877665544";
    const UID: &str = "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d";

    fn docker(id: &str) -> ContainerRef {
        ContainerRef {
            runtime: ContainerRuntime::Docker,
            full_id: id.into(),
            pod_uid: None,
        }
    }

    fn containerd(id: &str) -> ContainerRef {
        ContainerRef {
            runtime: ContainerRuntime::Containerd,
            full_id: id.into(),
            pod_uid: None,
        }
    }

    fn write(path: &Path, contents: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }

    fn set_mtime(path: &Path, unix_secs: u64) {
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(UNIX_EPOCH + Duration::from_secs(unix_secs))
            .unwrap();
    }

    /// Roots laid out under a temporary directory like a host's.
    fn roots(tmp: &TempDir) -> RuntimeRoots {
        RuntimeRoots::default().with_host_root(tmp.path())
    }

    fn mount(source: &str, dest: &str, mode: &str, rw: bool, propagation: &str) -> Mount {
        Mount {
            source: source.into(),
            dest: dest.into(),
            mode: mode.into(),
            rw,
            propagation: propagation.into(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn docker_config(id: &str) -> String {
        r#"{
  "StreamConfig": {},
  "State": {
    "Running": true, "Paused": false, "Restarting": false, "OOMKilled": false,
    "RemovalInProgress": false, "Dead": false, "Pid": 48213, "ExitCode": 0, "Error": "",
    "StartedAt": "2024-03-05T14:02:11.482915307Z", "FinishedAt": "0001-01-01T00:00:00Z",
    "Health": null
  },
  "ID": "@ID@",
  "Created": "2024-03-05T14:02:10.918273645Z",
  "Managed": false,
  "Path": "/usr/bin/dumb-init",
  "Args": ["/entrypoint", "run", "--user=gitlab-runner"],
  "Config": {
    "Hostname": "4c1b9e2f7a3d", "Domainname": "", "User": "",
    "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
    "Tty": false, "OpenStdin": false, "StdinOnce": false,
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["run", "--user=gitlab-runner"],
    "Image": "registry.gitlab.com/gitlab-org/gitlab-runner:alpine-v16.9.1",
    "Volumes": {"/etc/gitlab-runner": {}, "/home/gitlab-runner": {}},
    "WorkingDir": "",
    "Entrypoint": ["/usr/bin/dumb-init", "/entrypoint"],
    "OnBuild": null,
    "Labels": {
      "com.docker.compose.project": "ci",
      "com.docker.compose.service": "runner",
      "org.opencontainers.image.version": "16.9.1"
    },
    "StopSignal": "SIGQUIT"
  },
  "Image": "sha256:7f3c8d9e0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5",
  "ImageManifest": null,
  "NetworkSettings": {"Bridge": "", "SandboxID": "", "Networks": {}},
  "LogPath": "/var/lib/docker/containers/@ID@/@ID@-json.log",
  "Name": "/gitlab-runner",
  "Driver": "overlay2",
  "OS": "linux",
  "MountLabel": "",
  "ProcessLabel": "",
  "RestartCount": 0,
  "HasBeenStartedBefore": true,
  "HasBeenManuallyStopped": false,
  "MountPoints": {
    "/var/run/docker.sock": {
      "Source": "/var/run/docker.sock", "Destination": "/var/run/docker.sock", "RW": true,
      "Name": "", "Driver": "", "Type": "bind", "Relabel": "", "Propagation": "rprivate",
      "Spec": {"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/var/run/docker.sock"},
      "SkipMountpointCreation": false
    },
    "/etc/gitlab-runner": {
      "Source": "/srv/gitlab-runner/config", "Destination": "/etc/gitlab-runner", "RW": false,
      "Name": "", "Driver": "", "Type": "bind", "Relabel": "ro", "Propagation": "rprivate",
      "Spec": {}, "SkipMountpointCreation": false
    },
    "/home/gitlab-runner": {
      "Source": "/var/lib/docker/volumes/8e1f0c2d/_data", "Destination": "/home/gitlab-runner",
      "RW": true, "Name": "8e1f0c2d", "Driver": "local", "Type": "volume", "Relabel": "",
      "Propagation": "", "Spec": {}, "SkipMountpointCreation": false
    }
  },
  "SecretReferences": null,
  "ConfigReferences": null,
  "AppArmorProfile": "",
  "HostnamePath": "/var/lib/docker/containers/@ID@/hostname",
  "HostsPath": "/var/lib/docker/containers/@ID@/hosts",
  "ShmPath": "",
  "ResolvConfPath": "/var/lib/docker/containers/@ID@/resolv.conf",
  "SeccompProfile": "unconfined",
  "NoNewPrivileges": false,
  "LocalLogCacheMeta": {"HaveNotifyEnabled": false}
}"#
        .replace("@ID@", id)
    }

    const DOCKER_HOSTCONFIG: &str = r#"{
  "Binds": ["/var/run/docker.sock:/var/run/docker.sock", "/srv/gitlab-runner/config:/etc/gitlab-runner:ro"],
  "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
  "NetworkMode": "default", "PortBindings": {},
  "RestartPolicy": {"Name": "always", "MaximumRetryCount": 0},
  "AutoRemove": false, "VolumeDriver": "", "VolumesFrom": null,
  "CapAdd": null, "CapDrop": null, "CgroupnsMode": "private",
  "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": null, "GroupAdd": null,
  "IpcMode": "private", "Cgroup": "", "Links": null, "OomScoreAdj": 0, "PidMode": "",
  "Privileged": true, "PublishAllPorts": false, "ReadonlyRootfs": false,
  "SecurityOpt": ["label=disable"], "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864,
  "Runtime": "runc", "Isolation": "", "CpuShares": 0, "Memory": 0,
  "MaskedPaths": null, "ReadonlyPaths": null
}"#;

    fn write_docker(root: &Path, id: &str) {
        let dir = root.join("var/lib/docker/containers").join(id);
        write(&dir.join("config.v2.json"), &docker_config(id));
        write(&dir.join("hostconfig.json"), DOCKER_HOSTCONFIG);
    }

    #[test]
    fn docker_privileged_with_socket_mount() {
        let tmp = TempDir::new().unwrap();
        write_docker(tmp.path(), ID);
        let mut cache = ContainerMetaCache::new(roots(&tmp), 16);
        let meta = cache.get(&docker(ID)).unwrap();
        let want = ContainerMeta {
            name: Some("gitlab-runner".into()),
            image: Some("registry.gitlab.com/gitlab-org/gitlab-runner:alpine-v16.9.1".into()),
            image_repository: Some("registry.gitlab.com/gitlab-org/gitlab-runner".into()),
            image_tag: Some("alpine-v16.9.1".into()),
            privileged: Some(true),
            mounts: vec![
                mount(
                    "/srv/gitlab-runner/config",
                    "/etc/gitlab-runner",
                    "ro",
                    false,
                    "rprivate",
                ),
                mount(
                    "/var/lib/docker/volumes/8e1f0c2d/_data",
                    "/home/gitlab-runner",
                    "",
                    true,
                    "",
                ),
                mount(
                    "/var/run/docker.sock",
                    "/var/run/docker.sock",
                    "",
                    true,
                    "rprivate",
                ),
            ],
            start_ts_ns: Some(1_709_647_330_918_273_645),
            pod_name: None,
            pod_namespace: None,
            pod_uid: None,
            labels: labels(&[
                ("com.docker.compose.project", "ci"),
                ("com.docker.compose.service", "runner"),
                ("org.opencontainers.image.version", "16.9.1"),
            ]),
            ..ContainerMeta::default()
        };
        assert_eq!(*meta, want);
        assert_eq!(
            meta.mount_dest_matches("/var/run/docker.sock")
                .map(|m| &m.source[..]),
            Some("/var/run/docker.sock")
        );
        assert_eq!(
            meta.mounts_string(),
            "/srv/gitlab-runner/config:/etc/gitlab-runner:ro:false:rprivate,\
             /var/lib/docker/volumes/8e1f0c2d/_data:/home/gitlab-runner::true:,\
             /var/run/docker.sock:/var/run/docker.sock::true:rprivate"
        );
    }

    #[test]
    fn docker_kubernetes_container_without_hostconfig() {
        let tmp = TempDir::new().unwrap();
        let image_id = "sha256:7f3c8d9e0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5";
        let config = format!(
            r#"{{
  "State": {{"Running": true, "Pid": 911, "StartedAt": "2024-03-05T14:02:11.482915307Z"}},
  "ID": "{ID}",
  "Created": "",
  "Config": {{
    "Image": "{image_id}",
    "Labels": {{
      "annotation.io.kubernetes.container.hash": "a1b2c3d4",
      "io.kubernetes.container.name": "nginx",
      "io.kubernetes.docker.type": "container",
      "io.kubernetes.pod.name": "web-7d4b9c6f5-x2kq8",
      "io.kubernetes.pod.namespace": "shop",
      "io.kubernetes.pod.uid": "{UID}"
    }}
  }},
  "Name": "/k8s_nginx_web-7d4b9c6f5-x2kq8_shop_{UID}_0",
  "MountPoints": null
}}"#
        );
        write(
            &tmp.path()
                .join("var/lib/docker/containers")
                .join(ID)
                .join("config.v2.json"),
            &config,
        );
        let mut cache = ContainerMetaCache::new(roots(&tmp), 16);
        let meta = cache.get(&docker(ID)).unwrap();
        assert_eq!(
            meta.name.as_deref(),
            Some(format!("k8s_nginx_web-7d4b9c6f5-x2kq8_shop_{UID}_0").as_str())
        );
        assert_eq!(meta.image.as_deref(), Some(image_id));
        assert_eq!(meta.image_repository, None);
        assert_eq!(meta.image_tag, None);
        assert_eq!(meta.privileged, None);
        assert!(meta.mounts.is_empty());
        assert_eq!(meta.mounts_string(), "");
        assert_eq!(meta.start_ts_ns, Some(1_709_647_331_482_915_307));
        assert_eq!(meta.pod_name.as_deref(), Some("web-7d4b9c6f5-x2kq8"));
        assert_eq!(meta.pod_namespace.as_deref(), Some("shop"));
        assert_eq!(meta.pod_uid.as_deref(), Some(UID));
        assert_eq!(meta.labels.len(), 6);
    }

    #[test]
    fn docker_nulls_are_empty() {
        let tmp = TempDir::new().unwrap();
        write(
            &tmp.path()
                .join("var/lib/docker/containers")
                .join(ID)
                .join("config.v2.json"),
            r#"{"Config": {"Image": "", "Labels": null}, "Name": "", "MountPoints": null,
                "Created": "0001-01-01T00:00:00Z", "State": {"StartedAt": "0001-01-01T00:00:00Z"}}"#,
        );
        let mut cache = ContainerMetaCache::new(roots(&tmp), 16);
        assert_eq!(*cache.get(&docker(ID)).unwrap(), ContainerMeta::default());
    }

    fn containerd_spec() -> String {
        let caps = r#"["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
            "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]"#;
        let uid_ = UID.replace('-', "_");
        r#"{
  "ociVersion": "1.1.0",
  "process": {
    "user": {"uid": 101, "gid": 101, "additionalGids": [101]},
    "args": ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NGINX_VERSION=1.25.3"],
    "cwd": "/",
    "capabilities": {"bounding": @CAPS@, "effective": @CAPS@, "permitted": @CAPS@},
    "apparmorProfile": "cri-containerd.apparmor.d",
    "oomScoreAdj": 1000
  },
  "root": {"path": "rootfs"},
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    {"destination": "/etc/hosts", "type": "bind", "source": "/var/lib/kubelet/pods/@UID@/etc-hosts", "options": ["rbind", "rprivate", "rw"]},
    {"destination": "/dev/termination-log", "type": "bind", "source": "/var/lib/kubelet/pods/@UID@/containers/nginx/5c1f2b7e", "options": ["rbind", "rprivate", "rw"]},
    {"destination": "/etc/hostname", "type": "bind", "source": "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/@SANDBOX@/hostname", "options": ["rbind", "rprivate", "rw"]},
    {"destination": "/etc/resolv.conf", "type": "bind", "source": "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/@SANDBOX@/resolv.conf", "options": ["rbind", "rprivate", "rw"]},
    {"destination": "/dev/shm", "type": "bind", "source": "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/@SANDBOX@/shm", "options": ["rbind", "rprivate", "rw"]},
    {"destination": "/var/log/host", "type": "bind", "source": "/var/log", "options": ["rbind", "rslave", "ro"]},
    {"destination": "/var/run/secrets/kubernetes.io/serviceaccount", "type": "bind", "source": "/var/lib/kubelet/pods/@UID@/volumes/kubernetes.io~projected/kube-api-access-x7k2p", "options": ["rbind", "rprivate", "ro"]}
  ],
  "annotations": {
    "io.kubernetes.cri.container-name": "nginx",
    "io.kubernetes.cri.container-type": "container",
    "io.kubernetes.cri.image-name": "docker.io/library/nginx:1.25.3",
    "io.kubernetes.cri.sandbox-id": "@SANDBOX@",
    "io.kubernetes.cri.sandbox-name": "web-7d4b9c6f5-x2kq8",
    "io.kubernetes.cri.sandbox-namespace": "shop",
    "io.kubernetes.cri.sandbox-uid": "@UID@"
  },
  "linux": {
    "resources": {"devices": [{"allow": false, "access": "rwm"}], "cpu": {"shares": 2, "period": 100000}},
    "cgroupsPath": "kubepods-besteffort-pod@UID_@.slice:cri-containerd:@ID@",
    "namespaces": [{"type": "pid"}, {"type": "ipc", "path": "/proc/4242/ns/ipc"}, {"type": "uts", "path": "/proc/4242/ns/uts"}, {"type": "mount"}, {"type": "network", "path": "/proc/4242/ns/net"}],
    "maskedPaths": ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [{"names": ["accept", "accept4"], "action": "SCMP_ACT_ALLOW"}]}
  }
}"#
        .replace("@CAPS@", caps)
        .replace("@UID@", UID)
        .replace("@UID_@", &uid_)
        .replace("@SANDBOX@", SANDBOX)
        .replace("@ID@", ID)
    }

    fn task_dir(tmp: &TempDir, namespace: &str, id: &str) -> PathBuf {
        tmp.path()
            .join("run/containerd/io.containerd.runtime.v2.task")
            .join(namespace)
            .join(id)
    }

    #[test]
    fn containerd_kubernetes_container() {
        let tmp = TempDir::new().unwrap();
        // Other namespaces are present and searched too.
        fs::create_dir_all(task_dir(&tmp, "moby", SANDBOX)).unwrap();
        let bundle = task_dir(&tmp, "k8s.io", ID);
        write(&bundle.join("config.json"), &containerd_spec());
        write(&bundle.join("init.pid"), "4321");
        set_mtime(&bundle.join("init.pid"), 1_709_647_445);

        let mut cache = ContainerMetaCache::new(roots(&tmp), 16);
        let meta = cache.get(&containerd(ID)).unwrap();
        let pod = format!("/var/lib/kubelet/pods/{UID}");
        let want = ContainerMeta {
            name: Some("nginx".into()),
            image: Some("docker.io/library/nginx:1.25.3".into()),
            image_repository: Some("docker.io/library/nginx".into()),
            image_tag: Some("1.25.3".into()),
            privileged: Some(false),
            mounts: vec![
                mount(
                    &format!("{pod}/etc-hosts"),
                    "/etc/hosts",
                    "",
                    true,
                    "private",
                ),
                mount(
                    &format!("{pod}/containers/nginx/5c1f2b7e"),
                    "/dev/termination-log",
                    "",
                    true,
                    "private",
                ),
                mount("/var/log", "/var/log/host", "", false, "rslave"),
                mount(
                    &format!("{pod}/volumes/kubernetes.io~projected/kube-api-access-x7k2p"),
                    "/var/run/secrets/kubernetes.io/serviceaccount",
                    "",
                    false,
                    "private",
                ),
            ],
            start_ts_ns: Some(1_709_647_445_000_000_000),
            pod_name: Some("web-7d4b9c6f5-x2kq8".into()),
            pod_namespace: Some("shop".into()),
            pod_uid: Some(UID.into()),
            labels: labels(&[
                ("io.kubernetes.container.name", "nginx"),
                ("io.kubernetes.pod.name", "web-7d4b9c6f5-x2kq8"),
                ("io.kubernetes.pod.namespace", "shop"),
                ("io.kubernetes.pod.uid", UID),
            ]),
            ..ContainerMeta::default()
        };
        assert_eq!(*meta, want);
        // Default mounts like /proc are not the user's and must not match.
        assert!(meta.mount_dest_matches("/proc*").is_none());
        assert_eq!(
            meta.mount_dest_matches("/var/run/secrets/*")
                .map(|m| &m.dest[..]),
            Some("/var/run/secrets/kubernetes.io/serviceaccount")
        );
    }

    #[test]
    fn containerd_privileged_sandbox_and_plain() {
        let tmp = TempDir::new().unwrap();
        let all_caps = r#"["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_NET_ADMIN"]"#;
        let privileged = format!(
            r#"{{
  "process": {{"capabilities": {{"bounding": {all_caps}, "effective": {all_caps}}}}},
  "mounts": [{{"destination": "/host", "type": "bind", "source": "/", "options": ["rbind", "rshared", "rw"]}}],
  "annotations": {{
    "io.kubernetes.cri.container-name": "node-agent",
    "io.kubernetes.cri.container-type": "container",
    "io.kubernetes.cri.image-name": "ghcr.io/example/node-agent@sha256:0d5f5b3c2a1e",
    "io.kubernetes.cri.sandbox-name": "node-agent-h7x2c",
    "io.kubernetes.cri.sandbox-namespace": "kube-system",
    "io.kubernetes.cri.sandbox-uid": "{UID}"
  }},
  "linux": {{"readonlyPaths": null}}
}}"#
        );
        write(
            &task_dir(&tmp, "k8s.io", ID).join("config.json"),
            &privileged,
        );

        let sandbox = format!(
            r#"{{
  "process": {{"capabilities": {{"effective": ["CAP_CHOWN", "CAP_KILL"]}}}},
  "annotations": {{
    "io.kubernetes.cri.container-type": "sandbox",
    "io.kubernetes.cri.sandbox-id": "{SANDBOX}",
    "io.kubernetes.cri.sandbox-name": "node-agent-h7x2c",
    "io.kubernetes.cri.sandbox-namespace": "kube-system",
    "io.kubernetes.cri.sandbox-uid": "{UID}"
  }},
  "linux": {{"maskedPaths": ["/proc/kcore"]}}
}}"#
        );
        write(
            &task_dir(&tmp, "k8s.io", SANDBOX).join("config.json"),
            &sandbox,
        );

        let plain_id = "ab".repeat(32);
        let plain_bundle = task_dir(&tmp, "default", &plain_id);
        write(
            &plain_bundle.join("config.json"),
            r#"{"process": {"capabilities": {"effective": ["CAP_SYS_ADMIN"]}},
                "mounts": [{"destination": "/data", "type": "none", "source": "/srv/data", "options": ["rbind", "ro"]}],
                "linux": {"maskedPaths": ["/proc/kcore"]}}"#,
        );
        // No init.pid: the bundle directory's mtime stands in.
        let dir_mtime = mtime_ns(&plain_bundle).unwrap();

        let mut cache = ContainerMetaCache::new(roots(&tmp), 16);
        let meta = cache.get(&containerd(ID)).unwrap();
        assert_eq!(meta.privileged, Some(true));
        assert_eq!(meta.name.as_deref(), Some("node-agent"));
        assert_eq!(
            meta.image_repository.as_deref(),
            Some("ghcr.io/example/node-agent")
        );
        assert_eq!(meta.image_tag, None);
        assert_eq!(meta.mounts, [mount("/", "/host", "", true, "rshared")]);
        assert!(meta.mount_dest_matches("/host").is_some());

        let meta = cache.get(&containerd(SANDBOX)).unwrap();
        assert_eq!(meta.privileged, Some(false));
        assert_eq!(meta.name.as_deref(), Some("node-agent-h7x2c"));
        assert_eq!(meta.image, None);
        assert_eq!(meta.pod_namespace.as_deref(), Some("kube-system"));
        assert_eq!(
            meta.labels,
            labels(&[
                ("io.kubernetes.pod.name", "node-agent-h7x2c"),
                ("io.kubernetes.pod.namespace", "kube-system"),
                ("io.kubernetes.pod.uid", UID),
            ])
        );

        let meta = cache.get(&containerd(&plain_id)).unwrap();
        let want = ContainerMeta {
            privileged: Some(false),
            mounts: vec![mount("/srv/data", "/data", "", false, "")],
            start_ts_ns: Some(dir_mtime),
            ..ContainerMeta::default()
        };
        assert_eq!(*meta, want);
    }

    fn crio_spec() -> String {
        let labels = format!(
            r#"{{"io.kubernetes.container.name":"etcd","io.kubernetes.pod.name":"etcd-node1","io.kubernetes.pod.namespace":"kube-system","io.kubernetes.pod.uid":"{UID}"}}"#
        );
        let annotations = serde_json::json!({
            "io.container.manager": "cri-o",
            "io.kubernetes.container.hash": "3b1d6a2e",
            "io.kubernetes.container.name": "etcd",
            "io.kubernetes.container.restartCount": "0",
            "io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
            "io.kubernetes.container.terminationMessagePolicy": "File",
            "io.kubernetes.cri-o.Annotations": "{\"io.kubernetes.container.hash\":\"3b1d6a2e\"}",
            "io.kubernetes.cri-o.ContainerID": ID,
            "io.kubernetes.cri-o.ContainerName": format!("k8s_etcd_etcd-node1_kube-system_{UID}_0"),
            "io.kubernetes.cri-o.ContainerType": "container",
            "io.kubernetes.cri-o.Created": "2024-03-05T15:04:05.123456789+01:00",
            "io.kubernetes.cri-o.Image": "sha256:3861cfcd7c04ccac1f062788eca39487248527ef0c0cfd477a83d7691a75a899",
            "io.kubernetes.cri-o.ImageName": "registry.k8s.io/etcd:3.5.12-0",
            "io.kubernetes.cri-o.ImageRef": "sha256:3861cfcd7c04ccac1f062788eca39487248527ef0c0cfd477a83d7691a75a899",
            "io.kubernetes.cri-o.Labels": labels,
            "io.kubernetes.cri-o.LogPath": format!("/var/log/pods/kube-system_etcd-node1_{UID}/etcd/0.log"),
            "io.kubernetes.cri-o.Metadata": "{\"name\":\"etcd\"}",
            "io.kubernetes.cri-o.Name": format!("k8s_etcd_etcd-node1_kube-system_{UID}_0"),
            "io.kubernetes.cri-o.Privileged": "true",
            "io.kubernetes.cri-o.SandboxID": SANDBOX,
            "io.kubernetes.cri-o.SandboxName": format!("k8s_etcd-node1_kube-system_{UID}_0"),
            "io.kubernetes.cri-o.Stdin": "false",
            "io.kubernetes.cri-o.TTY": "false",
            "io.kubernetes.pod.name": "etcd-node1",
            "io.kubernetes.pod.namespace": "kube-system",
            "io.kubernetes.pod.uid": UID,
            "kubernetes.io/config.hash": "9f1c2e",
            "kubernetes.io/config.source": "file"
        });
        let userdata = format!("/run/containers/storage/overlay-containers/{SANDBOX}/userdata");
        let spec = serde_json::json!({
            "ociVersion": "1.0.2-dev",
            "process": {
                "args": ["etcd", "--data-dir=/var/lib/etcd"],
                "capabilities": {"effective": ["CAP_CHOWN", "CAP_KILL"], "bounding": ["CAP_CHOWN", "CAP_KILL"]}
            },
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
                {"destination": "/dev/shm", "type": "bind", "source": format!("{userdata}/shm"), "options": ["rw", "bind"]},
                {"destination": "/etc/resolv.conf", "type": "bind", "source": format!("{userdata}/resolv.conf"), "options": ["bind", "nodev", "nosuid", "noexec"]},
                {"destination": "/etc/hostname", "type": "bind", "source": format!("{userdata}/hostname"), "options": ["rw", "bind"]},
                {"destination": "/etc/hosts", "type": "bind", "source": format!("/var/lib/kubelet/pods/{UID}/etc-hosts"), "options": ["rw", "rbind", "rprivate", "bind"]},
                {"destination": "/dev/termination-log", "type": "bind", "source": format!("/var/lib/kubelet/pods/{UID}/containers/etcd/2b7e9c1d"), "options": ["rw", "rbind", "rprivate", "bind"]},
                {"destination": "/var/lib/etcd", "type": "bind", "source": "/var/lib/etcd", "options": ["rw", "rbind", "rshared", "bind"]},
                {"destination": "/etc/kubernetes/pki/etcd", "type": "bind", "source": "/etc/kubernetes/pki/etcd", "options": ["ro", "rbind", "rslave", "bind"]}
            ],
            "annotations": annotations,
            "linux": {"maskedPaths": ["/proc/acpi", "/proc/kcore"], "readonlyPaths": ["/proc/bus"]}
        });
        spec.to_string()
    }

    #[test]
    fn crio_container() {
        let tmp = TempDir::new().unwrap();
        // In the run root, the second containers/storage root.
        write(
            &tmp.path()
                .join("run/containers/storage/overlay-containers")
                .join(ID)
                .join("userdata/config.json"),
            &crio_spec(),
        );
        let mut cache = ContainerMetaCache::new(roots(&tmp), 16);
        let meta = cache
            .get(&ContainerRef {
                runtime: ContainerRuntime::CriO,
                full_id: ID.into(),
                pod_uid: None,
            })
            .unwrap();
        let pod = format!("/var/lib/kubelet/pods/{UID}");
        let want = ContainerMeta {
            name: Some("etcd".into()),
            image: Some("registry.k8s.io/etcd:3.5.12-0".into()),
            image_repository: Some("registry.k8s.io/etcd".into()),
            image_tag: Some("3.5.12-0".into()),
            // The annotation wins over the masked-paths heuristic.
            privileged: Some(true),
            mounts: vec![
                mount(
                    &format!("{pod}/etc-hosts"),
                    "/etc/hosts",
                    "",
                    true,
                    "private",
                ),
                mount(
                    &format!("{pod}/containers/etcd/2b7e9c1d"),
                    "/dev/termination-log",
                    "",
                    true,
                    "private",
                ),
                mount("/var/lib/etcd", "/var/lib/etcd", "", true, "rshared"),
                mount(
                    "/etc/kubernetes/pki/etcd",
                    "/etc/kubernetes/pki/etcd",
                    "",
                    false,
                    "rslave",
                ),
            ],
            start_ts_ns: Some(1_709_647_445_123_456_789),
            pod_name: Some("etcd-node1".into()),
            pod_namespace: Some("kube-system".into()),
            pod_uid: Some(UID.into()),
            labels: labels(&[
                ("io.kubernetes.container.name", "etcd"),
                ("io.kubernetes.pod.name", "etcd-node1"),
                ("io.kubernetes.pod.namespace", "kube-system"),
                ("io.kubernetes.pod.uid", UID),
            ]),
            ..ContainerMeta::default()
        };
        assert_eq!(*meta, want);
        assert_eq!(
            meta.mount_dest_matches("/etc/kubernetes/*").map(|m| m.rw),
            Some(false)
        );
    }

    #[test]
    fn podman_container_uses_containers_json() {
        let tmp = TempDir::new().unwrap();
        let storage = tmp
            .path()
            .join("var/lib/containers/storage/overlay-containers");
        let userdata = format!("/run/containers/storage/overlay-containers/{ID}/userdata");
        let spec = serde_json::json!({
            "ociVersion": "1.1.0",
            "process": {"capabilities": {"effective": ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]}},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
                {"destination": "/var/lib/postgresql/data", "type": "bind", "source": "/var/lib/containers/storage/volumes/pgdata/_data", "options": ["nosuid", "nodev", "rbind"]},
                {"destination": "/backup", "type": "bind", "source": "/srv/backup", "options": ["ro", "rbind", "rprivate"]},
                {"destination": "/etc/hosts", "type": "bind", "source": format!("{userdata}/hosts"), "options": ["bind", "rprivate"]},
                {"destination": "/run/.containerenv", "type": "bind", "source": format!("{userdata}/.containerenv"), "options": ["bind", "rprivate"]}
            ],
            "annotations": {
                "io.container.manager": "libpod",
                "io.podman.annotations.autoremove": "FALSE",
                "io.podman.annotations.init": "FALSE",
                "io.podman.annotations.privileged": "TRUE",
                "io.podman.annotations.publish-all": "FALSE",
                "org.opencontainers.image.stopSignal": "15"
            },
            "linux": {}
        });
        write(
            &storage.join(ID).join("userdata/config.json"),
            &spec.to_string(),
        );
        let metadata = r#"{"image-name":"docker.io/library/postgres:16-alpine","image-id":"b4c0d6f1e2a3","name":"pg","created-at":1709647445,"mountlabel":"system_u:object_r:container_file_t:s0:c123,c456"}"#;
        let list = serde_json::json!([
            {"id": SANDBOX, "names": ["other"], "image": "aa", "layer": "bb", "metadata": "{}", "created": "2024-01-01T00:00:00Z"},
            {"id": ID, "names": ["pg"], "image": "b4c0d6f1e2a3", "layer": "c1d2", "metadata": metadata,
             "big-data-names": ["volatile.json"], "created": "2024-03-05T14:04:05.5Z",
             "flags": {"MountLabel": "system_u:object_r:container_file_t:s0:c123,c456"}}
        ]);
        write(&storage.join("containers.json"), &list.to_string());

        let mut cache = ContainerMetaCache::new(roots(&tmp), 16);
        let meta = cache
            .get(&ContainerRef {
                runtime: ContainerRuntime::Podman,
                full_id: ID.into(),
                pod_uid: None,
            })
            .unwrap();
        let want = ContainerMeta {
            name: Some("pg".into()),
            image: Some("docker.io/library/postgres:16-alpine".into()),
            image_repository: Some("docker.io/library/postgres".into()),
            image_tag: Some("16-alpine".into()),
            privileged: Some(true),
            mounts: vec![
                mount(
                    "/var/lib/containers/storage/volumes/pgdata/_data",
                    "/var/lib/postgresql/data",
                    "",
                    true,
                    "",
                ),
                mount("/srv/backup", "/backup", "", false, "rprivate"),
            ],
            start_ts_ns: Some(1_709_647_445_500_000_000),
            ..ContainerMeta::default()
        };
        assert_eq!(*meta, want);
    }

    #[test]
    fn falls_back_to_other_layouts() {
        // A bare id under kubepods (cgroupfs) is guessed as containerd but
        // may be Docker.
        let tmp = TempDir::new().unwrap();
        write_docker(tmp.path(), ID);
        let mut cache = ContainerMetaCache::new(roots(&tmp), 16);
        let meta = cache.get(&containerd(ID)).unwrap();
        assert_eq!(meta.name.as_deref(), Some("gitlab-runner"));
    }

    #[test]
    fn unreadable_or_malformed_state_is_a_miss() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("var/lib/docker/containers").join(ID);
        write(&dir.join("config.v2.json"), "{\"Config\": {\"Image\": ");
        // A directory where a file belongs cannot be read.
        fs::create_dir_all(task_dir(&tmp, "k8s.io", ID).join("config.json")).unwrap();
        // Wrong types in a field the parser uses.
        write(
            &tmp.path()
                .join("var/lib/containers/storage/overlay-containers")
                .join(ID)
                .join("userdata/config.json"),
            r#"{"mounts": {"not": "a list"}}"#,
        );
        let mut cache = ContainerMetaCache::new(roots(&tmp), 16);
        assert!(cache.get(&docker(ID)).is_none());
        assert_eq!(cache.len(), 1);

        // The state directories exist but hold something else entirely.
        let tmp = TempDir::new().unwrap();
        write(
            &tmp.path()
                .join("run/containerd/io.containerd.runtime.v2.task"),
            "",
        );
        let mut cache = ContainerMetaCache::new(roots(&tmp), 16);
        assert!(cache.get(&containerd(ID)).is_none());
    }

    #[test]
    fn rejects_ids_that_are_not_hex() {
        let tmp = TempDir::new().unwrap();
        let mut cache = ContainerMetaCache::new(roots(&tmp), 16);
        for id in ["", "../../../etc", "abc/def", "."] {
            assert!(cache.get(&docker(id)).is_none());
        }
        assert!(cache.is_empty());
    }

    #[test]
    fn miss_is_retried_after_the_window() {
        let tmp = TempDir::new().unwrap();
        let retry = Duration::from_millis(300);
        let mut cache = ContainerMetaCache::new(roots(&tmp), 16).with_retry(retry);
        assert!(cache.get(&docker(ID)).is_none());
        write_docker(tmp.path(), ID);
        // Still inside the window: the cached miss stands.
        assert!(cache.get(&docker(ID)).is_none());
        std::thread::sleep(retry + Duration::from_millis(50));
        let first = cache.get(&docker(ID)).unwrap();
        assert_eq!(first.name.as_deref(), Some("gitlab-runner"));

        // Hits are cached: the files are not read again.
        fs::remove_dir_all(tmp.path().join("var/lib/docker")).unwrap();
        let again = cache.get(&docker(ID)).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn cache_is_bounded() {
        let tmp = TempDir::new().unwrap();
        let ids: Vec<String> = ["a", "b", "c"].iter().map(|c| c.repeat(64)).collect();
        for id in &ids {
            write_docker(tmp.path(), id);
        }
        let mut cache = ContainerMetaCache::new(roots(&tmp), 2);
        for id in &ids {
            assert!(cache.get(&docker(id)).is_some());
        }
        assert_eq!(cache.len(), 2);
        fs::remove_dir_all(tmp.path().join("var/lib/docker")).unwrap();
        // The least recently used entry was evicted and must be read again.
        assert!(cache.get(&docker(&ids[2])).is_some());
        assert!(cache.get(&docker(&ids[0])).is_none());
        assert_eq!(cache.len(), 2);

        // A zero capacity still caches one entry rather than panicking.
        let mut tiny = ContainerMetaCache::new(roots(&tmp), 0);
        assert!(tiny.get(&docker(&ids[0])).is_none());
        assert_eq!(tiny.len(), 1);
    }

    #[test]
    fn host_root_prefixes_every_root() {
        let roots = RuntimeRoots::default().with_host_root("/host");
        assert_eq!(roots.docker, Path::new("/host/var/lib/docker"));
        assert_eq!(roots.containerd_state, Path::new("/host/run/containerd"));
        assert_eq!(
            roots.containers_storage,
            [
                Path::new("/host/var/lib/containers/storage"),
                Path::new("/host/run/containers/storage")
            ]
        );
    }

    #[test]
    fn splits_image_references() {
        let digest = "sha256:0d5f5b3c2a1e9f8d7c6b5a4938271605f4e3d2c1b0a998877665544332211000";
        let cases: Vec<(String, (&str, Option<&str>))> = vec![
            (
                format!("docker.io/library/nginx:1.25@{digest}"),
                ("docker.io/library/nginx", Some("1.25")),
            ),
            (
                "docker.io/library/nginx:1.25".into(),
                ("docker.io/library/nginx", Some("1.25")),
            ),
            ("nginx".into(), ("nginx", None)),
            ("nginx:latest".into(), ("nginx", Some("latest"))),
            ("registry:5000/app".into(), ("registry:5000/app", None)),
            (
                "registry:5000/team/app:v2".into(),
                ("registry:5000/team/app", Some("v2")),
            ),
            (
                "localhost:5000/app:dev".into(),
                ("localhost:5000/app", Some("dev")),
            ),
            (format!("nginx@{digest}"), ("nginx", None)),
            (
                format!("quay.io/org/app@{digest}"),
                ("quay.io/org/app", None),
            ),
            ("nginx:".into(), ("nginx", None)),
            (String::new(), ("", None)),
        ];
        for (reference, want) in &cases {
            assert_eq!(split_image(reference), *want, "{reference}");
        }
        assert_eq!(image_fields(digest), (Some(digest.to_owned()), None, None));
        assert_eq!(image_fields(""), (None, None, None));
    }

    #[test]
    fn mount_dest_patterns() {
        let meta = ContainerMeta {
            mounts: vec![
                mount("/proc", "/host/proc", "", false, "rprivate"),
                mount(
                    "/var/run/docker.sock",
                    "/var/run/docker.sock",
                    "",
                    true,
                    "rprivate",
                ),
                mount("/etc", "/etc/host-etc", "", false, ""),
            ],
            ..ContainerMeta::default()
        };
        let dest = |pattern: &str| meta.mount_dest_matches(pattern).map(|m| m.dest.as_str());
        assert_eq!(dest("/var/run/docker.sock"), Some("/var/run/docker.sock"));
        assert_eq!(dest("/var/run/docker.sock*"), Some("/var/run/docker.sock"));
        assert_eq!(dest("/var/run/docker"), None);
        // '*' crosses '/'.
        assert_eq!(dest("/var/*.sock"), Some("/var/run/docker.sock"));
        assert_eq!(dest("*/proc"), Some("/host/proc"));
        assert_eq!(dest("/host*"), Some("/host/proc"));
        // The first matching mount wins.
        assert_eq!(dest("*"), Some("/host/proc"));
        assert_eq!(dest("/etc/*"), Some("/etc/host-etc"));
        assert_eq!(dest("/proc*"), None);
        assert_eq!(dest(""), None);
    }

    #[test]
    fn glob_semantics() {
        let cases = [
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a*", "a", true),
            ("a*c*e", "abcde", true),
            ("a*c*e", "abcdf", false),
            ("*.sock", "/run/containerd/containerd.sock", true),
            ("**", "", true),
            ("", "", true),
            ("/var/run/[cd]*.sock", "/var/run/docker.sock", true),
            ("/var/run/[!d]*.sock", "/var/run/docker.sock", false),
            ("/var/run/[^d]*.sock", "/var/run/crio.sock", true),
            ("/dev/sd[a-c]", "/dev/sdb", true),
            ("/dev/sd[a-c]", "/dev/sdd", false),
            ("[]]", "]", true),
            ("[!]]", "a", true),
            ("[a-]", "-", true),
            ("[", "[", true),
            ("a[b", "a[b", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("[\\]]", "]", true),
            ("/é*", "/éa", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(glob_match(pattern, text), want, "{pattern:?} vs {text:?}");
        }
    }

    #[test]
    fn parses_rfc3339() {
        let cases = [
            (
                "2024-03-05T14:02:10.918273645Z",
                Some(1_709_647_330_918_273_645),
            ),
            (
                "2024-03-05T15:04:05.123456789+01:00",
                Some(1_709_647_445_123_456_789),
            ),
            (
                "2024-03-05T09:04:05.5-05:00",
                Some(1_709_647_445_500_000_000),
            ),
            ("2024-02-29T23:59:59Z", Some(1_709_251_199_000_000_000)),
            ("2000-03-01 00:00:00Z", Some(951_868_800_000_000_000)),
            ("1970-01-01T00:00:01Z", Some(1_000_000_000)),
            // Fractions beyond ns are truncated.
            ("1970-01-01T00:00:01.0000000019Z", Some(1_000_000_001)),
            ("0001-01-01T00:00:00Z", None),
            ("1970-01-01T00:00:00Z", None),
            ("", None),
            ("2024-03-05", None),
            ("2024-03-05T14:02:10", None),
            ("2024-03-05T14:02:10.Z", None),
            ("2024-13-05T14:02:10Z", None),
            ("2024-03-05T14:02:10+0100", None),
            ("2024-03-05T14:02:10Zjunk", None),
            ("2024-03-05T14:02:1xZ", None),
            ("2024-03-05T14:02:10.9é", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_rfc3339_ns(text), want, "{text}");
        }
    }

    #[test]
    fn crio_names_and_runtime_files() {
        assert_eq!(
            crio_short_name(&format!("k8s_etcd_etcd-node1_kube-system_{UID}_0")),
            "etcd"
        );
        assert_eq!(crio_short_name("custom"), "custom");
        assert_eq!(crio_short_name("k8s_"), "k8s_");

        assert!(is_runtime_file(&format!(
            "/var/lib/docker/containers/{ID}/mounts/shm"
        )));
        assert!(is_runtime_file(&format!(
            "/var/lib/containers/storage/overlay-containers/{ID}/userdata/hosts"
        )));
        // Log shippers mount the whole directory; that is the user's mount.
        assert!(!is_runtime_file("/var/lib/docker/containers"));
        assert!(!is_runtime_file("/var/lib/docker/containers/notanid/x"));

        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool("false"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }
}
