//! The delivery section of `vigil run --config FILE`: sinks, spool and heartbeat, parsed and
//! validated before the agent touches the kernel.
//!
//! Every sink is one YAML mapping with a `type` and the options of that type. The mapping is
//! read into one struct that knows every option of every type, so a misspelt key is refused
//! with its line and column; options that do not apply to the sink's type are refused too.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Deserializer, de};

use super::{
    format::Format,
    spool::{FsyncPolicy, FullPolicy},
    syslog::SyslogOptions,
    tls::TlsOptions,
};
use crate::rules::loader::Priority;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// The YAML does not fit the schema (unknown key, wrong type, bad value).
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A sink's options contradict each other or its type.
    #[error("{path}: sinks[{index}] ({name}): {message}")]
    Sink {
        /// The file.
        path: PathBuf,
        /// Position of the sink in `sinks`.
        index: usize,
        /// The sink's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A setting outside `sinks` is wrong.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The delivery configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryConfig {
    /// Where alerts go; never empty.
    pub sinks: Vec<SinkConfig>,
    /// Directory of the per-sink spools and the agent's state (sequence, last heartbeat).
    /// Without it queues live in memory only and a restart loses what was undelivered.
    pub spool_dir: Option<PathBuf>,
    /// When spooled records are forced to disk.
    pub fsync: FsyncPolicy,
    /// How often a heartbeat record is sent to every sink; `None` turns heartbeats off.
    pub heartbeat_interval: Option<Duration>,
    /// How long shutdown waits for the sinks to deliver what is queued.
    pub drain_timeout: Duration,
    /// Egress allowlist files or directories (loaded before those given with `--egress`).
    pub egress: Vec<PathBuf>,
}

/// One sink.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkConfig {
    /// Unique name, used in metrics, logs and the spool directory.
    pub name: String,
    /// Rendering of each record.
    pub format: Format,
    /// Which alerts the sink receives (agent heartbeats and health records always pass).
    pub filter: SinkFilter,
    /// Queue bounds and what happens when they are reached.
    pub queue: QueueConfig,
    /// Retry backoff.
    pub retry: RetryConfig,
    /// Batching.
    pub batch: BatchConfig,
    /// The transport and its options.
    pub kind: SinkKind,
}

/// Which alerts a sink receives.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SinkFilter {
    /// Only alerts at least this severe.
    pub min_priority: Option<Priority>,
    /// Only these rules (exact names), when not empty.
    pub rules: Vec<String>,
    /// Only alerts carrying at least one of these tags, when not empty.
    pub tags: Vec<String>,
}

/// Queue bounds of a sink.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
    /// Most bytes kept on disk (spool) for the sink.
    pub max_bytes: u64,
    /// Most records kept in memory when there is no spool.
    pub max_records: usize,
    /// What to drop when full; every drop is counted and reported by an alert.
    pub when_full: FullPolicy,
}

/// Retry backoff of a sink: exponential with full jitter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryConfig {
    /// First delay.
    pub initial_backoff: Duration,
    /// Largest delay.
    pub max_backoff: Duration,
    /// After failing this long, the sink is reported as failing by an alert to the others.
    pub alert_after: Duration,
}

/// Batching of a sink.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchConfig {
    /// Most records in one request.
    pub max_records: usize,
    /// Most payload bytes in one request (a single larger record is still sent alone).
    pub max_bytes: usize,
    /// How long to wait for a batch to fill once the first record is there.
    pub max_wait: Duration,
}

/// The transport of a sink.
#[derive(Clone, Debug, PartialEq)]
pub enum SinkKind {
    /// Standard output, one record a line.
    Stdout,
    /// A local file, one record a line.
    File(FileOptions),
    /// HTTP(S) POST.
    Webhook(WebhookOptions),
    /// RFC 5424 syslog.
    Syslog(SyslogOptions),
}

impl SinkKind {
    /// The `type` as written in the configuration.
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkKind::Stdout => "stdout",
            SinkKind::File(_) => "file",
            SinkKind::Webhook(_) => "webhook",
            SinkKind::Syslog(_) => "syslog",
        }
    }
}

