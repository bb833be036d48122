//! The watch against an in-process API server speaking the list+watch protocol.

use std::{
    collections::VecDeque,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::get,
};
use futures_util::stream::{self, BoxStream, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::*;
use crate::state::pods::tests::{CONTAINERD, CRIO, DOCKER, MIRROR};

const NODE: &str = "node-a";

/// How a watch response ends after its events.
enum End {
    /// The request fails with HTTP 500 before any event.
    Fail,
    /// The connection breaks mid-stream, as when a load balancer or the API server dies.
    Abort,
    /// Nothing more, ever.
    Hang,
}

struct WatchScript {
    /// Events are held back until this is notified.
    gate: Option<Arc<Notify>>,
    lines: Vec<Value>,
    end: End,
}

struct ListScript {
    gate: Option<Arc<Notify>>,
    resource_version: &'static str,
    items: Vec<Value>,
}

/// The fake API server: scripted answers, and a log of what was asked.
#[derive(Default)]
struct Fake {
    lists: Mutex<VecDeque<ListScript>>,
    watches: Mutex<VecDeque<WatchScript>>,
    /// `list <resourceVersion>` or `watch <resourceVersion>` per request, or what was wrong
    /// with it.
    log: Mutex<Vec<String>>,
}

impl Fake {
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// Decodes a query string's `%XX` escapes and `+`.
fn decode_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| decode_component(value))
    })
}

async fn pods(State(fake): State<Arc<Fake>>, uri: Uri) -> Response {
    if query_param(&uri, "fieldSelector").as_deref() != Some("spec.nodeName=node-a") {
        fake.log
            .lock()
            .unwrap()
            .push(format!("bad selector: {uri}"));
        return StatusCode::BAD_REQUEST.into_response();
    }
    let watch = query_param(&uri, "watch").is_some_and(|w| w == "true" || w == "1");
    if !watch {
        // `list <resourceVersion>`: 0 asks for the API server's watch cache.
        let version = query_param(&uri, "resourceVersion").unwrap_or_default();
        fake.log.lock().unwrap().push(format!("list {version}"));
        let Some(script) = fake.lists.lock().unwrap().pop_front() else {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        };
        if let Some(gate) = script.gate {
            gate.notified().await;
        }
        let list = json!({
            "apiVersion": "v1",
            "kind": "PodList",
            "metadata": {"resourceVersion": script.resource_version},
            "items": script.items,
        });
        return ([("content-type", "application/json")], list.to_string()).into_response();
    }
    let version = query_param(&uri, "resourceVersion").unwrap_or_default();
    fake.log.lock().unwrap().push(format!("watch {version}"));
    let script = fake.watches.lock().unwrap().pop_front();
    let Some(script) = script else {
        let body: BoxStream<'static, Result<Bytes, std::io::Error>> = stream::pending().boxed();
        return Body::from_stream(body).into_response();
    };
    if matches!(script.end, End::Fail) {
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": "etcdserver: request timed out",
            "reason": "InternalError", "code": 500});
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "application/json")],
            status.to_string(),
        )
            .into_response();
    }
    let gate = script.gate;
    let events = stream::iter(
        script
            .lines
            .into_iter()
            .map(|line| Ok::<_, std::io::Error>(Bytes::from(format!("{line}\n")))),
    );
    // The events wait for the gate; the response headers do not.
    let opened = stream::once(async move {
        if let Some(gate) = gate {
            gate.notified().await;
        }
        events
    })
    .flatten();
    let end: BoxStream<'static, Result<Bytes, std::io::Error>> = match script.end {
        End::Fail => stream::empty().boxed(),
        // Later, not at once: hyper would otherwise drop the connection before it flushed
        // the response head and the events.
        End::Abort => stream::once(async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Err(std::io::Error::other("connection lost"))
        })
        .boxed(),
        End::Hang => stream::pending().boxed(),
    };
    let body = opened.chain(end);
    (
        [("content-type", "application/json")],
        Body::from_stream(body),
    )
        .into_response()
}

