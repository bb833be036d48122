//! The mapping from recorded Pod objects to metadata, and from cgroup paths of every layout to
//! the full set of `container.*` and `k8s.*` fields.

use std::{collections::BTreeMap, fs, path::Path};

use tempfile::TempDir;

use super::*;
use crate::{
    enrich::Enriched,
    events::{decode::decode, synth::RecordBuilder, syscalls::Syscall},
    rules::fields,
    state::{
        container::container_from_proc_cgroup,
        container_meta::{ContainerMeta, ContainerMetaCache, RuntimeRoots},
    },
};

/// Recorded Pod objects (`kubectl get pod -o json`, trimmed of managedFields): a containerd
/// Deployment pod with init, sidecar and ephemeral containers and a restarted container; a
/// CRI-O DaemonSet pod; a cri-dockerd StatefulSet pod; a static pod's mirror.
pub(crate) const CONTAINERD: &str = include_str!("../testdata/pods/containerd.json");
pub(crate) const CRIO: &str = include_str!("../testdata/pods/crio.json");
pub(crate) const DOCKER: &str = include_str!("../testdata/pods/docker.json");
pub(crate) const MIRROR: &str = include_str!("../testdata/pods/mirror.json");

/// A fixture as a Pod.
pub(crate) fn pod(json: &str) -> Pod {
    serde_json::from_str(json).expect("fixture is a Pod")
}

fn snapshot(json: &str) -> PodSnapshot {
    PodSnapshot::from_pod(&pod(json)).expect("fixture has a uid")
}

const NGINX: &str = "4c1b9e2f7a3d5c6b8e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f";
const NGINX_PREVIOUS: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";
const METRICS: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const MIGRATE: &str = "1f2e3d4c5b6a79880716253443526170f1e2d3c4b5a6978807162534435261ff";
const LOG_SHIPPER: &str = "2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70819";
const DEBUGGER: &str = "e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f";
const WEB_UID: &str = "8a2c1c6e-7a57-4f5e-9a3b-2f0b0e6d2f11";

const NODE_EXPORTER: &str = "7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3cd";
const RBAC_PROXY: &str = "c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2";
const INIT_TEXTFILE: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
const EXPORTER_UID: &str = "3d9e1f20-6b7a-4c8d-9e0f-1a2b3c4d5e6f";

const LEDGER: &str = "5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d";
const LEDGER_UID: &str = "c0ffee00-1234-4abc-8def-0123456789ab";

const ETCD: &str = "f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6";
const ETCD_HASH: &str = "6e5c4e6d1c7e4f1d8a0d9b8c7a6f5e4d";

/// (id, name, kind, runtime, image, repository, tag, privileged) of a snapshot's containers.
type Row<'a> = (
    &'a str,
    &'a str,
    ContainerKind,
    ContainerRuntime,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    bool,
);

fn rows(snapshot: &PodSnapshot) -> Vec<Row<'_>> {
    snapshot
        .containers
        .iter()
        .map(|(id, c)| {
            assert!(
                Arc::ptr_eq(&c.pod, &snapshot.pod),
                "containers share the pod record"
            );
            (
                &**id,
                c.name.as_str(),
                c.kind,
                c.runtime.expect("scheme is known"),
                c.image.as_deref(),
                c.image_repository.as_deref(),
                c.image_tag.as_deref(),
                c.privileged,
            )
        })
        .collect()
}