/// Options of a file sink.
#[derive(Clone, Debug, PartialEq)]
pub struct FileOptions {
    /// The file alerts are appended to (created 0600).
    pub path: PathBuf,
    /// Rotate when the file reaches this size.
    pub rotate_bytes: Option<u64>,
    /// Rotate when the file is this old.
    pub rotate_age: Option<Duration>,
    /// Rotated files kept (`path.1` newest ... `path.N`).
    pub keep: usize,
}

/// Shape of a webhook request body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookPreset {
    /// One rendered record per line (`application/x-ndjson` for JSON formats).
    #[default]
    Lines,
    /// Splunk HTTP Event Collector: one `{"time", "host", "source", "sourcetype", "event"}`
    /// object per record; the token goes in `Authorization: Splunk <token>`.
    SplunkHec,
    /// Elasticsearch `_bulk`: a `create` action with the record id as `_id` (retries never
    /// duplicate), then the document.
    Elasticsearch,
}

/// Options of a webhook sink.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookOptions {
    /// Where to POST.
    pub url: reqwest::Url,
    /// Body shape.
    pub preset: WebhookPreset,
    /// Extra headers.
    pub headers: BTreeMap<String, String>,
    /// Bearer token (Splunk token for `splunk_hec`).
    pub bearer_token: Option<String>,
    /// Key of the HMAC-SHA256 signature of each body, sent in `signature_header`.
    pub hmac_secret: Option<String>,
    /// Header of the signature (`sha256=<hex>`).
    pub signature_header: String,
    /// Compress bodies with gzip.
    pub gzip: bool,
    /// Per-request timeout.
    pub timeout: Duration,
    /// TLS settings for https.
    pub tls: TlsOptions,
    /// Index for `elasticsearch` and `splunk_hec`.
    pub index: Option<String>,
    /// Splunk sourcetype.
    pub sourcetype: Option<String>,
}

/// Defaults.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);
const DEFAULT_DRAIN: Duration = Duration::from_secs(5);
const DEFAULT_QUEUE_BYTES: u64 = 256 * 1024 * 1024;
const DEFAULT_QUEUE_RECORDS: usize = 10_000;

impl DeliveryConfig {
    /// What `vigil run` does without `--config`: Falco JSON lines on stdout, no spool.
    pub fn stdout_only() -> DeliveryConfig {
        DeliveryConfig {
            sinks: vec![SinkConfig::stdout()],
            spool_dir: None,
            fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
            heartbeat_interval: Some(DEFAULT_HEARTBEAT),
            drain_timeout: DEFAULT_DRAIN,
            egress: Vec::new(),
        }
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<DeliveryConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = DeliveryConfig::parse(&text, path)?;
        // Files the configuration names are relative to the configuration, not to wherever
        // the agent happens to start.
        if let Some(dir) = path.parent() {
            for file in &mut config.egress {
                if file.is_relative() {
                    *file = dir.join(&*file);
                }
            }
        }
        Ok(config)
    }

    /// Parses and validates configuration text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<DeliveryConfig, ConfigError> {
        DeliveryConfig::parse_file(text, path).map(|(delivery, _)| delivery)
    }

    /// Parses a whole configuration file: the delivery section, and the agent's settings as
    /// written (validated by [`crate::config`]).
    pub(crate) fn parse_file(
        text: &str,
        path: &Path,
    ) -> Result<(DeliveryConfig, crate::config::RawSettings), ConfigError> {
        let mut raw: RawConfig = serde_norway::from_str(text).map_err(|error| {
            let (line, column) = error
                .location()
                .map_or((0, 0), |at| (at.line(), at.column()));
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: strip_location(&error.to_string()),
            }
        })?;
        let settings = crate::config::RawSettings {
            agent: raw.agent.take(),
            rules: raw.rules.take(),
            egress_pin: raw.egress_pin.take(),
        };
        Ok((raw.validate(path)?, settings))
    }
}

