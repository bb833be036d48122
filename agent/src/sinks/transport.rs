//! The transports a sink can use, behind one type the delivery worker drives.

use std::io::Write as _;

use super::{
    SendError,
    config::SinkKind,
    file::FileTransport,
    format::Format,
    record::Record,
    syslog::{SyslogConfigError, SyslogTransport},
    webhook::{WebhookError, WebhookTransport},
};

/// Why a transport could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The webhook client.
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    /// The syslog options.
    #[error(transparent)]
    Syslog(#[from] SyslogConfigError),
}

/// One sink's way out.
pub enum Transport {
    /// Lines on standard output.
    Stdout,
    /// Lines appended to a file.
    File(FileTransport),
    /// HTTP(S) POST.
    Webhook(Box<WebhookTransport>),
    /// RFC 5424 syslog.
    Syslog(Box<SyslogTransport>),
}

impl Transport {
    /// Builds the transport; nothing connects until the first delivery.
    pub fn new(kind: &SinkKind) -> Result<Transport, TransportError> {
        Ok(match kind {
            SinkKind::Stdout => Transport::Stdout,
            SinkKind::File(options) => Transport::File(FileTransport::new(options)),
            SinkKind::Webhook(options) => {
                Transport::Webhook(Box::new(WebhookTransport::new(options)?))
            }
            SinkKind::Syslog(options) => {
                Transport::Syslog(Box::new(SyslogTransport::new(options)?))
            }
        })
    }

    /// Where records go, for logs.
    pub fn describe(&self) -> String {
        match self {
            Transport::Stdout => "stdout".into(),
            Transport::File(file) => file.describe(),
            Transport::Webhook(webhook) => webhook.describe(),
            Transport::Syslog(syslog) => syslog.describe(),
        }
    }

    /// Delivers a batch, in order.
    pub async fn send(&mut self, batch: &[Record], format: Format) -> Result<(), SendError> {
        match self {
            Transport::Stdout => write_stdout(batch, format),
            Transport::File(file) => file.send(batch, format).await,
            Transport::Webhook(webhook) => webhook.send(batch, format).await,
            Transport::Syslog(syslog) => syslog.send(batch, format).await,
        }
    }
}

fn write_stdout(batch: &[Record], format: Format) -> Result<(), SendError> {
    let lines = format.render_lines(batch);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(lines.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|error| SendError::Retryable(format!("stdout: {error}")))
}
