//! The node-scoped watch of the API server that fills the [`PodIndex`].
//!
//! One list+watch of `pods` with the field selector `spec.nodeName=<node>`: the API server sends
//! this node's pods only, so the agent on a node of a 5000-node cluster holds and receives what
//! concerns its own few hundred pods at most. kube's [`watcher()`] does the protocol: the initial
//! list (served from the API server's watch cache, `resourceVersion=0`), the watch from the
//! list's resourceVersion, a resumed watch from the last resourceVersion seen when a
//! connection ends, a relist when the API server answers 410 Gone, and bookmarks. This module
//! turns its events into index updates: the initial list and every relist replace the index
//! atomically when complete, so readers never see a half-listed node.
//!
//! None of it is on the agent's start path: [`run`] is spawned in the background, and events
//! enriched before the first list completes simply lack what the API would add. When the API
//! server is unreachable the index keeps what it had (the containers of a node change rarely,
//! and a stale entry for a container that is gone is never looked up again), the
//! `vigil_k8s_watch_up` gauge drops to 0, failures are counted in
//! `vigil_k8s_watch_errors_total`, one warning is logged, and the watch retries with an
//! exponential backoff until it is back.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    client::ClientBuilder,
    config::{KubeConfigOptions, Kubeconfig},
    runtime::{WatchStreamExt as _, watcher},
};
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::{
    metrics::{K8sWatchMetrics, Metrics},
    state::pods::{Applied, PodIndex, PodSnapshot},
};

/// How the pod watch runs.
#[derive(Clone, Debug)]
pub struct PodWatchConfig {
    /// This node's name, as in the pods' `spec.nodeName`.
    pub node_name: String,
    /// A kubeconfig to use instead of the in-cluster service account (development).
    pub kubeconfig: Option<PathBuf>,
    /// Shortest wait before retrying after a failure.
    pub min_backoff: Duration,
    /// Longest wait between retries.
    pub max_backoff: Duration,
}