#[test]
fn containerd_pod_with_init_sidecar_ephemeral_and_restart() {
    use ContainerKind::*;
    let s = snapshot(CONTAINERD);
    assert_eq!(s.api_uid, WEB_UID);
    assert_eq!(s.pod.uid, WEB_UID);
    assert_eq!(s.pod.name, "web-7d4b9c6f5-x2kq8");
    assert_eq!(s.pod.namespace, "shop");
    assert_eq!(
        s.pod.labels.keys().map(String::as_str).collect::<Vec<_>>(),
        ["app", "app.kubernetes.io/name", "pod-template-hash", "tier"]
    );
    let c = ContainerRuntime::Containerd;
    let nginx = Some("docker.io/library/nginx:1.25.3");
    let exporter = "ghcr.io/shop/nginx-exporter@sha256:3b1a8c2e9f0d4a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d";
    assert_eq!(
        rows(&s),
        [
            (
                NGINX,
                "nginx",
                Regular,
                c,
                nginx,
                Some("docker.io/library/nginx"),
                Some("1.25.3"),
                false
            ),
            // The instance before the OOM kill: its last processes may still be exiting.
            (
                NGINX_PREVIOUS,
                "nginx",
                Regular,
                c,
                nginx,
                Some("docker.io/library/nginx"),
                Some("1.25.3"),
                false
            ),
            // The status has only an image id: the spec's reference (by digest) is used.
            (
                METRICS,
                "metrics",
                Regular,
                c,
                Some(exporter),
                Some("ghcr.io/shop/nginx-exporter"),
                None,
                true
            ),
            (
                MIGRATE,
                "migrate",
                Init,
                c,
                Some("registry.example.com:5000/shop/migrate:2024.05.1"),
                Some("registry.example.com:5000/shop/migrate"),
                Some("2024.05.1"),
                false,
            ),
            (
                LOG_SHIPPER,
                "log-shipper",
                Init,
                c,
                Some("docker.io/fluent/fluent-bit:3.0.2"),
                Some("docker.io/fluent/fluent-bit"),
                Some("3.0.2"),
                false,
            ),
            (
                DEBUGGER,
                "debugger-7hdl2",
                Ephemeral,
                c,
                Some("docker.io/library/busybox:1.36"),
                Some("docker.io/library/busybox"),
                Some("1.36"),
                true,
            ),
        ]
    );
}

#[test]
fn crio_docker_and_mirror_pods() {
    use ContainerKind::*;
    let s = snapshot(CRIO);
    assert_eq!(s.pod.namespace, "openshift-monitoring");
    let o = ContainerRuntime::CriO;
    let exporter = Some("quay.io/prometheus/node-exporter:v1.7.0");
    let exporter_repo = Some("quay.io/prometheus/node-exporter");
    assert_eq!(
        rows(&s),
        [
            (
                NODE_EXPORTER,
                "node-exporter",
                Regular,
                o,
                exporter,
                exporter_repo,
                Some("v1.7.0"),
                true
            ),
            (
                RBAC_PROXY,
                "kube-rbac-proxy",
                Regular,
                o,
                Some("quay.io/brancz/kube-rbac-proxy:v0.16.0"),
                Some("quay.io/brancz/kube-rbac-proxy"),
                Some("v0.16.0"),
                false,
            ),
            (
                INIT_TEXTFILE,
                "init-textfile",
                Init,
                o,
                exporter,
                exporter_repo,
                Some("v1.7.0"),
                true
            ),
        ]
    );

    let s = snapshot(DOCKER);
    assert_eq!(s.pod.uid, LEDGER_UID);
    assert_eq!(
        rows(&s),
        [(
            LEDGER,
            "ledger",
            Regular,
            ContainerRuntime::Docker,
            Some("registry.internal/finance/ledger:3.2"),
            Some("registry.internal/finance/ledger"),
            Some("3.2"),
            false,
        )]
    );

    // A mirror pod is known on the node (cgroups, runtime labels) by the static pod's UID.
    let s = snapshot(MIRROR);
    assert_eq!(s.api_uid, "d4e5f6a7-b8c9-4d0e-9f1a-2b3c4d5e6f70");
    assert_eq!(s.pod.uid, ETCD_HASH);
    assert_eq!(s.containers.len(), 1);
    assert_eq!(s.containers[0].1.image_tag.as_deref(), Some("3.5.12-0"));
}

