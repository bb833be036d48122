//! Rule priorities, ordered from most to least severe as Falco orders them.

use std::fmt;
use std::str::FromStr;

/// A rule's priority (Falco's syslog-like levels). `Emergency` sorts first: a "minimum
/// priority" filter keeps rules whose priority is `<=` the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// System is unusable.
    Emergency,
    /// Action must be taken immediately.
    Alert,
    /// Critical conditions.
    Critical,
    /// Error conditions.
    Error,
    /// Warning conditions.
    Warning,
    /// Normal but significant.
    Notice,
    /// Informational (`info` is accepted as an alias).
    Informational,
    /// Debug-level.
    Debug,
}

/// All priorities, most severe first.
const ALL: [Priority; 8] = [
    Priority::Emergency,
    Priority::Alert,
    Priority::Critical,
    Priority::Error,
    Priority::Warning,
    Priority::Notice,
    Priority::Informational,
    Priority::Debug,
];

impl Priority {
    /// Falco's spelling (`"Warning"`, `"Informational"`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Emergency => "Emergency",
            Priority::Alert => "Alert",
            Priority::Critical => "Critical",
            Priority::Error => "Error",
            Priority::Warning => "Warning",
            Priority::Notice => "Notice",
            Priority::Informational => "Informational",
            Priority::Debug => "Debug",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no priority.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Invalid priority '{0}'")]
pub struct InvalidPriority(pub String);

impl FromStr for Priority {
    type Err = InvalidPriority;

    /// Case-insensitive, plus `info` for `Informational`, as Falco parses priorities.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("info") {
            return Ok(Priority::Informational);
        }
        ALL.into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| InvalidPriority(s.to_string()))
    }
}
