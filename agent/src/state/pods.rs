//! The node's pods as the Kubernetes API server describes them, indexed by container id.
//!
//! [`PodIndex`] is filled by the pod watch ([`crate::state::pod_watch`]) and read on the
//! enrichment path through [`crate::state::container_meta::ContainerMetaCache`]. Each pod is
//! reduced to what the `k8s.*` and `container.*` fields need the moment it arrives, so the
//! index holds a few hundred bytes per container rather than whole Pod objects, and it is
//! bounded in pods, containers per pod and labels per pod.
//!
//! A lookup is a read lock and a hash lookup by the container id string; the records are shared
//! (`Arc`), so answering allocates nothing. Records that an update leaves unchanged keep their
//! identity, which lets callers cache what they built from one (the merged container metadata)
//! until the pod really changes.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, EphemeralContainer, Pod, SecurityContext,
};

use crate::state::{
    container::{ContainerRef, ContainerRuntime, PodUid},
    container_meta::image_fields,
};

/// Default bound on pods kept. The kubelet's default is 110 pods per node and large nodes
/// allow a few hundred; finished pods are not kept. Beyond this the index refuses new pods
/// rather than grow.
pub const DEFAULT_MAX_PODS: usize = 1024;

/// Containers kept per pod (regular, init and ephemeral together, with one previous instance
/// of each). Real pods have a handful; ephemeral containers accumulate over a pod's life, one
/// per `kubectl debug`.
const MAX_CONTAINERS_PER_POD: usize = 64;

/// Labels kept per pod, and their total size in bytes (keys and values). The API server
/// limits each label (a 317-byte key, a 63-byte value), not their number.
const MAX_LABELS_PER_POD: usize = 128;
const MAX_LABEL_BYTES_PER_POD: usize = 16 * 1024;

/// The annotation a mirror pod (the API server's copy of a static pod) carries: the static
/// pod's UID, which is the one in its cgroup path and its containers' runtime labels.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// What a pod contributes to every one of its containers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodRecord {
    /// `k8s.pod.uid`: the UID the node knows the pod by. For a mirror pod that is the static
    /// pod's UID (as in the cgroup path and as Falco reports it), not the mirror's own.
    pub uid: String,
    /// `k8s.pod.name`.
    pub name: String,
    /// `k8s.ns.name`.
    pub namespace: String,
    /// `k8s.pod.labels` and `k8s.pod.label[...]`.
    pub labels: BTreeMap<String, String>,
}

/// Which list of the pod spec a container comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerKind {
    /// `spec.containers`.
    Regular,
    /// `spec.initContainers` (including restartable "sidecar" init containers).
    Init,
    /// `spec.ephemeralContainers` (`kubectl debug`).
    Ephemeral,
}

/// One container as the API server describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiContainer {
    /// Its pod.
    pub pod: Arc<PodRecord>,
    /// `container.name`: the name in the pod spec.
    pub name: String,
    /// Which list of the spec it is in.
    pub kind: ContainerKind,
    /// The runtime, from the scheme of `containerID` (`containerd://`, `cri-o://`,
    /// `docker://`): exact where the cgroup path only allows a guess.
    pub runtime: Option<ContainerRuntime>,
    /// `container.image`: the image the kubelet reports running, or the spec's reference when
    /// the status only has an image id.
    pub image: Option<String>,
    /// `container.image.repository`.
    pub image_repository: Option<String>,
    /// `container.image.tag`.
    pub image_tag: Option<String>,
    /// `container.privileged`: the container's `securityContext.privileged`, false when unset.
    pub privileged: bool,
}

/// What the index knows about a container, by how it was found.
#[derive(Clone, Debug)]
pub enum ApiMatch {
    /// The container itself, by its id.
    Container(Arc<ApiContainer>),
    /// Only its pod, by the pod UID in its cgroup path: the container is too new for the pod's
    /// status to list its id yet, or it is the pod's sandbox ("pause") container.
    Pod(Arc<PodRecord>),
}

impl ApiMatch {
    /// The pod, either way.
    pub fn pod(&self) -> &PodRecord {
        match self {
            ApiMatch::Container(container) => &container.pod,
            ApiMatch::Pod(pod) => pod,
        }
    }