#[test]
fn odd_pods_map_without_panicking() {
    // Scheduled, nothing started: no status at all.
    let pending: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p", "namespace": "n", "uid": WEB_UID},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": "node-a"}
    }))
    .unwrap();
    let s = PodSnapshot::from_pod(&pending).unwrap();
    assert!(s.containers.is_empty());
    // A status for a container the spec does not list, unknown and malformed ids.
    let odd: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p", "uid": WEB_UID},
        "status": {"containerStatuses": [
            {"name": "ghost", "image": "", "imageID": "", "ready": false, "restartCount": 0,
             "containerID": format!("containerd://{NGINX}")},
            {"name": "other", "image": "x:1", "imageID": "", "ready": false, "restartCount": 0,
             "containerID": format!("kata://{METRICS}")},
            {"name": "bad", "image": "x:1", "imageID": "", "ready": false, "restartCount": 0,
             "containerID": "containerd://../../etc"},
            {"name": "waiting", "image": "x:1", "imageID": "", "ready": false, "restartCount": 0}
        ]}
    }))
    .unwrap();
    let s = PodSnapshot::from_pod(&odd).unwrap();
    let got: Vec<_> = s
        .containers
        .iter()
        .map(|(id, c)| {
            (
                &**id,
                c.name.as_str(),
                c.runtime,
                c.image.clone(),
                c.privileged,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                NGINX,
                "ghost",
                Some(ContainerRuntime::Containerd),
                None,
                false
            ),
            (METRICS, "other", None, Some("x:1".to_owned()), false),
        ]
    );
    assert_eq!(s.pod.namespace, "");
    // No UID: not a pod the index can key.
    let mut no_uid = pending;
    no_uid.metadata.uid = None;
    assert!(PodSnapshot::from_pod(&no_uid).is_none());
}

#[test]
fn container_ids_need_a_scheme_and_64_hex() {
    assert_eq!(
        parse_container_id(&format!("cri-o://{NGINX}")),
        Some((Some(ContainerRuntime::CriO), NGINX))
    );
    assert_eq!(parse_container_id(NGINX), None);
    assert_eq!(
        parse_container_id(&format!("docker://{}", &NGINX[1..])),
        None
    );
    assert_eq!(
        parse_container_id(&format!("docker://{}", NGINX.to_uppercase())),
        None
    );
}

// ---------------------------------------------------------------------------
// From a cgroup path to the fields.

/// `/proc/<pid>/cgroup` texts of every layout a runtime is found in, for container `id` of pod
/// `uid`.
fn layouts(runtime: ContainerRuntime, id: &str, uid: &str) -> Vec<(&'static str, String)> {
    let u = uid.replace('-', "_");
    let systemd = |qos: &str, unit: String| {
        format!("/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{u}.slice/{unit}")
    };
    let v1 = |path: &str| format!("11:memory:{path}\n4:pids:{path}\n1:name=systemd:{path}\n");
    match runtime {
        ContainerRuntime::Containerd => vec![
            (
                "v1 cgroupfs",
                v1(&format!("/kubepods/burstable/pod{uid}/{id}")) + "0::/\n",
            ),
            (
                "v1 systemd",
                v1(&systemd("burstable", format!("cri-containerd-{id}.scope"))),
            ),
            (
                "v2 cgroupfs",
                format!("0::/kubepods/burstable/pod{uid}/{id}\n"),
            ),
            (
                "v2 systemd",
                format!(
                    "0::{}\n",
                    systemd("burstable", format!("cri-containerd-{id}.scope"))
                ),
            ),
            (
                "v2 mismatched drivers",
                format!(
                    "0::/system.slice/containerd.service/kubepods-burstable-pod{u}.slice:cri-containerd:{id}\n"
                ),
            ),
        ],
        ContainerRuntime::CriO => vec![
            (
                "v1 cgroupfs",
                v1(&format!("/kubepods/burstable/pod{uid}/crio-{id}")),
            ),
            (
                "v1 systemd",
                v1(&systemd("burstable", format!("crio-{id}.scope"))),
            ),
            (
                "v2 cgroupfs",
                format!("0::/kubepods/burstable/pod{uid}/crio-{id}\n"),
            ),
            (
                "v2 systemd",
                format!(
                    "0::{}/container\n",
                    systemd("burstable", format!("crio-{id}.scope"))
                ),
            ),
        ],
        ContainerRuntime::Docker | ContainerRuntime::Podman => vec![
            // A bare id: the layout cannot tell cri-dockerd from containerd.
            (
                "v1 cgroupfs",
                v1(&format!("/kubepods/besteffort/pod{uid}/{id}")),
            ),
            (
                "v1 systemd",
                v1(&systemd("besteffort", format!("docker-{id}.scope"))),
            ),
            (
                "v2 cgroupfs",
                format!("0::/kubepods/besteffort/pod{uid}/{id}\n"),
            ),
            (
                "v2 systemd",
                format!(
                    "0::{}\n",
                    systemd("besteffort", format!("docker-{id}.scope"))
                ),
            ),
        ],
    }
}

