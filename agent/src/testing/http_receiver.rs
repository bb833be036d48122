//! A real HTTP(S) receiver on loopback for delivery tests (unit and integration): records
//! every request and answers as the test tells it to (accept, fail with a status, reject
//! bodies containing a marker). Test support: it panics on setup failures.
#![allow(missing_docs)]

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::chaos::receiver::TlsListener;

/// How the receiver answers.
#[derive(Clone, Debug)]
pub enum Mode {
    /// 200 for everything.
    Accept,
    /// This status for everything.
    Fail(u16),
    /// 400 when the decoded body contains the text, else 200.
    RejectContaining(String),
}

/// One request as received, body already gunzipped.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub raw_body: Vec<u8>,
    pub body: String,
}

#[derive(Default)]
struct Inner {
    mode: Option<Mode>,
    requests: Vec<Received>,
}

/// The receiver; dropping it stops the server.
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Receiver {
    /// Plain HTTP on a free loopback port.
    pub async fn start(mode: Mode) -> Receiver {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Receiver::serve_on(tcp, None, mode)
    }

    /// HTTP on a given address (to come back on the same port after a stop).
    pub async fn start_at(addr: SocketAddr, mode: Mode) -> Receiver {
        let tcp = TcpListener::bind(addr).await.unwrap();
        Receiver::serve_on(tcp, None, mode)
    }

    /// HTTPS with the acceptor's certificate.
    pub async fn start_tls(acceptor: TlsAcceptor, mode: Mode) -> Receiver {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Receiver::serve_on(tcp, Some(acceptor), mode)
    }

    fn serve_on(tcp: TcpListener, tls: Option<TlsAcceptor>, mode: Mode) -> Receiver {
        let addr = tcp.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner {
            mode: Some(mode),
            requests: Vec::new(),
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&inner));
        let server = match tls {
            None => tokio::spawn(async move {
                let _ = axum::serve(tcp, app).await;
            }),
            Some(acceptor) => tokio::spawn(async move {
                let _ = axum::serve(TlsListener { tcp, acceptor }, app).await;
            }),
        };
        Receiver {
            addr,
            inner,
            server,
        }
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}/ingest", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.inner.lock().unwrap().mode = Some(mode);
    }

    pub fn requests(&self) -> Vec<Received> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Every non-empty body line of the accepted (2xx) requests so far.
    pub fn lines(&self) -> Vec<String> {
        self.requests()
            .iter()
            .flat_map(|r| r.body.lines().map(str::to_string).collect::<Vec<_>>())
            .filter(|line| !line.is_empty())
            .collect()
    }

    /// Waits until `done` holds for the accepted lines, up to `timeout`.
    pub async fn wait_lines(
        &self,
        timeout: Duration,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines: Vec<serde_json::Value> = self
                .lines()
                .iter()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect();
            if done(&lines) || Instant::now() >= deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    raw: Bytes,
) -> StatusCode {
    let body = if headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip")
    {
        let mut text = String::new();
        let mut decoder = flate2::read::GzDecoder::new(&raw[..]);
        std::io::Read::read_to_string(&mut decoder, &mut text).unwrap_or_default();
        text
    } else {
        String::from_utf8_lossy(&raw).into_owned()
    };
    let mut inner = inner.lock().unwrap();
    let status = match inner.mode.clone().unwrap_or(Mode::Accept) {
        Mode::Accept => 200,
        Mode::Fail(status) => status,
        Mode::RejectContaining(marker) if body.contains(&marker) => 400,
        Mode::RejectContaining(_) => 200,
    };
    if status == 200 {
        inner.requests.push(Received {
            headers,
            raw_body: raw.to_vec(),
            body,
        });
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