impl SinkConfig {
    /// Falco JSON on stdout, every alert, in-memory queue.
    pub fn stdout() -> SinkConfig {
        SinkConfig {
            name: "stdout".into(),
            format: Format::Falco,
            filter: SinkFilter::default(),
            queue: QueueConfig {
                max_bytes: DEFAULT_QUEUE_BYTES,
                max_records: DEFAULT_QUEUE_RECORDS,
                when_full: FullPolicy::DropNewest,
            },
            retry: RetryConfig::default(),
            batch: BatchConfig {
                max_records: 512,
                max_bytes: 1024 * 1024,
                max_wait: Duration::ZERO,
            },
            kind: SinkKind::Stdout,
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            alert_after: Duration::from_secs(30),
        }
    }
}

/// serde_norway appends " at line L column C" to its messages; the position is reported in
/// front instead, like rule errors.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// The agent's own settings (see [`crate::config`]); read here so that one parse of the
    /// file reports every misspelt key with its line and column.
    #[serde(default)]
    agent: Option<crate::config::RawAgent>,
    #[serde(default)]
    rules: Option<crate::config::RawRules>,
    #[serde(default)]
    egress_pin: Option<bool>,
    #[serde(default)]
    sinks: Option<Vec<RawSink>>,
    #[serde(default)]
    spool_dir: Option<PathBuf>,
    #[serde(default)]
    fsync: Option<RawFsync>,
    /// `0s` or `off` turns heartbeats off.
    #[serde(default, deserialize_with = "optional_duration_or_off")]
    heartbeat_interval: Option<Option<Duration>>,
    #[serde(default, deserialize_with = "optional_duration")]
    drain_timeout: Option<Duration>,
    #[serde(default)]
    egress: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSink {
    #[serde(rename = "type")]
    kind: RawKind,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    format: Option<Format>,
    #[serde(default)]
    min_priority: Option<RawPriority>,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    queue: Option<RawQueue>,
    #[serde(default)]
    retry: Option<RawRetry>,
    #[serde(default)]
    batch: Option<RawBatch>,
    // file
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default)]
    rotate: Option<RawRotate>,
    // webhook
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    preset: Option<WebhookPreset>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    bearer_token: Option<String>,
    #[serde(default)]
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    hmac_secret: Option<String>,
    #[serde(default)]
    hmac_secret_file: Option<PathBuf>,
    #[serde(default)]
    signature_header: Option<String>,
    #[serde(default)]
    gzip: Option<bool>,
    #[serde(default)]
    index: Option<String>,
    #[serde(default)]
    sourcetype: Option<String>,
    // webhook and syslog
    #[serde(default, deserialize_with = "optional_duration")]
    timeout: Option<Duration>,
    #[serde(default)]
    tls: Option<TlsOptions>,
    // syslog
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    facility: Option<serde_norway::Value>,
    #[serde(default)]
    app_name: Option<String>,
    #[serde(default)]
    server_name: Option<String>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Stdout,
    File,
    Webhook,
    Syslog,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    #[serde(default, deserialize_with = "optional_size")]
    max_bytes: Option<u64>,
    #[serde(default)]
    max_records: Option<usize>,
    #[serde(default)]
    when_full: Option<RawFullPolicy>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawFullPolicy {
    DropNewest,
    DropOldest,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    #[serde(default, deserialize_with = "optional_duration")]
    initial_backoff: Option<Duration>,
    #[serde(default, deserialize_with = "optional_duration")]
    max_backoff: Option<Duration>,
    #[serde(default, deserialize_with = "optional_duration")]
    alert_after: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    #[serde(default)]
    max_records: Option<usize>,
    #[serde(default, deserialize_with = "optional_size")]
    max_bytes: Option<u64>,
    #[serde(default, deserialize_with = "optional_duration")]
    max_wait: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRotate {
    #[serde(default, deserialize_with = "optional_size")]
    max_bytes: Option<u64>,
    #[serde(default, deserialize_with = "optional_duration")]
    max_age: Option<Duration>,
    #[serde(default)]
    keep: Option<usize>,
}

/// `always`, `never`, or an interval such as `1s`.
struct RawFsync(FsyncPolicy);

impl<'de> Deserialize<'de> for RawFsync {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_scalar(
            deserializer,
            "`always`, `never` or an interval",
            |text| {
                match text {
            "always" => Ok(RawFsync(FsyncPolicy::Always)),
            "never" => Ok(RawFsync(FsyncPolicy::Never)),
            other => parse_duration(other)
                .filter(|d| !d.is_zero())
                .map(|d| RawFsync(FsyncPolicy::Interval(d)))
                .ok_or_else(|| {
                    format!(
                        "fsync must be `always`, `never` or an interval such as `1s`, not {other:?}"
                    )
                }),
        }
            },
        )
    }
}

