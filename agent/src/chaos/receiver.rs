//! Where `vigil chaos` receives the alerts it measures: a webhook endpoint on loopback that
//! timestamps every Falco-format alert as it arrives.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{Router, body::Bytes, extract::State, http::StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::clock::now_unix_ns;

/// One alert as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// When it arrived, Unix nanoseconds.
    pub arrived_unix_ns: i64,
    /// When the event that raised it happened (the alert's `time`), Unix nanoseconds.
    pub event_unix_ns: Option<i64>,
    /// When the agent's rule engine raised it (`output_fields["vigil.detected_time"]`), Unix
    /// nanoseconds.
    pub detected_unix_ns: Option<i64>,
    /// The rule.
    pub rule: String,
    /// The alert as sent.
    pub alert: Value,
}

/// The receiving endpoint; dropping it stops the server.
pub struct AlertReceiver {
    addr: SocketAddr,
    state: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    alerts: Mutex<Vec<Received>>,
    /// While set, every request is answered 503 and nothing is recorded (a sink outage).
    down: AtomicBool,
}

impl Drop for AlertReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl AlertReceiver {
    /// Listens on `addr` (port 0 for any free port).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<AlertReceiver> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Shared::default());
        let app = Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the chaos alert receiver stopped");
            }
        });
        Ok(AlertReceiver {
            addr,
            state,
            server,
        })
    }

    /// The URL agents post to.
    pub fn url(&self) -> String {
        format!("http://{}/alerts", self.addr)
    }

    /// Every alert received so far.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state.alerts).clone()
    }

    /// Plays a sink outage (503 to everything) or ends it.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }
}

fn lock(alerts: &Mutex<Vec<Received>>) -> MutexGuard<'_, Vec<Received>> {
    alerts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unix_ns(time: &Value) -> Option<i64> {
    time.as_str()
        .and_then(|time| chrono::DateTime::parse_from_rfc3339(time).ok())
        .and_then(|time| time.timestamp_nanos_opt())
}

async fn receive(State(state): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let arrived_unix_ns = now_unix_ns();
    let text = String::from_utf8_lossy(&body);
    let mut parsed = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let Ok(alert) = serde_json::from_str::<Value>(line) else {
            return StatusCode::BAD_REQUEST;
        };
        let rule = alert["rule"].as_str().unwrap_or_default().to_string();
        let event_unix_ns = unix_ns(&alert["time"]);
        let detected_unix_ns = unix_ns(&alert["output_fields"]["vigil.detected_time"]);
        parsed.push(Received {
            arrived_unix_ns,
            event_unix_ns,
            detected_unix_ns,
            rule,
            alert,
        });
    }
    lock(&state.alerts).extend(parsed);
    StatusCode::OK
}
