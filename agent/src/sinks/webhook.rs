//! The webhook sink: batches POSTed over HTTP(S), optionally gzipped and HMAC-signed, as plain
//! lines, Splunk HEC events or an Elasticsearch `_bulk` request.
//!
//! Status codes decide what happens next: 2xx delivered; 400, 413 and 422 mean the batch itself
//! is bad, so the worker splits it to set the offending record aside; anything else (401/403
//! from a rotated token, 404 from a moved endpoint, 408, 429, 5xx) says nothing about the
//! records and is retried with backoff while the sink is reported as failing.

use std::{io::Write as _, sync::Arc, time::Duration};

use flate2::{Compression, write::GzEncoder};
use hmac::{Hmac, Mac as _};
use reqwest::{
    StatusCode,
    header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue},
};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{
    SendError,
    config::{WebhookOptions, WebhookPreset},
    format::Format,
    record::Record,
    tls::TlsError,
};

/// Why a webhook client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The TLS settings are unusable.
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
    /// A header cannot be sent.
    #[error("header {0:?} is not valid")]
    Header(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// POSTs batches to one URL.
pub struct WebhookTransport {
    client: reqwest::Client,
    options: WebhookOptions,
    headers: HeaderMap,
}

/// Most bytes of a response body quoted in an error.
const QUOTED_BODY: usize = 300;

impl WebhookTransport {
    /// Builds the client (TLS roots, client certificate, headers); does not connect.
    pub fn new(options: &WebhookOptions) -> Result<WebhookTransport, WebhookError> {
        let mut tls = if options.url.scheme() == "https" {
            options.tls.client_config()?
        } else {
            // Never used for plain http, but the client is built with one TLS stack.
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::from)?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
        };
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            // A redirected POST turns into a GET and loses the body: treat it as a failure.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let mut headers = HeaderMap::new();
        for (name, value) in &options.headers {
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| WebhookError::Header(name.clone()))?;
            let header_value =
                HeaderValue::from_str(value).map_err(|_| WebhookError::Header(name.clone()))?;
            headers.insert(header_name, header_value);
        }
        if let Some(token) = &options.bearer_token {
            let scheme = match options.preset {
                WebhookPreset::SplunkHec => "Splunk",
                _ => "Bearer",
            };
            let mut value = HeaderValue::from_str(&format!("{scheme} {token}"))
                .map_err(|_| WebhookError::Header("Authorization".into()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        Ok(WebhookTransport {
            client,
            options: options.clone(),
            headers,
        })
    }

    /// The URL, for logs.
    pub fn describe(&self) -> String {
        self.options.url.to_string()
    }

    /// POSTs one batch.
    pub async fn send(&mut self, batch: &[Record], format: Format) -> Result<(), SendError> {
        let (body, content_type) = self.body(batch, format);
        let mut request = self
            .client
            .post(self.options.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, content_type);
        let body = if self.options.gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
            gzip(&body).map_err(|e| SendError::Retryable(format!("gzip: {e}")))?
        } else {
            body
        };
        if let Some(secret) = &self.options.hmac_secret {
            request = request.header(
                self.options.signature_header.as_str(),
                format!("sha256={}", sign(secret.as_bytes(), &body)),
            );
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|error| SendError::Retryable(describe_error(&error)))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let message = format!("HTTP {status}: {}", quote(&text));
            return Err(match status {
                StatusCode::BAD_REQUEST
                | StatusCode::PAYLOAD_TOO_LARGE
                | StatusCode::UNPROCESSABLE_ENTITY => SendError::Rejected(message),
                _ => SendError::Retryable(message),
            });
        }
        if self.options.preset == WebhookPreset::Elasticsearch {
            return bulk_outcome(&text);
        }
        Ok(())
    }

    fn body(&self, batch: &[Record], format: Format) -> (Vec<u8>, &'static str) {
        let mut body = Vec::new();
        match self.options.preset {
            WebhookPreset::Lines => {
                body = format.render_lines(batch).into_bytes();
                let content_type = if format.is_json() {
                    "application/x-ndjson"
                } else {
                    "text/plain; charset=utf-8"
                };
                (body, content_type)
            }
            WebhookPreset::SplunkHec => {
                for record in batch {
                    let event = format
                        .to_json(record)
                        .unwrap_or_else(|| Value::String(format.render(record)));
                    let mut envelope = json!({
                        "time": record.time_unix_ns as f64 / 1e9,
                        "host": record.hostname,
                        "source": "vigil",
                        "sourcetype": self.options.sourcetype.clone().unwrap_or_else(|| {
                            if format.is_json() { "_json".into() } else { "cef".into() }
                        }),
                        "event": event,
                    });
                    if let (Some(index), Some(map)) =
                        (&self.options.index, envelope.as_object_mut())
                    {
                        map.insert("index".into(), Value::String(index.clone()));
                    }
                    body.extend_from_slice(envelope.to_string().as_bytes());
                    body.push(b'\n');
                }
                (body, "application/json")
            }
            WebhookPreset::Elasticsearch => {
                let index = self.options.index.clone().unwrap_or_default();
                for record in batch {
                    let action = json!({"create": {"_index": index, "_id": record.id}});
                    body.extend_from_slice(action.to_string().as_bytes());
                    body.push(b'\n');
                    body.extend_from_slice(format.render(record).as_bytes());
                    body.push(b'\n');
                }
                (body, "application/x-ndjson")
            }
        }
    }
}

