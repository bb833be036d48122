//! The one configuration file of `vigil run` (`--config FILE`): the agent's settings, the
//! rules to load, the egress allowlists and alert delivery. Every setting here can also be
//! given by a flag or a `VIGIL_...` environment variable; the binary resolves them in the order
//! flag, environment, file, built-in default.
//!
//! The file is parsed once, with unknown keys refused at their line and column; the delivery
//! part is validated by [`crate::sinks::config`], the rest here.

use std::{
    net::SocketAddr,
    num::NonZeroUsize,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::{
    rules::loader::Priority,
    sinks::config::{ConfigError, DeliveryConfig, RawPriority},
};

/// A commented configuration with every setting at its default, as `vigil config default`
/// prints it.
pub const DEFAULT_CONFIG: &str = r#"# Vigil configuration (vigil run --config FILE). Every setting can also be given by a flag
# or an environment variable; a flag wins over the variable, which wins over this file.
# Relative paths are relative to this file.

agent:
  # /metrics, /healthz and /readyz (--metrics-addr, VIGIL_METRICS_ADDR).
  metrics_addr: 127.0.0.1:9376
  # Kernel-to-agent ring buffer, bytes, rounded up to a power of two (--ring-buffer-bytes,
  # VIGIL_RING_BUFFER_BYTES). Drops are counted and reported, never silent.
  ring_buffer_bytes: 16777216
  # Most processes kept in the process table (--max-processes, VIGIL_MAX_PROCESSES).
  max_processes: 65536
  # Also report the agent's own syscalls (--include-self, VIGIL_INCLUDE_SELF).
  include_self: false
  # Where the host's filesystem is mounted when the agent runs in a container, e.g. /host
  # (--host-root, VIGIL_HOST_ROOT).
  # host_root: /host

rules:
  # Rules files or directories of *.yaml, loaded in order (--rules, VIGIL_RULES, comma
  # separated).
  paths: [rules]
  # Only run rules of this priority or more severe (--min-priority, VIGIL_MIN_PRIORITY).
  min_priority: debug
  # Rules switched off or on by name or tag (--disable-rule, --disable-tag, --enable-rule,
  # --enable-tag; VIGIL_DISABLE_RULE and VIGIL_ENABLE_RULE take one name,
  # VIGIL_DISABLE_TAGS and VIGIL_ENABLE_TAGS a comma-separated list).
  disable_rules: []
  disable_tags: []
  enable_rules: []
  enable_tags: []
  # Start (and reload) with the valid rules even when some have errors
  # (--allow-rule-errors, VIGIL_ALLOW_RULE_ERRORS).
  allow_errors: false

# Egress allowlist files or directories (--egress adds more, VIGIL_EGRESS).
egress: []
# Keep the egress programs attached after the agent stops (--egress-pin, VIGIL_EGRESS_PIN).
egress_pin: false

# Where alerts go. Without sinks, alerts are printed on stdout as Falco JSON lines.
# sinks:
#   - type: webhook
#     url: https://siem.example/ingest
#     format: ecs
#     min_priority: warning
#   - type: syslog
#     address: tcp://siem.example:6514
#     format: cef
# Per-sink spools (and the agent's sequence state) live here; without it queues are in
# memory only (--spool-dir, VIGIL_SPOOL_DIR).
# spool_dir: /var/lib/vigil/spool
# When spooled records are forced to disk: always, never, or an interval.
fsync: 1s
# A heartbeat record to every sink this often; off turns heartbeats off
# (--heartbeat-interval, VIGIL_HEARTBEAT_INTERVAL).
heartbeat_interval: 30s
# On SIGTERM, how long the sinks get to deliver what is queued; the rest stays in the spool
# (--drain-timeout, VIGIL_DRAIN_TIMEOUT).
drain_timeout: 5s
"#;

/// The agent's settings as the file gives them; `None` where the file is silent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentSettings {
    /// Address of the metrics and health endpoint.
    pub metrics_addr: Option<SocketAddr>,
    /// Ring buffer size in bytes.
    pub ring_buffer_bytes: Option<u32>,
    /// Most processes kept in the process table.
    pub max_processes: Option<NonZeroUsize>,
    /// Whether the agent's own syscalls are reported.
    pub include_self: Option<bool>,
    /// Where the host's filesystem is mounted.
    pub host_root: Option<PathBuf>,
}