    /// Whether both are the very same record (not merely equal): the cheap check callers use
    /// to reuse what they built from it.
    pub fn same(&self, other: &ApiMatch) -> bool {
        match (self, other) {
            (ApiMatch::Container(a), ApiMatch::Container(b)) => Arc::ptr_eq(a, b),
            (ApiMatch::Pod(a), ApiMatch::Pod(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// A pod reduced to what the index keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSnapshot {
    /// The key of the pod in the API: `metadata.uid` (the mirror's own UID for a mirror pod).
    pub api_uid: String,
    /// The pod-level record.
    pub pod: Arc<PodRecord>,
    /// The containers with an id, by full 64-hex id.
    pub containers: Vec<(Box<str>, Arc<ApiContainer>)>,
    /// The pod has finished (phase `Succeeded` or `Failed`): its containers are gone, and the
    /// index drops it rather than let finished Job pods crowd out running ones.
    pub finished: bool,
}

impl PodSnapshot {
    /// Reduces `pod` to what the index keeps. `None` for a pod without a UID (never sent by an
    /// API server).
    pub fn from_pod(pod: &Pod) -> Option<PodSnapshot> {
        let meta = &pod.metadata;
        let api_uid = meta.uid.clone().filter(|uid| !uid.is_empty())?;
        let uid = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(MIRROR_ANNOTATION))
            .filter(|hash| PodUid::parse(hash).is_some())
            .cloned()
            .unwrap_or_else(|| api_uid.clone());
        let mut label_bytes = 0;
        let labels = meta
            .labels
            .iter()
            .flatten()
            .take(MAX_LABELS_PER_POD)
            .take_while(|(k, v)| {
                label_bytes += k.len() + v.len();
                label_bytes <= MAX_LABEL_BYTES_PER_POD
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let record = Arc::new(PodRecord {
            uid,
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            labels,
        });

        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let regular = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
        let init = spec
            .and_then(|s| s.init_containers.as_deref())
            .unwrap_or_default();
        let ephemeral = spec
            .and_then(|s| s.ephemeral_containers.as_deref())
            .unwrap_or_default();
        let lists: [(ContainerKind, Option<&[ContainerStatus]>); 3] = [
            (
                ContainerKind::Regular,
                status.and_then(|s| s.container_statuses.as_deref()),
            ),
            (
                ContainerKind::Init,
                status.and_then(|s| s.init_container_statuses.as_deref()),
            ),
            (
                ContainerKind::Ephemeral,
                status.and_then(|s| s.ephemeral_container_statuses.as_deref()),
            ),
        ];

        let mut containers: Vec<(Box<str>, Arc<ApiContainer>)> = Vec::new();
        for (kind, statuses) in lists {
            for status in statuses.unwrap_or_default() {
                let spec = match kind {
                    ContainerKind::Regular => find_spec(regular, &status.name),
                    ContainerKind::Init => find_spec(init, &status.name),
                    ContainerKind::Ephemeral => find_ephemeral_spec(ephemeral, &status.name),
                };
                // The running instance, and the previous one after a restart: its processes
                // may still be exiting, and an exit is worth attributing.
                let previous = status
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .and_then(|t| t.container_id.as_deref());
                for id in [status.container_id.as_deref(), previous]
                    .into_iter()
                    .flatten()
                {
                    let Some((runtime, full_id)) = parse_container_id(id) else {
                        continue;
                    };
                    if containers.len() >= MAX_CONTAINERS_PER_POD {
                        break;
                    }
                    if containers.iter().any(|(known, _)| &**known == full_id) {
                        continue;
                    }
                    let container = api_container(&record, kind, runtime, status, spec);
                    containers.push((Box::from(full_id), Arc::new(container)));
                }
            }
        }
        let finished = status
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|phase| matches!(phase, "Succeeded" | "Failed"));
        Some(PodSnapshot {
            api_uid,
            pod: record,
            containers,
            finished,
        })
    }
}

/// The spec-side facts of a container: its image reference and privilege.
#[derive(Clone, Copy)]
struct SpecFacts<'a> {
    image: Option<&'a str>,
    privileged: bool,
}

impl<'a> SpecFacts<'a> {
    /// The facts of one container spec (regular, init or ephemeral: the API has a type for
    /// each, with the same fields).
    fn of(image: &'a Option<String>, security: &Option<SecurityContext>) -> SpecFacts<'a> {
        SpecFacts {
            image: image.as_deref(),
            privileged: security
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false),
        }
    }
}

fn find_spec<'a>(list: &'a [Container], name: &str) -> Option<SpecFacts<'a>> {
    list.iter()
        .find(|c| c.name == name)
        .map(|c| SpecFacts::of(&c.image, &c.security_context))
}

fn find_ephemeral_spec<'a>(list: &'a [EphemeralContainer], name: &str) -> Option<SpecFacts<'a>> {
    list.iter()
        .find(|c| c.name == name)
        .map(|c| SpecFacts::of(&c.image, &c.security_context))
}