/// The fields checked, each with its `[key]` argument if any.
const FIELDS: [(&str, Option<&str>); 14] = [
    ("container.id", None),
    ("container.full_id", None),
    ("container.type", None),
    ("container.name", None),
    ("container.image", None),
    ("container.image.repository", None),
    ("container.image.tag", None),
    ("container.privileged", None),
    ("k8s.pod.name", None),
    ("k8s.ns.name", None),
    ("k8s.pod.uid", None),
    ("k8s.pod.labels", None),
    ("k8s.pod.label", Some("app.kubernetes.io/name")),
    ("k8s.pod.label.app", None),
];

/// An event of a process in `container` with `meta` attached, as enrichment builds it.
fn event_in(container: ContainerRef, meta: Option<Arc<ContainerMeta>>) -> Enriched {
    let mut event = crate::testing::detached_enricher().enrich(
        decode(
            &RecordBuilder::new(Syscall::Openat, 4242, 3)
                .comm("sh")
                .arg(0, -100i64 as u64)
                .string(0, "/etc/shadow")
                .build(),
        )
        .expect("synthetic record decodes"),
    );
    Arc::make_mut(&mut event.process).container = Some(container);
    event.container_meta = meta;
    event
}

/// Every checked field of `event`, rendered ("<NA>" when absent).
fn rendered(event: &Enriched) -> BTreeMap<String, String> {
    FIELDS
        .iter()
        .map(|(name, arg)| {
            let (def, arg_value) = fields::lookup(name, *arg).expect("field exists");
            let value = fields::extract_one(def, &arg_value, event)
                .map_or_else(|| "<NA>".to_owned(), |v| v.render());
            let key = match arg {
                Some(arg) => format!("{name}[{arg}]"),
                None => (*name).to_owned(),
            };
            (key, value)
        })
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Roots with no runtime files, so everything comes from the API.
fn api_only(tmp: &TempDir, index: &PodIndex) -> RuntimeRoots {
    RuntimeRoots::default()
        .with_host_root(tmp.path())
        .with_pods(index.clone())
}

fn index_of(fixtures: &[&str]) -> PodIndex {
    let index = PodIndex::default();
    let refused = index.replace_all(fixtures.iter().map(|f| snapshot(f)).collect());
    assert_eq!(refused, 0);
    assert!(index.is_synced());
    index
}

#[test]
fn every_layout_yields_every_field() {
    let tmp = TempDir::new().unwrap();
    let index = index_of(&[CONTAINERD, CRIO, DOCKER, MIRROR]);
    let mut cache = ContainerMetaCache::new(api_only(&tmp, &index), 64);

    let web_labels = "app:web, app.kubernetes.io/name:web, pod-template-hash:7d4b9c6f5, tier";
    let web = |id: &str, name: &str, image: &str, repo: &str, tag: &str, privileged: &str| {
        expect(&[
            ("container.id", &id[..12]),
            ("container.full_id", id),
            ("container.type", "containerd"),
            ("container.name", name),
            ("container.image", image),
            ("container.image.repository", repo),
            ("container.image.tag", tag),
            ("container.privileged", privileged),
            ("k8s.pod.name", "web-7d4b9c6f5-x2kq8"),
            ("k8s.ns.name", "shop"),
            ("k8s.pod.uid", WEB_UID),
            ("k8s.pod.labels", web_labels),
            ("k8s.pod.label[app.kubernetes.io/name]", "web"),
            ("k8s.pod.label.app", "web"),
        ])
    };
    let exporter_labels = "app.kubernetes.io/component:exporter, app.kubernetes.io/name:node-exporter, \
         app.kubernetes.io/part-of:openshift-monitoring, controller-revision-hash:6c9f7b8d5, \
         pod-template-generation:3";
    let crio = |id: &str, name: &str, image: &str, repo: &str, tag: &str, privileged: &str| {
        expect(&[
            ("container.id", &id[..12]),
            ("container.full_id", id),
            ("container.type", "cri-o"),
            ("container.name", name),
            ("container.image", image),
            ("container.image.repository", repo),
            ("container.image.tag", tag),
            ("container.privileged", privileged),
            ("k8s.pod.name", "node-exporter-8xk2p"),
            ("k8s.ns.name", "openshift-monitoring"),
            ("k8s.pod.uid", EXPORTER_UID),
            ("k8s.pod.labels", exporter_labels),
            ("k8s.pod.label[app.kubernetes.io/name]", "node-exporter"),
            ("k8s.pod.label.app", "<NA>"),
        ])
    };
    let cases: Vec<(ContainerRuntime, &str, &str, BTreeMap<String, String>)> = vec![
        (
            ContainerRuntime::Containerd,
            NGINX,
            WEB_UID,
            web(
                NGINX,
                "nginx",
                "docker.io/library/nginx:1.25.3",
                "docker.io/library/nginx",
                "1.25.3",
                "false",
            ),
        ),
        (
            ContainerRuntime::Containerd,
            METRICS,
            WEB_UID,
            web(
                METRICS,
                "metrics",
                "ghcr.io/shop/nginx-exporter@sha256:3b1a8c2e9f0d4a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d",
                "ghcr.io/shop/nginx-exporter",
                "<NA>",
                "true",
            ),
        ),
        (
            ContainerRuntime::Containerd,
            MIGRATE,
            WEB_UID,
            web(
                MIGRATE,
                "migrate",
                "registry.example.com:5000/shop/migrate:2024.05.1",
                "registry.example.com:5000/shop/migrate",
                "2024.05.1",
                "false",
            ),
        ),
        (
            ContainerRuntime::Containerd,
            DEBUGGER,
            WEB_UID,
            web(
                DEBUGGER,
                "debugger-7hdl2",
                "docker.io/library/busybox:1.36",
                "docker.io/library/busybox",
                "1.36",
                "true",
            ),
        ),
        (
            ContainerRuntime::CriO,
            NODE_EXPORTER,
            EXPORTER_UID,
            crio(
                NODE_EXPORTER,
                "node-exporter",
                "quay.io/prometheus/node-exporter:v1.7.0",
                "quay.io/prometheus/node-exporter",
                "v1.7.0",
                "true",
            ),
        ),
        (
            ContainerRuntime::CriO,
            INIT_TEXTFILE,
            EXPORTER_UID,
            crio(
                INIT_TEXTFILE,
                "init-textfile",
                "quay.io/prometheus/node-exporter:v1.7.0",
                "quay.io/prometheus/node-exporter",
                "v1.7.0",
                "true",
            ),
        ),
        (
            ContainerRuntime::Docker,
            LEDGER,
            LEDGER_UID,
            expect(&[
                ("container.id", &LEDGER[..12]),
                ("container.full_id", LEDGER),
                // Even where the layout says "containerd" (a bare id), the API's docker://.
                ("container.type", "docker"),
                ("container.name", "ledger"),
                ("container.image", "registry.internal/finance/ledger:3.2"),
                (
                    "container.image.repository",
                    "registry.internal/finance/ledger",
                ),
                ("container.image.tag", "3.2"),
                ("container.privileged", "false"),
                ("k8s.pod.name", "ledger-0"),
                ("k8s.ns.name", "finance"),
                ("k8s.pod.uid", LEDGER_UID),
                (
                    "k8s.pod.labels",
                    "app:ledger, apps.kubernetes.io/pod-index:0, \
                     controller-revision-hash:ledger-5f7c9d8b6, \
                     statefulset.kubernetes.io/pod-name:ledger-0",
                ),
                ("k8s.pod.label[app.kubernetes.io/name]", "<NA>"),
                ("k8s.pod.label.app", "ledger"),
            ]),
        ),
        (
            ContainerRuntime::Containerd,
            ETCD,
            ETCD_HASH,
            expect(&[
                ("container.id", &ETCD[..12]),
                ("container.full_id", ETCD),
                ("container.type", "containerd"),
                ("container.name", "etcd"),
                ("container.image", "registry.k8s.io/etcd:3.5.12-0"),
                ("container.image.repository", "registry.k8s.io/etcd"),
                ("container.image.tag", "3.5.12-0"),
                ("container.privileged", "false"),
                ("k8s.pod.name", "etcd-node-a"),
                ("k8s.ns.name", "kube-system"),
                ("k8s.pod.uid", ETCD_HASH),
                ("k8s.pod.labels", "component:etcd, tier:control-plane"),
                ("k8s.pod.label[app.kubernetes.io/name]", "<NA>"),
                ("k8s.pod.label.app", "<NA>"),
            ]),
        ),
    ];
    let mut checked = 0;
    for (runtime, id, uid, want) in &cases {
        for (layout, text) in layouts(*runtime, id, uid) {
            let container = container_from_proc_cgroup(&text)
                .unwrap_or_else(|| panic!("{layout}: no container in {text:?}"));
            assert_eq!(container.full_id, *id, "{layout}");
            assert_eq!(
                container.pod_uid.map(|u| u.to_string()).as_deref(),
                Some(*uid)
            );
            let meta = cache.get(&container);
            assert!(meta.is_some(), "{layout}: {id} has metadata");
            let got = rendered(&event_in(container, meta));
            assert_eq!(&got, want, "{layout}: {id}");
            checked += 1;
        }
    }
    assert_eq!(checked, 37);
}

#[test]
fn pod_fields_before_the_status_lists_the_container() {
    // A container the kubelet started a moment ago (or the pod's sandbox): its id is not in the
    // pod status yet, but the pod UID in its cgroup path finds the pod.
    let tmp = TempDir::new().unwrap();
    let index = index_of(&[CONTAINERD, MIRROR]);
    let mut cache = ContainerMetaCache::new(api_only(&tmp, &index), 16);
    let fresh = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let text = format!(
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{fresh}.scope\n",
        WEB_UID.replace('-', "_")
    );
    let container = container_from_proc_cgroup(&text).unwrap();
    let meta = cache.get(&container).unwrap();
    let got = rendered(&event_in(container, Some(meta)));
    assert_eq!(got["k8s.pod.name"], "web-7d4b9c6f5-x2kq8");
    assert_eq!(got["k8s.ns.name"], "shop");
    assert_eq!(got["k8s.pod.uid"], WEB_UID);
    assert_eq!(got["k8s.pod.label.app"], "web");
    assert_eq!(got["container.name"], "<NA>");
    assert_eq!(got["container.type"], "containerd");

    // A static pod's container, found by the config hash in the cgroup path.
    let text = format!("0::/kubepods/burstable/pod{ETCD_HASH}/{fresh}\n");
    let container = container_from_proc_cgroup(&text).unwrap();
    let got = rendered(&event_in(container.clone(), cache.get(&container)));
    assert_eq!(got["k8s.pod.name"], "etcd-node-a");

    // Outside any known pod, and on a host without the watch: nothing.
    let text = format!("0::/kubepods/burstable/pod{LEDGER_UID}/{fresh}\n");
    let container = container_from_proc_cgroup(&text).unwrap();
    assert_eq!(cache.get(&container), None);
    let mut plain = ContainerMetaCache::new(RuntimeRoots::default().with_host_root(tmp.path()), 4);
    assert_eq!(plain.get(&container), None);
}

/// Writes a containerd CRI bundle for `id` as containerd lays it out under `root`.
fn write_containerd_bundle(root: &Path, id: &str, annotations: serde_json::Value) {
    let bundle = root
        .join("run/containerd/io.containerd.runtime.v2.task/k8s.io")
        .join(id);
    fs::create_dir_all(&bundle).unwrap();
    let spec = serde_json::json!({
        "ociVersion": "1.1.0",
        "process": {"capabilities": {"effective": ["CAP_CHOWN", "CAP_SYS_ADMIN"]}},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid"]},
            {"destination": "/data", "type": "bind", "source": "/var/lib/kubelet/pods/x/volumes/data",
             "options": ["rbind", "rprivate", "rw"]}
        ],
        "annotations": annotations,
        // No masked paths plus CAP_SYS_ADMIN: the files' heuristic says privileged.
        "linux": {"maskedPaths": []}
    });
    fs::write(bundle.join("config.json"), spec.to_string()).unwrap();
}

