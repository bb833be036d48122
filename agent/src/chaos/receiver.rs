//! Where `vigil chaos` receives the alerts it measures: webhook endpoints on loopback (plain
//! HTTP, and HTTPS with a certificate a fault can swap) that timestamp every Falco-format alert
//! as it arrives.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    serve::Listener,
};
use rustls::ServerConfig;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

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
    /// Close every connection after its response, so each delivery makes a new TLS handshake
    /// and sees the certificate presented at that moment.
    close_connections: bool,
}

/// HTTPS connections; a client that refuses the certificate fails its handshake and the
/// listener goes on accepting.
pub(crate) struct TlsListener {
    pub(crate) tcp: TcpListener,
    pub(crate) acceptor: TlsAcceptor,
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

impl Drop for AlertReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl AlertReceiver {
    /// Listens on `addr` (port 0 for any free port).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<AlertReceiver> {
        AlertReceiver::serve(addr, None).await
    }

    /// Listens with HTTPS on a free loopback port, presenting what `tls` resolves.
    pub async fn bind_tls(tls: Arc<ServerConfig>) -> std::io::Result<AlertReceiver> {
        AlertReceiver::serve(SocketAddr::from(([127, 0, 0, 1], 0)), Some(tls)).await
    }

    async fn serve(
        addr: SocketAddr,
        tls: Option<Arc<ServerConfig>>,
    ) -> std::io::Result<AlertReceiver> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Shared {
            close_connections: tls.is_some(),
            ..Shared::default()
        });
        let app = Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            let served = match tls {
                None => axum::serve(listener, app).await,
                Some(tls) => {
                    let acceptor = TlsAcceptor::from(tls);
                    axum::serve(
                        TlsListener {
                            tcp: listener,
                            acceptor,
                        },
                        app,
                    )
                    .await
                }
            };
            if let Err(error) = served {
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
        let scheme = if self.state.close_connections {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}/alerts", self.addr)
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

async fn receive(State(state): State<Arc<Shared>>, body: Bytes) -> Response {
    let status = record(&state, &body);
    let mut response = status.into_response();
    if state.close_connections {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn record(state: &Shared, body: &[u8]) -> StatusCode {
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let arrived_unix_ns = now_unix_ns();
    let text = String::from_utf8_lossy(body);
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