/// A priority name, case-insensitive (`warning`, `WARNING`, `info`).
pub(crate) struct RawPriority(pub(crate) Priority);

impl<'de> Deserialize<'de> for RawPriority {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_scalar(deserializer, "a priority", |text| {
            text.parse::<Priority>()
                .map(RawPriority)
                .map_err(|error| error.to_string())
        })
    }
}

/// Parses a scalar with `parse` while the deserializer is on it, so its errors carry the
/// scalar's line and column.
fn parse_scalar<'de, D: Deserializer<'de>, T>(
    deserializer: D,
    expecting: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error> {
    struct ScalarVisitor<F> {
        expecting: &'static str,
        parse: F,
    }
    impl<T, F: FnOnce(&str) -> Result<T, String>> de::Visitor<'_> for ScalarVisitor<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.parse)(v).map_err(E::custom)
        }
    }
    deserializer.deserialize_str(ScalarVisitor { expecting, parse })
}

fn parse_duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim()).ok()
}

fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    parse_scalar(deserializer, "a duration", |text| {
        parse_duration(text)
            .ok_or_else(|| format!("{text:?} is not a duration (examples: 500ms, 30s, 5m, 1h)"))
    })
    .map(Some)
}

fn optional_duration_or_off<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<Duration>>, D::Error> {
    parse_scalar(deserializer, "a duration or `off`", |text| {
        if text == "off" {
            return Ok(None);
        }
        match parse_duration(text) {
            Some(d) if d.is_zero() => Ok(None),
            Some(d) => Ok(Some(d)),
            None => Err(format!(
                "{text:?} is not a duration (examples: 10s, 1m) or `off`"
            )),
        }
    })
    .map(Some)
}

/// A byte size: a number, or a number with a unit (`64KiB`, `256MiB`, `1GiB`, `10MB`).
fn optional_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    struct SizeVisitor;
    impl de::Visitor<'_> for SizeVisitor {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size in bytes such as 1048576, 64KiB, 256MiB or 1GiB")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom("a size cannot be negative"))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            parse_size(v).ok_or_else(|| {
                E::custom(format!(
                    "{v:?} is not a size (examples: 1048576, 64KiB, 256MiB, 1GiB)"
                ))
            })
        }
    }
    deserializer.deserialize_any(SizeVisitor).map(Some)
}

fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

impl RawConfig {
    fn validate(self, path: &Path) -> Result<DeliveryConfig, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        // Without `sinks`, alerts go to stdout as without a configuration file.
        let Some(raw_sinks) = self.sinks else {
            let defaults = DeliveryConfig::stdout_only();
            return Ok(DeliveryConfig {
                spool_dir: self.spool_dir,
                fsync: self.fsync.map_or(defaults.fsync, |f| f.0),
                heartbeat_interval: self
                    .heartbeat_interval
                    .unwrap_or(defaults.heartbeat_interval),
                drain_timeout: self.drain_timeout.unwrap_or(defaults.drain_timeout),
                egress: self.egress,
                ..defaults
            });
        };
        if raw_sinks.is_empty() {
            return Err(invalid("`sinks` is empty: name at least one sink".into()));
        }
        let mut sinks: Vec<SinkConfig> = Vec::with_capacity(raw_sinks.len());
        for (index, raw) in raw_sinks.into_iter().enumerate() {
            let sink = raw.validate(index, path)?;
            if sinks.iter().any(|other| other.name == sink.name) {
                return Err(ConfigError::Sink {
                    path: path.to_path_buf(),
                    index,
                    name: sink.name,
                    message: "another sink has this name; give each sink a unique `name`".into(),
                });
            }
            sinks.push(sink);
        }
        if sinks
            .iter()
            .filter(|s| matches!(s.kind, SinkKind::Stdout))
            .count()
            > 1
        {
            return Err(invalid(
                "more than one stdout sink: their lines would interleave".into(),
            ));
        }
        let drain_timeout = self.drain_timeout.unwrap_or(DEFAULT_DRAIN);
        Ok(DeliveryConfig {
            sinks,
            spool_dir: self.spool_dir,
            fsync: self
                .fsync
                .map_or(FsyncPolicy::Interval(Duration::from_secs(1)), |f| f.0),
            heartbeat_interval: self.heartbeat_interval.unwrap_or(Some(DEFAULT_HEARTBEAT)),
            drain_timeout,
            egress: self.egress,
        })
    }
}