#[test]
fn api_and_runtime_files_combine_by_field() {
    let tmp = TempDir::new().unwrap();
    write_containerd_bundle(
        tmp.path(),
        NGINX,
        serde_json::json!({
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.container-name": "nginx",
            "io.kubernetes.cri.image-name": "docker.io/library/nginx:1.25.3",
            "io.kubernetes.cri.sandbox-name": "web-7d4b9c6f5-x2kq8",
            "io.kubernetes.cri.sandbox-namespace": "shop",
            "io.kubernetes.cri.sandbox-uid": WEB_UID
        }),
    );
    let index = PodIndex::default();
    let container =
        container_from_proc_cgroup(&format!("0::/kubepods/burstable/pod{WEB_UID}/{NGINX}\n"))
            .unwrap();

    // Before the first list: the files alone, as without the watch.
    let mut cache = ContainerMetaCache::new(api_only(&tmp, &index), 16);
    let files_only = cache.get(&container).unwrap();
    assert_eq!(files_only.privileged, Some(true), "the heuristic");
    assert!(files_only.pod_labels.is_empty());
    assert_eq!(files_only.mounts.len(), 1);

    // After it: the API's privilege (exact) and labels, the files' image, mounts and times.
    index.replace_all(vec![snapshot(CONTAINERD)]);
    let merged = cache.get(&container).unwrap();
    assert_eq!(merged.privileged, Some(false));
    assert_eq!(
        merged.pod_labels.get("app").map(String::as_str),
        Some("web")
    );
    assert_eq!(merged.name.as_deref(), Some("nginx"));
    assert_eq!(
        merged.image.as_deref(),
        Some("docker.io/library/nginx:1.25.3")
    );
    assert_eq!(merged.mounts, files_only.mounts);
    assert_eq!(merged.start_ts_ns, files_only.start_ts_ns);
    assert_eq!(merged.runtime, Some(ContainerRuntime::Containerd));

    // Steady state: the same merged record, no rebuild.
    assert!(Arc::ptr_eq(&merged, &cache.get(&container).unwrap()));
    // A no-op update keeps it; a label change rebuilds it.
    index.apply(snapshot(CONTAINERD));
    assert!(Arc::ptr_eq(&merged, &cache.get(&container).unwrap()));
    let mut relabelled = pod(CONTAINERD);
    relabelled
        .metadata
        .labels
        .get_or_insert_default()
        .insert("tier".into(), "frontend".into());
    index.apply(PodSnapshot::from_pod(&relabelled).unwrap());
    let updated = cache.get(&container).unwrap();
    assert!(!Arc::ptr_eq(&merged, &updated));
    assert_eq!(updated.pod_labels["tier"], "frontend");

    // The pod deleted (or the API forgotten after a relist): back to the files.
    index.delete(WEB_UID);
    assert_eq!(cache.get(&container).unwrap(), files_only);
}

