//! The agent's delivery identity across restarts: the next sequence number, when the agent was
//! last known alive, and whether it stopped cleanly.
//!
//! Sequence numbers are reserved in blocks written to disk before use, so a crash never makes
//! a number come back twice; it can only skip the rest of the block, which receivers see as a
//! gap right after the `Vigil agent started` record that says the stop was unclean.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::clock::now_unix_ns;

/// Sequence numbers reserved per write of the state file.
const BLOCK: u64 = 10_000;
const FILE_NAME: &str = "agent-state.json";

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("agent state {path}: {message}")]
pub struct IdentityError {
    /// The state file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    /// Every number below this may have been used.
    reserved_until: u64,
    /// Last time the agent was known alive (heartbeat or shutdown), Unix nanoseconds.
    last_alive_unix_ns: i64,
    /// Set at a clean shutdown, cleared at start.
    clean_shutdown: bool,
    /// The exact next number, valid only after a clean shutdown.
    next_seq: u64,
}

/// What the previous run left behind, for the `Vigil agent started` record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PreviousRun {
    /// Seconds between the last sign of life and this start; `None` on a first start or
    /// without a state directory.
    pub down_seconds: Option<f64>,
    /// Whether it stopped cleanly; `None` when unknown.
    pub clean_shutdown: Option<bool>,
}

/// Hands out sequence numbers and remembers liveness.
#[derive(Debug)]
pub struct Identity {
    path: Option<PathBuf>,
    stored: Stored,
    next_seq: u64,
}

impl Identity {
    /// Sequence numbers from 1, nothing persisted (no spool directory).
    pub fn ephemeral() -> Identity {
        Identity {
            path: None,
            stored: Stored::default(),
            next_seq: 1,
        }
    }

    /// Loads (or creates) the state in `dir` and marks this run as started.
    pub fn open(dir: &Path) -> Result<(Identity, PreviousRun), IdentityError> {
        let path = dir.join(FILE_NAME);
        let error = |message: String| IdentityError {
            path: path.clone(),
            message,
        };
        fs::create_dir_all(dir).map_err(|e| error(format!("creating the directory: {e}")))?;
        let previous =
            match fs::read(&path) {
                Ok(bytes) => Some(serde_json::from_slice::<Stored>(&bytes).map_err(|e| {
                    error(format!("unreadable ({e}); move it away to start afresh"))
                })?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(error(e.to_string())),
            };
        let now = now_unix_ns();
        let (next_seq, report) = match previous {
            None => (
                1,
                PreviousRun {
                    down_seconds: None,
                    clean_shutdown: None,
                },
            ),
            Some(stored) => {
                let next = if stored.clean_shutdown {
                    stored.next_seq.max(1)
                } else {
                    stored.reserved_until.max(1)
                };
                let down = (now - stored.last_alive_unix_ns).max(0) as f64 / 1e9;
                (
                    next,
                    PreviousRun {
                        down_seconds: Some(down),
                        clean_shutdown: Some(stored.clean_shutdown),
                    },
                )
            }
        };
        let mut identity = Identity {
            path: Some(path),
            stored: Stored {
                reserved_until: next_seq,
                last_alive_unix_ns: now,
                clean_shutdown: false,
                next_seq: 0,
            },
            next_seq,
        };
        identity.reserve()?;
        Ok((identity, report))
    }

    /// The next sequence number. If the next block cannot be reserved on disk the number is
    /// still handed out (unique within this run) and the failure logged: an alert is never
    /// held back for bookkeeping.
    pub fn next_seq(&mut self) -> u64 {
        if self.path.is_some()
            && self.next_seq >= self.stored.reserved_until
            && let Err(error) = self.reserve()
        {
            tracing::error!(%error, "reserving sequence numbers failed");
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// The last number handed out (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.next_seq.saturating_sub(1)
    }

    /// Records that the agent is alive now.
    pub fn touch(&mut self) -> Result<(), IdentityError> {
        self.stored.last_alive_unix_ns = now_unix_ns();
        self.write()
    }

    /// Records a clean stop: the next run continues at exactly the next number.
    pub fn shutdown(&mut self) -> Result<(), IdentityError> {
        self.stored.clean_shutdown = true;
        self.stored.next_seq = self.next_seq;
        self.stored.last_alive_unix_ns = now_unix_ns();
        self.write()
    }

    fn reserve(&mut self) -> Result<(), IdentityError> {
        self.stored.reserved_until = self.next_seq + BLOCK;
        self.write()
    }

    fn write(&self) -> Result<(), IdentityError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let error = |message: String| IdentityError {
            path: path.clone(),
            message,
        };
        let temp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(&self.stored).map_err(|e| error(e.to_string()))?;
        let mut file = fs::File::create(&temp).map_err(|e| error(e.to_string()))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| error(e.to_string()))?;
        fs::rename(&temp, path).map_err(|e| error(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_restart_continues_the_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let (mut first, previous) = Identity::open(dir.path()).unwrap();
        assert_eq!(previous.down_seconds, None);
        assert_eq!(first.next_seq(), 1);
        assert_eq!(first.next_seq(), 2);
        first.shutdown().unwrap();
        let (mut second, previous) = Identity::open(dir.path()).unwrap();
        assert_eq!(previous.clean_shutdown, Some(true));
        assert!(previous.down_seconds.is_some_and(|d| d >= 0.0));
        assert_eq!(second.next_seq(), 3);
    }

    #[test]
    fn crash_skips_to_the_end_of_the_reserved_block() {
        let dir = tempfile::tempdir().unwrap();
        let (mut first, _) = Identity::open(dir.path()).unwrap();
        for _ in 0..(BLOCK + 5) {
            first.next_seq();
        }
        assert_eq!(first.last_seq(), BLOCK + 5);
        drop(first); // no shutdown: a crash
        let (mut second, previous) = Identity::open(dir.path()).unwrap();
        assert_eq!(previous.clean_shutdown, Some(false));
        let next = second.next_seq();
        assert!(next > BLOCK + 5, "never reuses a number: {next}");
        assert!(next <= 2 * BLOCK + 6, "{next}");
    }

    #[test]
    fn ephemeral_starts_at_one() {
        let mut identity = Identity::ephemeral();
        assert_eq!(identity.next_seq(), 1);
        identity.touch().unwrap();
        identity.shutdown().unwrap();
    }
}