impl RawSink {
    fn validate(self, index: usize, path: &Path) -> Result<SinkConfig, ConfigError> {
        let type_name = match self.kind {
            RawKind::Stdout => "stdout",
            RawKind::File => "file",
            RawKind::Webhook => "webhook",
            RawKind::Syslog => "syslog",
        };
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("{type_name}-{index}"));
        let fail = |message: String| ConfigError::Sink {
            path: path.to_path_buf(),
            index,
            name: name.clone(),
            message,
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || name.starts_with('.')
        {
            return Err(fail(
                "a sink name uses letters, digits, `-`, `_` and `.` (it names a spool directory)"
                    .into(),
            ));
        }
        self.refuse_foreign_options(type_name).map_err(&fail)?;

        let queue = match &self.queue {
            None => QueueConfig {
                max_bytes: DEFAULT_QUEUE_BYTES,
                max_records: DEFAULT_QUEUE_RECORDS,
                when_full: FullPolicy::DropNewest,
            },
            Some(q) => QueueConfig {
                max_bytes: q.max_bytes.unwrap_or(DEFAULT_QUEUE_BYTES),
                max_records: q.max_records.unwrap_or(DEFAULT_QUEUE_RECORDS),
                when_full: match q.when_full {
                    None | Some(RawFullPolicy::DropNewest) => FullPolicy::DropNewest,
                    Some(RawFullPolicy::DropOldest) => FullPolicy::DropOldest,
                },
            },
        };
        if queue.max_records == 0 || queue.max_bytes < 64 * 1024 {
            return Err(fail(
                "queue.max_records must be at least 1 and queue.max_bytes at least 64KiB".into(),
            ));
        }
        let defaults = RetryConfig::default();
        let retry = match &self.retry {
            None => defaults,
            Some(r) => RetryConfig {
                initial_backoff: r.initial_backoff.unwrap_or(defaults.initial_backoff),
                max_backoff: r.max_backoff.unwrap_or(defaults.max_backoff),
                alert_after: r.alert_after.unwrap_or(defaults.alert_after),
            },
        };
        if retry.initial_backoff.is_zero() || retry.max_backoff < retry.initial_backoff {
            return Err(fail(
                "retry.initial_backoff must be above 0 and at most retry.max_backoff".into(),
            ));
        }
        let (default_records, default_wait) = match self.kind {
            RawKind::Webhook => (500, Duration::from_secs(1)),
            RawKind::Syslog => (100, Duration::ZERO),
            RawKind::Stdout | RawKind::File => (512, Duration::ZERO),
        };
        let batch = BatchConfig {
            max_records: self
                .batch
                .as_ref()
                .and_then(|b| b.max_records)
                .unwrap_or(default_records),
            max_bytes: self
                .batch
                .as_ref()
                .and_then(|b| b.max_bytes)
                .map_or(Ok(1024 * 1024), usize::try_from)
                .map_err(|_| fail("batch.max_bytes is too large".into()))?,
            max_wait: self
                .batch
                .as_ref()
                .and_then(|b| b.max_wait)
                .unwrap_or(default_wait),
        };
        if batch.max_records == 0 || batch.max_bytes == 0 {
            return Err(fail(
                "batch.max_records and batch.max_bytes must be above 0".into(),
            ));
        }
        let filter = SinkFilter {
            min_priority: self.min_priority.as_ref().map(|p| p.0),
            rules: self.rules.clone(),
            tags: self.tags.clone(),
        };
        let format = self.format.unwrap_or(Format::Falco);
        let kind = self.transport(&fail)?;
        Ok(SinkConfig {
            name,
            format,
            filter,
            queue,
            retry,
            batch,
            kind,
        })
    }