impl PodWatchConfig {
    /// The watch of `node_name`'s pods with the default backoff (0.8 s doubling to 30 s, as
    /// kube's own default).
    pub fn new(node_name: impl Into<String>) -> PodWatchConfig {
        PodWatchConfig {
            node_name: node_name.into(),
            kubeconfig: None,
            min_backoff: Duration::from_millis(800),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Why the pod watch cannot start.
#[derive(Debug, Error)]
pub enum PodWatchError {
    /// Neither in a pod nor given a kubeconfig: the host is not a Kubernetes node as far as the
    /// agent can tell.
    #[error("no Kubernetes API configuration (KUBERNETES_SERVICE_HOST is unset and {0})")]
    NoConfig(#[source] kube::config::KubeconfigError),
    /// The kubeconfig named on the command line is unusable.
    #[error("kubeconfig {}", .path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// In a pod, but the service account's token or CA is unusable.
    #[error("in-cluster configuration")]
    InCluster(#[source] kube::config::InClusterError),
    /// The client cannot be built from the configuration (bad CA or client certificate).
    #[error("building the Kubernetes client")]
    Client(#[source] kube::Error),
}

/// Where the client configuration comes from: `kubeconfig` when given; in a pod
/// (`KUBERNETES_SERVICE_HOST` set), the service account's token and CA; otherwise
/// `$KUBECONFIG` or `~/.kube/config`, and failing that, no Kubernetes at all.
pub async fn client_config(kubeconfig: Option<&Path>) -> Result<kube::Config, PodWatchError> {
    if let Some(path) = kubeconfig {
        let error = |source| PodWatchError::Kubeconfig {
            path: path.to_path_buf(),
            source,
        };
        let file = Kubeconfig::read_from(path).map_err(error)?;
        return kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
            .await
            .map_err(error);
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return kube::Config::incluster().map_err(PodWatchError::InCluster);
    }
    kube::Config::from_kubeconfig(&KubeConfigOptions::default())
        .await
        .map_err(PodWatchError::NoConfig)
}

/// Tracks whether the API server answers, for `vigil_k8s_watch_up` and for logging a failure
/// once and its recovery once.
#[derive(Clone)]
struct Health {
    metrics: K8sWatchMetrics,
    synced: Arc<AtomicBool>,
    failing: Arc<AtomicBool>,
}

impl Health {
    fn new(metrics: K8sWatchMetrics) -> Health {
        metrics.up.set(0);
        Health {
            metrics,
            synced: Arc::default(),
            failing: Arc::default(),
        }
    }

    /// The API server answered a request successfully.
    fn answered(&self) {
        if self.synced.load(Ordering::Relaxed) {
            self.metrics.up.set(1);
        }
        if self.failing.swap(false, Ordering::Relaxed) {
            info!("the Kubernetes API server answers again; pod watch resumed");
        }
    }

    /// A complete list was applied, or an event after one: the index is current, with `pods`.
    fn synced(&self, pods: usize) {
        self.synced.store(true, Ordering::Relaxed);
        self.metrics
            .pods
            .set(i64::try_from(pods).unwrap_or(i64::MAX));
        self.answered();
    }

    fn failed(&self, error: &watcher::Error) {
        self.metrics.errors.inc();
        self.metrics.up.set(0);
        if self.failing.swap(true, Ordering::Relaxed) {
            debug!(%error, "pod watch still failing");
        } else {
            warn!(
                %error,
                "the Kubernetes pod watch failed; \
                 k8s fields may be missing or stale until it recovers"
            );
        }
    }
}

/// Builds a client that reports every successful answer of the API server to `health`.
///
/// Without that, a watch resumed after a failure on a quiet node would bring no event for
/// minutes, and `up` would stay 0 although everything works again.
fn client(config: kube::Config, health: Health) -> Result<Client, PodWatchError> {
    let observe = tower::util::MapResponseLayer::new(move |response: http::Response<_>| {
        if response.status().is_success() {
            health.answered();
        }
        response
    });
    let builder = ClientBuilder::try_from(config).map_err(PodWatchError::Client)?;
    Ok(builder.with_layer(&observe).build())
}

/// Exponential backoff with jitter for the watch's retries; reset by kube on every successful
/// event.
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        let max = max.max(min);
        Backoff {
            min,
            max,
            next: min,
        }
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let current = self.next;
        self.next = (current * 2).min(self.max);
        // Between half and all of the delay, so that the agents of every node do not retry in
        // step after an API server restart.
        let half = current / 2;
        let jitter = half.mul_f64(rand::random::<f64>());
        Some(half + jitter)
    }
}

impl kube::runtime::utils::Backoff for Backoff {
    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Watches the node's pods into `index` until the task is dropped. Returns early only when
/// there is no Kubernetes configuration at all (a host that is not a node), or when the
/// configuration is unusable; both are logged.
pub async fn run(config: PodWatchConfig, index: PodIndex, metrics: Arc<Metrics>) {
    // kube's TLS uses rustls' process-wide provider; the agent builds with ring only, so make
    // that explicit rather than rely on rustls choosing it (an error only means one is set).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client_config = match client_config(config.kubeconfig.as_deref()).await {
        Ok(client_config) => client_config,
        Err(error @ PodWatchError::NoConfig(_)) => {
            warn!(
                node = %config.node_name,
                error = %error_chain(&error),
                "a Kubernetes node name is set but no API configuration was found; \
                 pod metadata from the API server is off"
            );
            return;
        }
        Err(error) => {
            let metrics = k8s_metrics(&metrics);
            if let Some(metrics) = metrics {
                metrics.errors.inc();
            }
            tracing::error!(error = %error_chain(&error), "cannot watch the node's pods");
            return;
        }
    };
    let Some(k8s_metrics) = k8s_metrics(&metrics) else {
        return;
    };
    let server = client_config.cluster_url.to_string();
    let health = Health::new(k8s_metrics);
    let client = match client(client_config, health.clone()) {
        Ok(client) => client,
        Err(error) => {
            health.metrics.errors.inc();
            tracing::error!(error = %error_chain(&error), "cannot watch the node's pods");
            return;
        }
    };
    info!(node = %config.node_name, %server, "watching the node's pods on the API server");
    watch_pods(client, &config, &index, &health).await;
}

fn k8s_metrics(metrics: &Metrics) -> Option<K8sWatchMetrics> {
    match metrics.k8s_watch() {
        Ok(metrics) => Some(metrics),
        Err(error) => {
            tracing::error!(%error, "cannot register the Kubernetes watch metrics");
            None
        }
    }
}

/// `error` and its sources, `: `-separated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // Some errors repeat their source in their own message.
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The watch loop proper, for `run` and for tests that bring their own client.
async fn watch_pods(client: Client, config: &PodWatchConfig, index: &PodIndex, health: &Health) {
    let api: Api<Pod> = Api::all(client);
    let selector = format!("spec.nodeName={}", config.node_name);
    // Any-resourceVersion lists are served from the API server's watch cache instead of etcd,
    // which is what a DaemonSet's thousand simultaneous relists after an API server restart
    // need; the watch that follows brings whatever the cache was behind on.
    let mut watch_config = watcher::Config::default().fields(&selector).any_semantic();
    // One page: a node has a few hundred pods at most, and with a page size kube leaves out
    // `resourceVersion=0`, which would send every list to etcd.
    watch_config.page_size = None;
    let stream =
        watcher(api, watch_config).backoff(Backoff::new(config.min_backoff, config.max_backoff));
    let mut stream = std::pin::pin!(stream);
    let mut state = WatchState::default();
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => state.handle(event, index, health),
            // 410 Gone is the protocol's way to say "relist": the watcher does, and nothing is
            // wrong with the API server.
            Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                debug!(message = %status.message, "pod watch expired; relisting");
            }
            Err(error) => health.failed(&error),
        }
    }
}

/// What the loop keeps between events.
#[derive(Default)]
struct WatchState {
    /// Pods of a list in progress, applied when it completes.
    listing: Option<Vec<PodSnapshot>>,
    synced_once: bool,
    warned_full: bool,
}

impl WatchState {
    fn handle(&mut self, event: watcher::Event<Pod>, index: &PodIndex, health: &Health) {
        match event {
            watcher::Event::Init => self.listing = Some(Vec::new()),
            watcher::Event::InitApply(pod) => {
                if let Some(snapshot) = PodSnapshot::from_pod(&pod) {
                    self.listing.get_or_insert_default().push(snapshot);
                }
            }
            watcher::Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let refused = index.replace_all(listed);
                if refused > 0 {
                    self.warn_full(refused);
                }
                let pods = index.pod_count();
                health.synced(pods);
                if !self.synced_once {
                    self.synced_once = true;
                    info!(
                        pods,
                        containers = index.container_count(),
                        "pod metadata synced from the API server"
                    );
                } else {
                    debug!(pods, "pods relisted");
                }
            }
            watcher::Event::Apply(pod) => {
                if let Some(snapshot) = PodSnapshot::from_pod(&pod)
                    && index.apply(snapshot) == Applied::Full
                {
                    self.warn_full(1);
                }
                health.synced(index.pod_count());
            }
            watcher::Event::Delete(pod) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    index.delete(uid);
                }
                health.synced(index.pod_count());
            }
        }
    }

    fn warn_full(&mut self, refused: usize) {
        if !self.warned_full {
            self.warned_full = true;
            warn!(
                refused,
                "the pod metadata cache is full; pods beyond it lack API metadata"
            );
        }
    }
}

#[cfg(test)]
mod tests;