/// Reads a `_bulk` response: 409 means the id is already indexed (an earlier attempt got
/// through), so it counts as delivered; 429 and 5xx items make the batch worth retrying; any
/// other failed item marks the batch as rejected so the worker isolates the record.
fn bulk_outcome(text: &str) -> Result<(), SendError> {
    let Ok(response) = serde_json::from_str::<Value>(text) else {
        return Err(SendError::Retryable(format!(
            "unreadable _bulk response: {}",
            quote(text)
        )));
    };
    if response.get("errors").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    let items = response
        .get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut rejected = None;
    for item in items {
        let Some(outcome) = item.as_object().and_then(|o| o.values().next()) else {
            continue;
        };
        let status = outcome.get("status").and_then(Value::as_u64).unwrap_or(0);
        let reason = outcome
            .get("error")
            .map(|e| quote(&e.to_string()))
            .unwrap_or_default();
        match status {
            200..=299 | 409 => {}
            429 | 500..=599 => {
                return Err(SendError::Retryable(format!(
                    "_bulk item status {status}: {reason}"
                )));
            }
            _ => rejected = Some(format!("_bulk item status {status}: {reason}")),
        }
    }
    match rejected {
        Some(message) => Err(SendError::Rejected(message)),
        None => Ok(()),
    }
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    encoder.write_all(body)?;
    encoder.finish()
}

/// HMAC-SHA256 of exactly the bytes sent (after compression), hex-encoded.
fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this never fails.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn quote(text: &str) -> String {
    let mut end = text.len().min(QUOTED_BODY);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim().to_string()
}

/// reqwest's top-level message hides the cause (refused, TLS verification, timeout).
fn describe_error(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_conflicts_are_delivered_and_bad_items_rejected() {
        assert!(bulk_outcome(r#"{"errors":false,"items":[]}"#).is_ok());
        let conflict = r#"{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":409,"error":{"type":"version_conflict_engine_exception"}}}]}"#;
        assert!(bulk_outcome(conflict).is_ok());
        let mapping = r#"{"errors":true,"items":[{"create":{"status":400,"error":{"type":"mapper_parsing_exception"}}}]}"#;
        assert!(matches!(
            bulk_outcome(mapping),
            Err(SendError::Rejected(m)) if m.contains("mapper_parsing_exception")
        ));
        let busy =
            r#"{"errors":true,"items":[{"create":{"status":400}},{"create":{"status":429}}]}"#;
        assert!(matches!(bulk_outcome(busy), Err(SendError::Retryable(_))));
        assert!(matches!(
            bulk_outcome("<html>"),
            Err(SendError::Retryable(_))
        ));
    }

    #[test]
    fn signs_with_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn quotes_response_bodies_within_bounds() {
        let long = "é".repeat(400);
        assert!(quote(&long).len() <= QUOTED_BODY);
    }
}