    /// Options are accepted only by the types they belong to, so a `url` on a syslog sink is
    /// an error instead of being ignored.
    fn refuse_foreign_options(&self, type_name: &str) -> Result<(), String> {
        let present: [(&str, bool, &[&str]); 17] = [
            ("path", self.path.is_some(), &["file"]),
            ("rotate", self.rotate.is_some(), &["file"]),
            ("url", self.url.is_some(), &["webhook"]),
            ("preset", self.preset.is_some(), &["webhook"]),
            ("headers", self.headers.is_some(), &["webhook"]),
            ("bearer_token", self.bearer_token.is_some(), &["webhook"]),
            (
                "bearer_token_file",
                self.bearer_token_file.is_some(),
                &["webhook"],
            ),
            ("hmac_secret", self.hmac_secret.is_some(), &["webhook"]),
            (
                "hmac_secret_file",
                self.hmac_secret_file.is_some(),
                &["webhook"],
            ),
            (
                "signature_header",
                self.signature_header.is_some(),
                &["webhook"],
            ),
            ("gzip", self.gzip.is_some(), &["webhook"]),
            ("index", self.index.is_some(), &["webhook"]),
            ("sourcetype", self.sourcetype.is_some(), &["webhook"]),
            ("timeout", self.timeout.is_some(), &["webhook", "syslog"]),
            ("tls", self.tls.is_some(), &["webhook", "syslog"]),
            ("address", self.address.is_some(), &["syslog"]),
            (
                "facility/app_name/server_name",
                self.facility.is_some() || self.app_name.is_some() || self.server_name.is_some(),
                &["syslog"],
            ),
        ];
        for (key, set, types) in present {
            if set && !types.contains(&type_name) {
                return Err(format!(
                    "`{key}` does not apply to a {type_name} sink (it is an option of: {})",
                    types.join(", ")
                ));
            }
        }
        Ok(())
    }

    fn transport(&self, fail: &impl Fn(String) -> ConfigError) -> Result<SinkKind, ConfigError> {
        match self.kind {
            RawKind::Stdout => Ok(SinkKind::Stdout),
            RawKind::File => {
                let path = self
                    .path
                    .clone()
                    .ok_or_else(|| fail("a file sink needs `path`".into()))?;
                let rotate = self.rotate.as_ref();
                Ok(SinkKind::File(FileOptions {
                    path,
                    rotate_bytes: rotate.and_then(|r| r.max_bytes),
                    rotate_age: rotate.and_then(|r| r.max_age),
                    keep: rotate.and_then(|r| r.keep).unwrap_or(5),
                }))
            }
            RawKind::Webhook => self.webhook(fail).map(SinkKind::Webhook),
            RawKind::Syslog => {
                let address = self
                    .address
                    .clone()
                    .ok_or_else(|| fail("a syslog sink needs `address`".into()))?;
                // The syslog module owns its option names and defaults: rebuild its mapping.
                let mut mapping = serde_norway::Mapping::new();
                mapping.insert("address".into(), address.into());
                if let Some(facility) = &self.facility {
                    mapping.insert("facility".into(), facility.clone());
                }
                if let Some(app_name) = &self.app_name {
                    mapping.insert("app_name".into(), app_name.clone().into());
                }
                if let Some(server_name) = &self.server_name {
                    mapping.insert("server_name".into(), server_name.clone().into());
                }
                if let Some(timeout) = self.timeout {
                    mapping.insert(
                        "timeout".into(),
                        humantime::format_duration(timeout).to_string().into(),
                    );
                }
                let mut options: SyslogOptions =
                    serde_norway::from_value(serde_norway::Value::Mapping(mapping))
                        .map_err(|error| fail(strip_location(&error.to_string())))?;
                if let Some(tls) = &self.tls {
                    options.tls = tls.clone();
                }
                super::syslog::SyslogTransport::new(&options)
                    .map_err(|error| fail(error.to_string()))?;
                Ok(SinkKind::Syslog(options))
            }
        }
    }