#[test]
fn a_file_image_id_yields_to_the_api_reference() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("var/lib/docker/containers").join(LEDGER);
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("config.v2.json"),
        serde_json::json!({
            "Config": {"Image": "sha256:8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b",
                       "Labels": {"io.kubernetes.pod.name": "ledger-0"}},
            "Name": format!("/k8s_ledger_ledger-0_finance_{LEDGER_UID}_0"),
        })
        .to_string(),
    )
    .unwrap();
    let index = index_of(&[DOCKER]);
    let mut cache = ContainerMetaCache::new(api_only(&tmp, &index), 16);
    let container = container_from_proc_cgroup(&format!(
        "0::/kubepods/besteffort/pod{LEDGER_UID}/{LEDGER}\n"
    ))
    .unwrap();
    let meta = cache.get(&container).unwrap();
    assert_eq!(
        meta.image.as_deref(),
        Some("registry.internal/finance/ledger:3.2")
    );
    assert_eq!(meta.image_tag.as_deref(), Some("3.2"));
    // The pod spec's name, not Docker's k8s_<container>_<pod>_… name.
    assert_eq!(meta.name.as_deref(), Some("ledger"));
    assert_eq!(meta.runtime, Some(ContainerRuntime::Docker));
}

// ---------------------------------------------------------------------------
// The index itself.