fn api_container(
    pod: &Arc<PodRecord>,
    kind: ContainerKind,
    runtime: Option<ContainerRuntime>,
    status: &ContainerStatus,
    spec: Option<SpecFacts<'_>>,
) -> ApiContainer {
    // The status names the image as the runtime resolved it (`docker.io/library/nginx:1.25`,
    // which is also what the runtime's files record); some runtimes report an image id there
    // instead, and then the spec's reference is the better answer.
    let status_image = Some(status.image.as_str()).filter(|i| !i.is_empty());
    let reference = match status_image {
        Some(image) if !is_image_id(image) => Some(image),
        other => spec.and_then(|s| s.image).or(other),
    };
    let (image, image_repository, image_tag) = reference.map(image_fields).unwrap_or_default();
    ApiContainer {
        pod: Arc::clone(pod),
        name: status.name.clone(),
        kind,
        runtime,
        image,
        image_repository,
        image_tag,
        privileged: spec.is_some_and(|s| s.privileged),
    }
}

fn is_image_id(image: &str) -> bool {
    image.starts_with("sha256:")
        || (image.len() == 64 && image.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Splits a status `containerID` (`<runtime>://<id>`) into the runtime and the 64-hex id.
pub fn parse_container_id(text: &str) -> Option<(Option<ContainerRuntime>, &str)> {
    let (scheme, id) = text.split_once("://")?;
    if id.len() != 64 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let runtime = match scheme {
        "containerd" => Some(ContainerRuntime::Containerd),
        "cri-o" => Some(ContainerRuntime::CriO),
        "docker" => Some(ContainerRuntime::Docker),
        _ => None,
    };
    Some((runtime, id))
}

/// What [`PodIndex::apply`] did with a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Added or updated.
    Stored,
    /// Refused: the index holds its maximum of pods.
    Full,
}

/// One pod in the index.
#[derive(Debug)]
struct PodEntry {
    pod: Arc<PodRecord>,
    container_ids: Vec<Box<str>>,
    /// The pod's key in `by_uid`, if its UID has the kubelet's shape.
    node_uid: Option<PodUid>,
}

#[derive(Debug, Default)]
struct Inner {
    /// By the API's `metadata.uid`.
    pods: HashMap<String, PodEntry>,
    containers: HashMap<Box<str>, Arc<ApiContainer>>,
    /// By the UID in cgroup paths.
    by_uid: HashMap<PodUid, Arc<PodRecord>>,
    /// Whether a complete list has been applied.
    synced: bool,
}

/// The node's pods, shared between the watch that fills it and the readers. Cloning shares.
#[derive(Clone)]
pub struct PodIndex {
    inner: Arc<RwLock<Inner>>,
    max_pods: usize,
}

impl Default for PodIndex {
    fn default() -> Self {
        PodIndex::new(DEFAULT_MAX_PODS)
    }
}

impl std::fmt::Debug for PodIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.read();
        f.debug_struct("PodIndex")
            .field("pods", &inner.pods.len())
            .field("containers", &inner.containers.len())
            .field("synced", &inner.synced)
            .finish()
    }
}

/// Two handles are equal when they share the index.
impl PartialEq for PodIndex {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for PodIndex {}

impl PodIndex {
    /// An empty index holding at most `max_pods` pods (at least one).
    pub fn new(max_pods: usize) -> PodIndex {
        PodIndex {
            inner: Arc::default(),
            max_pods: max_pods.max(1),
        }
    }

    // A panic while holding the lock cannot leave the maps inconsistent in a way that matters
    // more than losing pod metadata for good, so a poisoned lock is used as is.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the index knows about `container`: the container by id, else its pod by the pod
    /// UID of its cgroup path.
    pub fn lookup(&self, container: &ContainerRef) -> Option<ApiMatch> {
        let inner = self.read();
        if let Some(found) = inner.containers.get(container.full_id.as_str()) {
            return Some(ApiMatch::Container(Arc::clone(found)));
        }
        let uid = container.pod_uid?;
        inner
            .by_uid
            .get(&uid)
            .map(|pod| ApiMatch::Pod(Arc::clone(pod)))
    }

    /// The container with full id `id`.
    pub fn container(&self, id: &str) -> Option<Arc<ApiContainer>> {
        self.read().containers.get(id).cloned()
    }

