//! The spool's error type: every variant names the file or directory involved.

use std::io;
use std::path::{Path, PathBuf};

/// Why a spool operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Reading, writing, syncing, creating or deleting a spool file failed.
    #[error("spool I/O on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Another process (or another [`Spool`](super::Spool) in this one) has the directory open.
    #[error("spool directory {} is locked by another user of the spool", path.display())]
    Locked {
        /// The spool directory.
        path: PathBuf,
    },
    /// The ledger was written by a newer, incompatible version of the spool; refusing to guess
    /// at its meaning rather than resend or drop records.
    #[error(
        "spool ledger {} has format version {found}; this build reads version {supported}",
        path.display()
    )]
    UnsupportedVersion {
        /// The ledger file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The configuration cannot work.
    #[error("spool {}: {reason}", path.display())]
    InvalidConfig {
        /// The spool directory.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
}

impl SpoolError {
    /// Wraps an I/O error with the path it happened on, for `map_err`.
    pub(super) fn io(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
        move |source| SpoolError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