#[test]
fn index_follows_updates_and_deletes() {
    let index = PodIndex::default();
    assert!(!index.is_synced());
    assert_eq!(index.apply(snapshot(CONTAINERD)), Applied::Stored);
    assert_eq!(index.apply(snapshot(CRIO)), Applied::Stored);
    assert_eq!((index.pod_count(), index.container_count()), (2, 9));
    let nginx = index.container(NGINX).unwrap();

    // An update that drops a container (the ephemeral one gone after a pod re-creation is not
    // possible, but a restart replaces ids) removes exactly what it no longer lists.
    let mut restarted = pod(CONTAINERD);
    let statuses = restarted
        .status
        .as_mut()
        .and_then(|s| s.container_statuses.as_mut())
        .unwrap();
    statuses[1].container_id = Some(format!("containerd://{LEDGER}"));
    index.apply(PodSnapshot::from_pod(&restarted).unwrap());
    assert!(index.container(METRICS).is_none());
    assert_eq!(index.container(LEDGER).unwrap().name, "metrics");
    assert!(
        Arc::ptr_eq(&nginx, &index.container(NGINX).unwrap()),
        "unchanged containers keep their record"
    );
    assert_eq!(index.container_count(), 9);

    index.delete(WEB_UID);
    index.delete("no-such-pod");
    assert!(index.container(NGINX).is_none());
    assert_eq!((index.pod_count(), index.container_count()), (1, 3));

    // A relist replaces everything: the CRI-O pod is gone, the docker one is new.
    assert_eq!(
        index.replace_all(vec![snapshot(DOCKER), snapshot(MIRROR)]),
        0
    );
    assert!(index.container(NODE_EXPORTER).is_none());
    assert!(index.container(LEDGER).is_some());
    assert_eq!(index.pod_count(), 2);
    assert!(index.is_synced());
    let etcd = ContainerRef {
        runtime: ContainerRuntime::Containerd,
        full_id: "ab".repeat(32).into(),
        pod_uid: PodUid::parse(ETCD_HASH),
    };
    assert!(matches!(index.lookup(&etcd), Some(ApiMatch::Pod(p)) if p.name == "etcd-node-a"));
    index.delete("d4e5f6a7-b8c9-4d0e-9f1a-2b3c4d5e6f70");
    assert!(
        index.lookup(&etcd).is_none(),
        "the mirror's UID mapping goes with it"
    );
}