/// Which rules to run, as the file gives them; `None` or empty where the file is silent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleSettings {
    /// Rules files or directories.
    pub paths: Option<Vec<PathBuf>>,
    /// Least severe priority run.
    pub min_priority: Option<Priority>,
    /// Rules switched off by name.
    pub disable_rules: Vec<String>,
    /// Rules switched off by tag.
    pub disable_tags: Vec<String>,
    /// Rules switched on by name.
    pub enable_rules: Vec<String>,
    /// Rules switched on by tag.
    pub enable_tags: Vec<String>,
    /// Whether rules with errors are left out instead of refusing to start.
    pub allow_errors: Option<bool>,
}

/// A whole configuration file.
#[derive(Clone, Debug, PartialEq)]
pub struct FileConfig {
    /// The agent's settings.
    pub agent: AgentSettings,
    /// The rules.
    pub rules: RuleSettings,
    /// Whether egress programs stay pinned after the agent stops.
    pub egress_pin: Option<bool>,
    /// Sinks, spool, heartbeat, drain timeout and egress allowlist files.
    pub delivery: DeliveryConfig,
}

/// The `agent:` section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgent {
    #[serde(default)]
    metrics_addr: Option<SocketAddr>,
    #[serde(default)]
    ring_buffer_bytes: Option<u64>,
    #[serde(default)]
    max_processes: Option<usize>,
    #[serde(default)]
    include_self: Option<bool>,
    #[serde(default)]
    host_root: Option<PathBuf>,
}

/// The `rules:` section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRules {
    #[serde(default)]
    paths: Option<Vec<PathBuf>>,
    #[serde(default)]
    min_priority: Option<RawPriority>,
    #[serde(default)]
    disable_rules: Vec<String>,
    #[serde(default)]
    disable_tags: Vec<String>,
    #[serde(default)]
    enable_rules: Vec<String>,
    #[serde(default)]
    enable_tags: Vec<String>,
    #[serde(default)]
    allow_errors: Option<bool>,
}

/// The settings outside delivery, as parsed with it.
#[derive(Default)]
pub(crate) struct RawSettings {
    pub(crate) agent: Option<RawAgent>,
    pub(crate) rules: Option<RawRules>,
    pub(crate) egress_pin: Option<bool>,
}

/// Smallest ring buffer accepted: one page.
const MIN_RING_BYTES: u64 = 4096;
/// Largest ring buffer accepted (the kernel's limit for a BPF ring buffer is 4 GiB minus a
/// page; a gigabyte of locked kernel memory is already far beyond sense).
const MAX_RING_BYTES: u64 = 1 << 30;