    fn webhook(
        &self,
        fail: &impl Fn(String) -> ConfigError,
    ) -> Result<WebhookOptions, ConfigError> {
        let url_text = self
            .url
            .as_deref()
            .ok_or_else(|| fail("a webhook sink needs `url`".into()))?;
        let url = reqwest::Url::parse(url_text)
            .map_err(|error| fail(format!("url {url_text:?}: {error}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(fail(format!(
                "url {url_text:?}: only http and https are supported"
            )));
        }
        let secret =
            |inline: &Option<String>, file: &Option<PathBuf>, key: &str| match (inline, file) {
                (Some(_), Some(_)) => Err(fail(format!("give `{key}` or `{key}_file`, not both"))),
                (Some(value), None) => Ok(Some(value.clone())),
                (None, Some(file)) => std::fs::read_to_string(file)
                    .map(|text| Some(text.trim().to_string()))
                    .map_err(|error| fail(format!("{key}_file {}: {error}", file.display()))),
                (None, None) => Ok(None),
            };
        let bearer_token = secret(&self.bearer_token, &self.bearer_token_file, "bearer_token")?;
        let hmac_secret = secret(&self.hmac_secret, &self.hmac_secret_file, "hmac_secret")?;
        if hmac_secret.as_deref().is_some_and(str::is_empty) {
            return Err(fail("hmac_secret is empty".into()));
        }
        let preset = self.preset.unwrap_or_default();
        let format = self.format.unwrap_or(Format::Falco);
        if preset == WebhookPreset::Elasticsearch && !format.is_json() {
            return Err(fail(
                "the elasticsearch preset needs a JSON format (falco, ecs or ocsf)".into(),
            ));
        }
        if preset == WebhookPreset::Elasticsearch && self.index.is_none() {
            return Err(fail("the elasticsearch preset needs `index`".into()));
        }
        let headers = self.headers.clone().unwrap_or_default();
        for (name, value) in &headers {
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| fail(format!("header name {name:?} is not valid")))?;
            reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| fail(format!("header {name:?} has a value HTTP cannot carry")))?;
        }
        let signature_header = self
            .signature_header
            .clone()
            .unwrap_or_else(|| "X-Vigil-Signature".into());
        reqwest::header::HeaderName::from_bytes(signature_header.as_bytes()).map_err(|_| {
            fail(format!(
                "signature_header {signature_header:?} is not valid"
            ))
        })?;
        let tls = self.tls.clone().unwrap_or_default();
        if url.scheme() == "https" {
            tls.client_config()
                .map_err(|error| fail(format!("tls: {error}")))?;
        } else if self.tls.is_some() {
            return Err(fail("`tls` is set but the url is not https".into()));
        }
        Ok(WebhookOptions {
            url,
            preset,
            headers,
            bearer_token,
            hmac_secret,
            signature_header,
            gzip: self.gzip.unwrap_or(false),
            timeout: self.timeout.unwrap_or(Duration::from_secs(10)),
            tls,
            index: self.index.clone(),
            sourcetype: self.sourcetype.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DeliveryConfig, ConfigError> {
        DeliveryConfig::parse(text, Path::new("vigil.yaml"))
    }

    #[test]
    fn parses_the_documented_example() {
        let config = parse(
            "sinks:\n\
             \x20 - type: webhook\n\
             \x20   url: https://siem.example/ingest\n\
             \x20   format: ecs\n\
             \x20   min_priority: warning\n\
             \x20 - type: syslog\n\
             \x20   address: tcp://127.0.0.1:6514\n\
             \x20   format: cef\n\
             spool_dir: /var/lib/vigil/spool\n\
             heartbeat_interval: 30s\n",
        )
        .unwrap();
        assert_eq!(config.sinks.len(), 2);
        assert_eq!(config.sinks[0].name, "webhook-0");
        assert_eq!(config.sinks[0].format, Format::Ecs);
        assert_eq!(config.sinks[0].filter.min_priority, Some(Priority::Warning));
        assert!(matches!(config.sinks[1].kind, SinkKind::Syslog(_)));
        assert_eq!(config.sinks[1].format, Format::Cef);
        assert_eq!(
            config.spool_dir,
            Some(PathBuf::from("/var/lib/vigil/spool"))
        );
        assert_eq!(config.heartbeat_interval, Some(Duration::from_secs(30)));
    }

    #[test]
    fn unknown_keys_name_line_and_column() {
        let error = parse("sinks:\n  - type: stdout\n    formatt: ecs\n").unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("vigil.yaml:3:5: "), "{text}");
        assert!(text.contains("formatt"), "{text}");
    }

    #[test]
    fn bad_values_name_their_position() {
        let error = parse("sinks:\n  - type: stdout\nheartbeat_interval: soon\n").unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("vigil.yaml:3:"), "{text}");
        assert!(text.contains("not a duration"), "{text}");
        let error = parse("sinks:\n  - type: carrier-pigeon\n").unwrap_err();
        assert!(error.to_string().starts_with("vigil.yaml:2:"), "{error}");
    }

    #[test]
    fn options_of_other_types_are_refused() {
        let error = parse(
            "sinks:\n  - type: syslog\n    address: udp://127.0.0.1:514\n    url: http://x/\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("sinks[0] (syslog-0)"), "{error}");
        assert!(
            error.contains("`url` does not apply to a syslog sink"),
            "{error}"
        );
    }

    #[test]
    fn required_options_and_unique_names() {
        let missing = parse("sinks:\n  - type: webhook\n")
            .unwrap_err()
            .to_string();
        assert!(missing.contains("needs `url`"), "{missing}");
        let twice = parse(
            "sinks:\n  - {type: file, name: a, path: /tmp/a}\n  - {type: file, name: a, path: /tmp/b}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(twice.contains("unique"), "{twice}");
        let empty = parse("sinks: []\n").unwrap_err().to_string();
        assert!(empty.contains("empty"), "{empty}");
    }

    #[test]
    fn webhook_options() {
        let config = parse(
            "sinks:\n\
             \x20 - type: webhook\n\
             \x20   url: http://127.0.0.1:8080/bulk\n\
             \x20   preset: elasticsearch\n\
             \x20   index: vigil-alerts\n\
             \x20   format: ecs\n\
             \x20   gzip: true\n\
             \x20   hmac_secret: s3cret\n\
             \x20   headers: {X-Tenant: blue}\n\
             \x20   batch: {max_records: 50, max_bytes: 64KiB, max_wait: 200ms}\n\
             \x20   queue: {max_bytes: 1GiB, when_full: drop_oldest}\n\
             \x20   retry: {initial_backoff: 100ms, max_backoff: 10s}\n",
        )
        .unwrap();
        let sink = &config.sinks[0];
        let SinkKind::Webhook(options) = &sink.kind else {
            panic!("webhook expected");
        };
        assert_eq!(options.preset, WebhookPreset::Elasticsearch);
        assert!(options.gzip);
        assert_eq!(options.hmac_secret.as_deref(), Some("s3cret"));
        assert_eq!(options.signature_header, "X-Vigil-Signature");
        assert_eq!(sink.batch.max_bytes, 64 * 1024);
        assert_eq!(sink.batch.max_wait, Duration::from_millis(200));
        assert_eq!(sink.queue.max_bytes, 1 << 30);
        assert_eq!(sink.queue.when_full, FullPolicy::DropOldest);
        assert_eq!(sink.retry.max_backoff, Duration::from_secs(10));

        let cef_bulk = parse(
            "sinks:\n  - {type: webhook, url: 'http://h/', preset: elasticsearch, index: i, format: cef}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(cef_bulk.contains("needs a JSON format"), "{cef_bulk}");
    }

    #[test]
    fn sizes_and_fsync() {
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("10MB"), Some(10_000_000));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("12 parsecs"), None);
        let config =
            parse("sinks:\n  - type: stdout\nfsync: always\nheartbeat_interval: off\n").unwrap();
        assert_eq!(config.fsync, FsyncPolicy::Always);
        assert_eq!(config.heartbeat_interval, None);
        let error = parse("sinks:\n  - type: stdout\nfsync: sometimes\n").unwrap_err();
        assert!(error.to_string().contains("fsync must be"), "{error}");
    }
}