#[test]
fn index_is_bounded() {
    let index = PodIndex::new(2);
    assert_eq!(index.apply(snapshot(CONTAINERD)), Applied::Stored);
    assert_eq!(index.apply(snapshot(CRIO)), Applied::Stored);
    assert_eq!(index.apply(snapshot(DOCKER)), Applied::Full);
    // Updating a pod already held is always possible.
    assert_eq!(index.apply(snapshot(CRIO)), Applied::Stored);
    assert_eq!(
        index.replace_all(vec![snapshot(CONTAINERD), snapshot(CRIO), snapshot(DOCKER)]),
        1
    );
    assert_eq!(index.pod_count(), 2);

    // A finished pod is dropped, not kept until the bound is reached.
    let index = PodIndex::new(2);
    index.apply(snapshot(CONTAINERD));
    let mut done = pod(CONTAINERD);
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    index.apply(PodSnapshot::from_pod(&done).unwrap());
    assert_eq!((index.pod_count(), index.container_count()), (0, 0));
    let mut failed = pod(CRIO);
    failed.status.as_mut().unwrap().phase = Some("Failed".into());
    let failed = PodSnapshot::from_pod(&failed).unwrap();
    assert_eq!(index.replace_all(vec![failed, snapshot(DOCKER)]), 0);
    assert_eq!(index.pod_count(), 1);

    // Per pod: containers and labels.
    let mut big = pod(DOCKER);
    let status = big.status.as_mut().unwrap();
    let template = status.container_statuses.as_ref().unwrap()[0].clone();
    status.container_statuses = Some(
        (0..400)
            .map(|i| {
                let mut s = template.clone();
                s.name = format!("c{i}");
                s.container_id = Some(format!("docker://{i:064x}"));
                s
            })
            .collect(),
    );
    big.metadata.labels = Some((0..400).map(|i| (format!("k{i}"), "v".into())).collect());
    let s = PodSnapshot::from_pod(&big).unwrap();
    assert_eq!(s.containers.len(), MAX_CONTAINERS_PER_POD);
    assert_eq!(s.pod.labels.len(), MAX_LABELS_PER_POD);
    // Long labels hit the byte budget first.
    big.metadata.labels = Some(
        (0..100)
            .map(|i| (format!("example.com/{i:0>240}"), "v".repeat(63)))
            .collect(),
    );
    let s = PodSnapshot::from_pod(&big).unwrap();
    let bytes: usize = s.pod.labels.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(
        bytes <= MAX_LABEL_BYTES_PER_POD && s.pod.labels.len() < 100,
        "{bytes}"
    );
}

#[test]
fn handles_compare_by_identity() {
    let a = PodIndex::default();
    let b = PodIndex::default();
    assert_eq!(a, a.clone());
    assert_ne!(a, b);
    assert!(format!("{a:?}").contains("pods: 0"));
}
