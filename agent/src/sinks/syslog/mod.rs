//! The syslog sink: RFC 5424 messages over UDP (RFC 5426), TCP (RFC 6587) and TLS (RFC 5425).
//!
//! Every record becomes one message:
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [vigil@32473 id="…" seq="…" rule="…" priority="…"] MSG
//! ```
//!
//! PRI is the configured [`Facility`] times 8 plus the record's severity; TIMESTAMP the event
//! time in UTC with microseconds; HOSTNAME the record's host; PROCID the agent's pid; MSGID
//! the record kind (`alert`, `heartbeat`, `agent_started`, `agent_health`); the structured
//! data ([`SD_ID`]) carries the record's id and sequence number, so receivers can
//! de-duplicate and detect gaps without parsing MSG, which is the record rendered in the
//! sink's format.
//!
//! TCP and TLS frame messages with octet counting (`LEN SP MSG`), which rsyslog, syslog-ng
//! and SIEM collectors accept. A batch goes out in one write and is flushed. Before each batch
//! the connection is checked, without blocking, for a close or reset by the receiver, and
//! replaced: a write into a connection the receiver has already closed still succeeds, so a
//! receiver restart would otherwise swallow the next batch. Syslog has no acknowledgements, so
//! a receiver that dies while a batch is in flight can still lose it; a failed batch is retried
//! whole, so records can arrive twice (de-duplicate on `id`).
//!
//! UDP sends one datagram per message, cut to [`MAX_DATAGRAM`] bytes. A refusal the kernel
//! reports (ICMP port unreachable) fails the batch, but one that arrives late or not at all
//! goes unnoticed: alerts sent while a receiver is down can be lost. Prefer TCP or TLS.

mod address;
mod message;
mod transport;

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use self::address::{Address, Protocol};
pub use self::{
    message::{MAX_DATAGRAM, MAX_SD_VALUE, SD_ID},
    transport::SyslogTransport,
};
use crate::sinks::tls::{TlsError, TlsOptions};

/// Settings of a syslog sink.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogOptions {
    /// The receiver: `udp://host:port`, `tcp://host:port` or `tls://host:port`. Without a port,
    /// UDP and TCP use 514 and TLS 6514; IPv6 addresses go in brackets (`tls://[::1]:6514`).
    /// A host name is resolved again at every connection.
    pub address: String,
    /// The facility every message is sent with.
    #[serde(default)]
    pub facility: Facility,
    /// The APP-NAME of every message: 1 to 48 printable US-ASCII characters without spaces.
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// Certificates for `tls://` addresses; the server's certificate is always verified,
    /// against the system's roots unless `ca_file` is set.
    #[serde(default)]
    pub tls: TlsOptions,
    /// The name the server's certificate must carry, when it differs from the host in
    /// `address` (connecting to an IP address, or through a tunnel). `tls://` only.
    #[serde(default)]
    pub server_name: Option<String>,
    /// How long connecting (with the TLS handshake) may take, and then how long writing one
    /// batch may take, before the attempt counts as failed; humantime syntax (`10s`, `1m`).
    #[serde(default = "default_timeout", deserialize_with = "deserialize_duration")]
    pub timeout: Duration,
}

impl SyslogOptions {
    /// Options for `address` with every other setting at its default.
    pub fn new(address: impl Into<String>) -> SyslogOptions {
        SyslogOptions {
            address: address.into(),
            facility: Facility::default(),
            app_name: default_app_name(),
            tls: TlsOptions::default(),
            server_name: None,
            timeout: default_timeout(),
        }
    }
}

fn default_app_name() -> String {
    "vigil".to_string()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn deserialize_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|error| {
        serde::de::Error::custom(format!(
            "invalid duration `{text}` ({error}); write it like `10s` or `1m 30s`"
        ))
    })
}

/// A syslog facility (RFC 5424 section 6.2.1), named as in syslog.conf.
///
/// The default is `auth` (4), "security/authorization messages": runtime security alerts are
/// exactly that, and SIEMs and relays commonly classify and route security events by this
/// facility. `authpriv` (10) exists for messages that must stay in root-only files on the
/// local host, which does not apply to events shipped to a SIEM; the `local0`..`local7`
/// facilities suit sites that reserve one per application.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    /// `kern` (0): kernel messages.
    Kern = 0,
    /// `user` (1): user-level messages.
    User = 1,
    /// `mail` (2): the mail system.
    Mail = 2,
    /// `daemon` (3): system daemons.
    Daemon = 3,
    /// `auth` (4): security/authorization messages; the default.
    #[default]
    Auth = 4,
    /// `syslog` (5): messages of the syslog daemon itself.
    Syslog = 5,
    /// `lpr` (6): the line printer subsystem.
    Lpr = 6,
    /// `news` (7): the network news subsystem.
    News = 7,
    /// `uucp` (8): the UUCP subsystem.
    Uucp = 8,
    /// `cron` (9): the clock daemon.
    Cron = 9,
    /// `authpriv` (10): security/authorization messages kept private to the host.
    Authpriv = 10,
    /// `ftp` (11): the FTP daemon.
    Ftp = 11,
    /// `local0` (16): reserved for local use.
    Local0 = 16,
    /// `local1` (17): reserved for local use.
    Local1 = 17,
    /// `local2` (18): reserved for local use.
    Local2 = 18,
    /// `local3` (19): reserved for local use.
    Local3 = 19,
    /// `local4` (20): reserved for local use.
    Local4 = 20,
    /// `local5` (21): reserved for local use.
    Local5 = 21,
    /// `local6` (22): reserved for local use.
    Local6 = 22,
    /// `local7` (23): reserved for local use.
    Local7 = 23,
}