    /// Adds or replaces a pod (a watch's ADDED or MODIFIED); a finished pod is removed.
    pub fn apply(&self, snapshot: PodSnapshot) -> Applied {
        let mut inner = self.write();
        if snapshot.finished {
            remove(&mut inner, &snapshot.api_uid);
            return Applied::Stored;
        }
        if !inner.pods.contains_key(&snapshot.api_uid) && inner.pods.len() >= self.max_pods {
            return Applied::Full;
        }
        insert(&mut inner, snapshot);
        Applied::Stored
    }

    /// Removes the pod with API UID `api_uid` (a watch's DELETED).
    pub fn delete(&self, api_uid: &str) {
        let mut inner = self.write();
        remove(&mut inner, api_uid);
    }

    /// Replaces the whole content with a complete list (the initial list, or a relist after
    /// the watch fell too far behind); pods missing from it are gone. Returns how many pods
    /// were refused for the bound.
    pub fn replace_all(&self, snapshots: Vec<PodSnapshot>) -> usize {
        let mut inner = self.write();
        let mut keep: HashMap<&str, ()> = HashMap::with_capacity(snapshots.len());
        for s in &snapshots {
            keep.insert(&s.api_uid, ());
        }
        let gone: Vec<String> = inner
            .pods
            .keys()
            .filter(|uid| !keep.contains_key(uid.as_str()))
            .cloned()
            .collect();
        drop(keep);
        for uid in gone {
            remove(&mut inner, &uid);
        }
        let mut refused = 0;
        for snapshot in snapshots {
            if snapshot.finished {
                remove(&mut inner, &snapshot.api_uid);
                continue;
            }
            if !inner.pods.contains_key(&snapshot.api_uid) && inner.pods.len() >= self.max_pods {
                refused += 1;
                continue;
            }
            insert(&mut inner, snapshot);
        }
        inner.synced = true;
        refused
    }

    /// Pods held.
    pub fn pod_count(&self) -> usize {
        self.read().pods.len()
    }

    /// Containers held.
    pub fn container_count(&self) -> usize {
        self.read().containers.len()
    }

    /// Whether a complete list has been applied at least once.
    pub fn is_synced(&self) -> bool {
        self.read().synced
    }
}

/// Stores `snapshot`, reusing the existing records it leaves unchanged so that their identity
/// (and whatever readers cached from them) survives a no-op update.
fn insert(inner: &mut Inner, snapshot: PodSnapshot) {
    let PodSnapshot {
        api_uid,
        pod,
        containers,
        finished: _,
    } = snapshot;
    let old = inner.pods.remove(&api_uid);
    let pod = match &old {
        Some(old) if old.pod == pod => Arc::clone(&old.pod),
        _ => pod,
    };
    let mut ids = Vec::with_capacity(containers.len());
    for (id, container) in containers {
        let container = match inner.containers.get(&id) {
            Some(existing) if Arc::ptr_eq(&existing.pod, &pod) && **existing == *container => {
                Arc::clone(existing)
            }
            _ if Arc::ptr_eq(&container.pod, &pod) => container,
            // The pod record was reused: point the container at it.
            _ => Arc::new(ApiContainer {
                pod: Arc::clone(&pod),
                ..(*container).clone()
            }),
        };
        inner.containers.insert(id.clone(), container);
        ids.push(id);
    }
    if let Some(old) = old {
        for id in old.container_ids {
            if !ids.contains(&id) {
                inner.containers.remove(&id);
            }
        }
        if let Some(uid) = old.node_uid {
            inner.by_uid.remove(&uid);
        }
    }
    let node_uid = PodUid::parse(&pod.uid);
    if let Some(uid) = node_uid {
        inner.by_uid.insert(uid, Arc::clone(&pod));
    }
    inner.pods.insert(
        api_uid,
        PodEntry {
            pod,
            container_ids: ids,
            node_uid,
        },
    );
}

fn remove(inner: &mut Inner, api_uid: &str) {
    let Some(entry) = inner.pods.remove(api_uid) else {
        return;
    };
    for id in entry.container_ids {
        inner.containers.remove(&id);
    }
    if let Some(uid) = entry.node_uid {
        // Only if it still maps to this pod: a static pod recreated under the same hash may
        // already have replaced it.
        if inner
            .by_uid
            .get(&uid)
            .is_some_and(|p| Arc::ptr_eq(p, &entry.pod))
        {
            inner.by_uid.remove(&uid);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