impl FileConfig {
    /// Reads and validates a configuration file; relative paths in it are made relative to
    /// the file's directory.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = FileConfig::parse(&text, path)?;
        if let Some(dir) = path.parent() {
            let absolute = |file: &mut PathBuf| {
                if file.is_relative() {
                    *file = dir.join(&*file);
                }
            };
            config.delivery.egress.iter_mut().for_each(absolute);
            if let Some(paths) = &mut config.rules.paths {
                paths.iter_mut().for_each(absolute);
            }
            if let Some(root) = &mut config.agent.host_root {
                absolute(root);
            }
        }
        Ok(config)
    }

    /// Parses and validates configuration text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
        let (delivery, raw) = DeliveryConfig::parse_file(text, path)?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let agent = match raw.agent {
            None => AgentSettings::default(),
            Some(agent) => AgentSettings {
                metrics_addr: agent.metrics_addr,
                ring_buffer_bytes: agent
                    .ring_buffer_bytes
                    .map(|bytes| {
                        if (MIN_RING_BYTES..=MAX_RING_BYTES).contains(&bytes) {
                            Ok(bytes as u32)
                        } else {
                            Err(invalid(format!(
                                "agent.ring_buffer_bytes must be between {MIN_RING_BYTES} and \
                                 {MAX_RING_BYTES}, not {bytes}"
                            )))
                        }
                    })
                    .transpose()?,
                max_processes: agent
                    .max_processes
                    .map(|count| {
                        NonZeroUsize::new(count)
                            .ok_or_else(|| invalid("agent.max_processes must be at least 1".into()))
                    })
                    .transpose()?,
                include_self: agent.include_self,
                host_root: agent.host_root,
            },
        };
        let rules = match raw.rules {
            None => RuleSettings::default(),
            Some(rules) => {
                if rules.paths.as_ref().is_some_and(Vec::is_empty) {
                    return Err(invalid(
                        "rules.paths is empty: name at least one rules file or directory".into(),
                    ));
                }
                RuleSettings {
                    paths: rules.paths,
                    min_priority: rules.min_priority.map(|p| p.0),
                    disable_rules: rules.disable_rules,
                    disable_tags: rules.disable_tags,
                    enable_rules: rules.enable_rules,
                    enable_tags: rules.enable_tags,
                    allow_errors: rules.allow_errors,
                }
            }
        };
        Ok(FileConfig {
            agent,
            rules,
            egress_pin: raw.egress_pin,
            delivery,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        FileConfig::parse(text, Path::new("vigil.yaml"))
    }

    #[test]
    fn the_printed_default_is_valid_and_is_the_default() {
        let config = parse(DEFAULT_CONFIG).unwrap();
        assert_eq!(config.delivery, DeliveryConfig::stdout_only());
        assert_eq!(
            config.agent.metrics_addr,
            Some("127.0.0.1:9376".parse().unwrap())
        );
        assert_eq!(config.agent.ring_buffer_bytes, Some(16 * 1024 * 1024));
        assert_eq!(config.agent.max_processes, NonZeroUsize::new(65536));
        assert_eq!(config.agent.include_self, Some(false));
        assert_eq!(config.rules.paths, Some(vec![PathBuf::from("rules")]));
        assert_eq!(config.rules.min_priority, Some(Priority::Debug));
        assert_eq!(config.rules.allow_errors, Some(false));
        assert_eq!(config.egress_pin, Some(false));
    }

    #[test]
    fn a_file_may_hold_only_agent_settings() {
        let config = parse("agent:\n  max_processes: 1000\n").unwrap();
        assert_eq!(config.agent.max_processes, NonZeroUsize::new(1000));
        assert_eq!(config.agent.metrics_addr, None);
        assert_eq!(config.rules, RuleSettings::default());
        assert_eq!(config.delivery, DeliveryConfig::stdout_only());
    }

    #[test]
    fn mistakes_are_refused_with_their_position() {
        let error = parse("agent:\n  ring_bufer_bytes: 4096\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("vigil.yaml:2:3: ") && error.contains("ring_bufer_bytes"),
            "{error}"
        );
        let error = parse("rules:\n  min_priority: loud\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("vigil.yaml:2:17: "), "{error}");
        let error = parse("agent:\n  ring_buffer_bytes: 100\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("ring_buffer_bytes must be between"),
            "{error}"
        );
        let error = parse("agent:\n  max_processes: 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("max_processes must be at least 1"),
            "{error}"
        );
        let error = parse("rules:\n  paths: []\n").unwrap_err().to_string();
        assert!(error.contains("rules.paths is empty"), "{error}");
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vigil.yaml");
        std::fs::write(
            &file,
            "rules:\n  paths: [rules, /etc/vigil/rules]\negress: [egress.yaml]\n",
        )
        .unwrap();
        let config = FileConfig::load(&file).unwrap();
        assert_eq!(
            config.rules.paths,
            Some(vec![
                dir.path().join("rules"),
                PathBuf::from("/etc/vigil/rules")
            ])
        );
        assert_eq!(config.delivery.egress, vec![dir.path().join("egress.yaml")]);
    }
}