/// A fixture pod at `resource_version`.
fn at(fixture: &str, resource_version: &str) -> Value {
    let mut pod: Value = serde_json::from_str(fixture).unwrap();
    pod["metadata"]["resourceVersion"] = json!(resource_version);
    pod
}

fn event(kind: &str, object: Value) -> Value {
    json!({"type": kind, "object": object})
}

fn gone() -> Value {
    json!({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "too old resource version: 103 (180)", "reason": "Expired", "code": 410
    }})
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

const NGINX: &str = "4c1b9e2f7a3d5c6b8e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f";
const NODE_EXPORTER: &str = "7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3cd";
const LEDGER: &str = "5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d";
const ETCD: &str = "f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6";

fn label(index: &PodIndex, id: &str, key: &str) -> Option<String> {
    index.container(id)?.pod.labels.get(key).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_api_across_a_dropped_connection_and_a_410() {
    let resumed = Arc::new(Notify::new());
    let relist = Arc::new(Notify::new());
    let mut web_frontend = at(CONTAINERD, "101");
    web_frontend["metadata"]["labels"]["tier"] = json!("frontend");

    let fake = Arc::new(Fake::default());
    fake.lists.lock().unwrap().extend([
        ListScript {
            gate: None,
            resource_version: "100",
            items: vec![at(CONTAINERD, "90"), at(CRIO, "95")],
        },
        ListScript {
            gate: Some(Arc::clone(&relist)),
            resource_version: "200",
            // The mirror pod went away while the watch was expired: no DELETED event for it.
            items: vec![web_frontend.clone(), at(DOCKER, "102"), at(CRIO, "180")],
        },
    ]);
    fake.watches.lock().unwrap().extend([
        WatchScript {
            gate: None,
            lines: vec![
                event("MODIFIED", web_frontend),
                event("ADDED", at(DOCKER, "102")),
                event("DELETED", at(CRIO, "103")),
            ],
            end: End::Abort,
        },
        WatchScript {
            gate: None,
            lines: vec![],
            end: End::Fail,
        },
        WatchScript {
            gate: Some(Arc::clone(&resumed)),
            lines: vec![event("ADDED", at(MIRROR, "104")), gone()],
            end: End::Hang,
        },
        WatchScript {
            gate: None,
            lines: vec![],
            end: End::Hang,
        },
    ]);

    let app = Router::new()
        .route("/api/v1/pods", get(pods))
        .with_state(Arc::clone(&fake));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let metrics = Metrics::new().unwrap();
    let k8s = metrics.k8s_watch().unwrap();
    let health = Health::new(k8s.clone());
    let config = PodWatchConfig {
        min_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        ..PodWatchConfig::new(NODE)
    };
    let url = format!("http://{addr}").parse().unwrap();
    let client = client(kube::Config::new(url), health.clone()).unwrap();
    let index = PodIndex::default();
    let watch = {
        let index = index.clone();
        tokio::spawn(async move { watch_pods(client, &config, &index, &health).await })
    };

    // The list, then the first watch's update, add and delete; then the connection breaks and
    // the watch resumes from the last resourceVersion, without a new list. kube reads a broken
    // stream as its end (the API server's watch timeout looks the same), so that is no error;
    // the resumed watch's refusal (HTTP 500) is, and it is retried from the same version.
    wait_until("the first watch's events", || {
        label(&index, NGINX, "tier").as_deref() == Some("frontend")
            && index.container(LEDGER).is_some()
            && index.container(NODE_EXPORTER).is_none()
    })
    .await;
    wait_until("the resumed watch", || fake.log().len() >= 4).await;
    assert_eq!(
        fake.log(),
        ["list 0", "watch 100", "watch 103", "watch 103"]
    );
    assert!(index.is_synced());
    assert_eq!(k8s.errors.get(), 1, "the refused watch is counted");
    // The resumed watch brings no event yet, but the API answered: up again.
    wait_until("up after the resume", || k8s.up.get() == 1).await;

    // The resumed watch adds the mirror pod, then says 410 Gone: the watcher relists.
    resumed.notify_one();
    wait_until("the resumed watch's add", || {
        index.container(ETCD).is_some()
    })
    .await;
    wait_until("the relist", || fake.log().len() >= 5).await;
    assert_eq!(fake.log()[4], "list 0");

    // The relist replaces the index: the pod that vanished meanwhile is gone, the others are
    // current, and the watch goes on from the list's resourceVersion.
    relist.notify_one();
    wait_until("the relisted state", || {
        index.container(ETCD).is_none() && index.container(NODE_EXPORTER).is_some()
    })
    .await;
    wait_until("the watch after the relist", || fake.log().len() >= 6).await;
    assert_eq!(
        fake.log(),
        [
            "list 0",
            "watch 100",
            "watch 103",
            "watch 103",
            "list 0",
            "watch 200"
        ]
    );
    assert_eq!(index.pod_count(), 3);
    assert_eq!(label(&index, NGINX, "tier").as_deref(), Some("frontend"));
    assert!(index.container(LEDGER).is_some());
    wait_until("up after the relist", || k8s.up.get() == 1).await;
    assert_eq!(k8s.pods.get(), 3);
    assert_eq!(
        k8s.errors.get(),
        1,
        "410 Gone is part of the protocol, not an error"
    );
    let text = metrics.render();
    assert!(text.contains("vigil_k8s_watch_up 1"), "{text}");
    assert!(text.contains("vigil_k8s_pods 3"), "{text}");

    watch.abort();
    server.abort();
}

#[tokio::test]
async fn unreachable_api_server_is_down_and_retried() {
    // A port nothing listens on: every list fails, is counted, and is retried.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let metrics = Metrics::new().unwrap();
    let k8s = metrics.k8s_watch().unwrap();
    let health = Health::new(k8s.clone());
    let config = PodWatchConfig {
        min_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..PodWatchConfig::new(NODE)
    };
    let client = client(
        kube::Config::new(format!("http://{addr}").parse().unwrap()),
        health.clone(),
    )
    .unwrap();
    let index = PodIndex::default();
    let watch = {
        let index = index.clone();
        tokio::spawn(async move { watch_pods(client, &config, &index, &health).await })
    };
    wait_until("retries", || k8s.errors.get() >= 3).await;
    assert_eq!(k8s.up.get(), 0);
    assert!(!index.is_synced());
    assert_eq!(index.pod_count(), 0);
    watch.abort();
    // Registering twice is refused rather than double-counted.
    assert!(metrics.k8s_watch().is_err());
}

#[test]
fn backoff_grows_with_jitter_and_resets() {
    use kube::runtime::utils::Backoff as _;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
    let delays: Vec<Duration> = (&mut backoff).take(6).collect();
    for (delay, nominal) in delays.iter().zip([100u64, 200, 400, 800, 800, 800]) {
        let nominal = Duration::from_millis(nominal);
        assert!(
            *delay >= nominal / 2 && *delay <= nominal,
            "{delay:?} vs {nominal:?}"
        );
    }
    backoff.reset();
    assert!(backoff.next().unwrap() <= Duration::from_millis(100));
    // A maximum below the minimum is the minimum.
    let mut odd = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
    assert!(odd.nth(5).unwrap() <= Duration::from_secs(2));
}

#[tokio::test]
async fn configuration_sources() {
    // A kubeconfig given explicitly is used, and its errors are errors.
    let tmp = tempfile::TempDir::new().unwrap();
    let path = tmp.path().join("config");
    std::fs::write(
        &path,
        r#"apiVersion: v1
kind: Config
clusters:
- name: dev
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: dev
  user: {token: "t0ken"}
contexts:
- name: dev
  context: {cluster: dev, user: dev, namespace: tools}
current-context: dev
"#,
    )
    .unwrap();
    let config = client_config(Some(&path)).await.unwrap();
    assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
    assert_eq!(config.default_namespace, "tools");
    let missing = client_config(Some(&tmp.path().join("absent"))).await;
    assert!(matches!(missing, Err(PodWatchError::Kubeconfig { .. })));
    let message = error_chain(&missing.unwrap_err());
    assert!(message.contains("absent"), "{message}");
}