impl Facility {
    /// The facility's number, 0 to 23.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Why syslog settings are invalid.
#[derive(Debug, thiserror::Error)]
pub enum SyslogConfigError {
    /// `address` could not be parsed.
    #[error("syslog address `{address}`: {reason}")]
    Address {
        /// The address as configured.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `app_name` is not a valid RFC 5424 APP-NAME.
    #[error(
        "syslog app_name `{app_name}`: expected 1 to 48 printable US-ASCII characters without \
         spaces"
    )]
    AppName {
        /// The name as configured.
        app_name: String,
    },
    /// `server_name` is neither a DNS name nor an IP address.
    #[error("syslog server_name `{server_name}`: not a valid DNS name or IP address")]
    ServerName {
        /// The name as configured (or the host of the address when none is configured).
        server_name: String,
    },
    /// A TLS setting was given for a `udp://` or `tcp://` address, where it would silently do
    /// nothing.
    #[error(
        "syslog {address}: `{setting}` applies to tls:// addresses only; use tls:// to encrypt"
    )]
    TlsOnly {
        /// The address as described.
        address: String,
        /// The setting that does not apply.
        setting: &'static str,
    },
    /// `timeout` is zero.
    #[error("syslog {address}: timeout must be greater than zero")]
    ZeroTimeout {
        /// The address as described.
        address: String,
    },
    /// The TLS settings could not be loaded.
    #[error("syslog {address}: {error}")]
    Tls {
        /// The address as described.
        address: String,
        /// What went wrong.
        error: TlsError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(json: &str) -> Result<SyslogOptions, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn deserialises_with_defaults() {
        let parsed = options(r#"{"address": "tcp://127.0.0.1:514"}"#).unwrap();
        assert_eq!(parsed, SyslogOptions::new("tcp://127.0.0.1:514"));
        assert_eq!(parsed.facility, Facility::Auth);
        assert_eq!(parsed.app_name, "vigil");
        assert_eq!(parsed.timeout, Duration::from_secs(10));
    }

    #[test]
    fn deserialises_every_field() {
        let parsed = options(
            r#"{"address": "tls://siem.example", "facility": "local3", "app_name": "edr",
                "tls": {"ca_file": "/etc/vigil/ca.pem"}, "server_name": "collector",
                "timeout": "1m 30s"}"#,
        )
        .unwrap();
        assert_eq!(parsed.facility, Facility::Local3);
        assert_eq!(parsed.app_name, "edr");
        assert_eq!(parsed.tls.ca_file, Some("/etc/vigil/ca.pem".into()));
        assert_eq!(parsed.server_name.as_deref(), Some("collector"));
        assert_eq!(parsed.timeout, Duration::from_secs(90));
    }

    #[test]
    fn rejects_unknown_fields_and_bad_durations() {
        let error = options(r#"{"address": "udp://h", "port": 514}"#).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `port`"),
            "{error}"
        );
        let error = options(r#"{"address": "udp://h", "timeout": "soon"}"#).unwrap_err();
        assert!(
            error.to_string().contains("invalid duration `soon`"),
            "{error}"
        );
    }

    #[test]
    fn facility_names_map_to_their_codes() {
        let names = [
            ("kern", 0),
            ("user", 1),
            ("mail", 2),
            ("daemon", 3),
            ("auth", 4),
            ("syslog", 5),
            ("lpr", 6),
            ("news", 7),
            ("uucp", 8),
            ("cron", 9),
            ("authpriv", 10),
            ("ftp", 11),
            ("local0", 16),
            ("local1", 17),
            ("local2", 18),
            ("local3", 19),
            ("local4", 20),
            ("local5", 21),
            ("local6", 22),
            ("local7", 23),
        ];
        for (name, code) in names {
            let facility: Facility = serde_json::from_str(&format!("\"{name}\"")).unwrap();
            assert_eq!(facility.code(), code, "{name}");
        }
        let error = serde_json::from_str::<Facility>("\"local8\"").unwrap_err();
        assert!(
            error.to_string().contains("unknown variant `local8`"),
            "{error}"
        );
    }
}
