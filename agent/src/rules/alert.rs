//! Alerts in Falco's JSON output format, so existing Falco pipelines consume them unchanged.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

/// One rule match, serialised exactly like Falco's `json_output`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Alert {
    /// The host the agent runs on.
    pub hostname: Arc<str>,
    /// `<time>: <Priority> <rendered output>`.
    pub output: String,
    /// Every field the output references, with its value (`null` when missing).
    pub output_fields: Map<String, Value>,
    /// Falco's capitalisation: `Warning`, `Critical`, ...
    pub priority: &'static str,
    /// The rule name.
    pub rule: Arc<str>,
    /// Always `syscall` for now.
    pub source: &'static str,
    /// The rule's tags.
    pub tags: Arc<[String]>,
    /// RFC 3339 with nanoseconds, UTC.
    pub time: String,
}

/// This machine's name, for alerts: `NODE_NAME` when set (a Kubernetes node), else the hostname.
pub fn hostname() -> Arc<str> {
    // In a pod the host name is the pod's; a DaemonSet passes the node's name as NODE_NAME
    // (the downward API), which is what a SIEM needs to find the machine.
    let node = std::env::var("NODE_NAME")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty());
    node.or_else(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|name| name.into_string().ok())
    })
    .map_or_else(|| Arc::from("unknown"), Arc::from)
}
