//! The on-disk spool: a durable FIFO queue of records for one sink.
//!
//! A spool is a directory holding append-only segment files and a `ledger` with the highest
//! acknowledged id and the format version. A segment is a run of frames, one per record:
//! `[payload len u32][CRC-32C of the rest u32][id u64][created ns i64][payload]`, little-endian.
//! A segment is named for the first id it holds and replaced by a new one past `segment_bytes`;
//! the ledger is replaced atomically (write, rename).
//!
//! ```text
//! <dir>/segment-00000000000000000001.log   records 1..=812
//! <dir>/segment-00000000000000000813.log   records 813..   (appends go here)
//! <dir>/ledger                              acknowledged through 640
//! ```
//!
//! Guarantees:
//!
//! - Every appended record that is not acknowledged is read again after a restart, in order and
//!   byte for byte; acknowledged records never come back (unless the ledger itself is lost to a
//!   power failure, which resends rather than drops). An append is in the kernel before
//!   [`Spool::append`] returns, so killing the agent loses nothing; surviving a power loss
//!   depends on the [`FsyncPolicy`].
//! - Damage is contained: a frame that fails its length or checksum check ends its segment (the
//!   bytes after it cannot be framed), is reported, and reading goes on with the next segment. A
//!   record cut short by a crash at the end of the last segment is removed at open.
//! - Memory stays small: an index entry per segment and the read buffers; records are read from
//!   disk when asked for.
//! - Disk use: `max_bytes` caps the unacknowledged frames. Acknowledged frames stay on disk until
//!   their whole segment is acknowledged and no longer written to, so the directory can exceed
//!   `max_bytes` by up to one segment.
//!
//! The API is synchronous and takes `&mut self`: callers share a spool behind a mutex, and each
//! call does a few small reads or writes. The directory is locked (`flock`) while open, so a
//! second agent on the same spool fails to open it instead of interleaving frames.

mod error;
mod frame;
mod head;
mod ledger;
mod read;
mod recover;
mod segment;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fs::{DirBuilder, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

pub use error::SpoolError;
use frame::{HEADER_LEN, MAX_PAYLOAD_LEN};
use head::Target;
use read::SegmentReader;
use recover::{Recovered, recover_segments};
use segment::Segment;

/// Where a spool lives and how it behaves.
#[derive(Clone, Debug)]
pub struct SpoolConfig {
    /// The spool's own directory, one per sink. Created with mode 0700 if missing.
    pub dir: PathBuf,
    /// Most bytes of unacknowledged records (frames, headers included) kept on disk.
    pub max_bytes: u64,
    /// Size at which appends move on to a new segment file. Acknowledged records are deleted a
    /// segment at a time, so this is also the granularity of freeing disk space.
    pub segment_bytes: u64,
    /// When appended records are forced to stable storage.
    pub fsync: FsyncPolicy,
    /// What an append does when `max_bytes` is reached.
    pub when_full: FullPolicy,
}

/// When appended records are forced to stable storage. Every append is written to the file
/// before [`Spool::append`] returns, so the choice only matters for power loss and kernel
/// crashes, not for the agent being killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Fsync after every append and every ledger update: nothing acknowledged to the caller is
    /// lost, at the cost of a disk flush per call.
    Always,
    /// Fsync in [`Spool::sync_if_due`] once the interval has passed since the last sync: a power
    /// loss loses at most about one interval of records.
    Interval(Duration),
    /// Leave flushing to the operating system (explicit [`Spool::sync`] calls still flush).
    Never,
}

/// What an append does when the spool holds `max_bytes` of unacknowledged records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullPolicy {
    /// Refuse the new record ([`AppendOutcome::Rejected`]); what is queued is kept.
    DropNewest,
    /// Drop the oldest unacknowledged records until the new one fits.
    DropOldest,
}

/// One record read back from the spool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolRecord {
    /// The spool's id for the record: increasing by one per append, and never reused for a
    /// different record once it may have been acknowledged.
    pub id: u64,
    /// The creation time given to [`Spool::append`].
    pub created_unix_ns: i64,
    /// The bytes given to [`Spool::append`].
    pub payload: Vec<u8>,
}

/// What [`Spool::open`] found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Records waiting to be delivered.
    pub pending_records: u64,
    /// Their bytes on disk.
    pub pending_bytes: u64,
    /// Bytes of a record cut short at the end of the last segment (a crash during an append),
    /// removed from the file.
    pub truncated_bytes: u64,
    /// Segments with invalid frames; the records from the damage on are lost.
    pub corrupt_segments: Vec<CorruptSegment>,
    /// The ledger was unreadable, so every record still on disk is treated as unacknowledged
    /// (delivered again rather than risk dropping it).
    pub ledger_reset: bool,
}

/// A segment found damaged at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorruptSegment {
    /// The segment file, left in place until its valid records are acknowledged.
    pub path: PathBuf,
    /// Offset of the first invalid byte.
    pub offset: u64,
    /// Bytes from there to the end of the file, skipped.
    pub skipped_bytes: u64,
    /// What was wrong with the frame at `offset`.
    pub reason: String,
}

/// What became of an appended record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The record is in the spool.
    Stored {
        /// Its id.
        id: u64,
        /// Oldest records dropped to make room ([`FullPolicy::DropOldest`]).
        evicted: u64,
    },
    /// The record was not stored: the spool is full under [`FullPolicy::DropNewest`], or the
    /// record alone is larger than `max_bytes` (or 64 MiB).
    Rejected,
}

/// A place in the spool: just before the frame at `offset` of segment `segment`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Position {
    /// The segment's first id (its key in the index).
    segment: u64,
    /// Byte offset of the frame.
    offset: u64,
    /// Valid frames before it in the segment.
    index: u64,
    /// Id of the frame before it; the frame here must have a higher one.
    previous_id: u64,
}

impl Position {
    fn start(segment: u64, previous_id: u64) -> Position {
        Position {
            segment,
            offset: 0,
            index: 0,
            previous_id,
        }
    }

    fn key(&self) -> (u64, u64) {
        (self.segment, self.offset)
    }
}

/// Flushes owed by the `Interval` and `Never` policies.
#[derive(Debug, Default)]
struct Unsynced {
    segment: bool,
    ledger: bool,
    dir: bool,
}

/// A durable FIFO queue of records on disk. See the [module documentation](self).
#[derive(Debug)]
pub struct Spool {
    config: SpoolConfig,
    /// The open directory: holds the exclusive lock for the spool's lifetime, and is what gets
    /// fsynced after files are created or renamed.
    dir: Flock<File>,
    /// Every segment on disk, in id order.
    segments: VecDeque<Segment>,
    /// Append handle to the last segment, while it is writable.
    writer: Option<File>,
    /// The id the next append gets.
    next_id: u64,
    /// Highest id acknowledged (or evicted); persisted in the ledger.
    acked_id: u64,
    /// The first unacknowledged record. Always in the first segment, at the end of the last
    /// segment when nothing is pending, or at `next_id`'s future segment when there is none.
    head: Position,
    oldest_pending_unix_ns: Option<i64>,
    /// The next record [`Spool::read`] returns; never before `head`.
    read_pos: Position,
    reader: Option<SegmentReader>,
    /// A handle on the head's segment for reading headers while acknowledging or evicting.
    head_file: Option<(u64, File)>,
    pending_records: u64,
    pending_bytes: u64,
    skipped_bytes: u64,
    unsynced: Unsynced,
    /// The in-memory `acked_id` has not reached the ledger file (its last write failed).
    ledger_stale: bool,
    last_sync: Instant,
    /// Reused to encode frames, so an append is one allocation-free write.
    frame_buf: Vec<u8>,
}

impl Spool {
    /// Opens the spool in `config.dir`, creating it if needed: locks the directory against
    /// other users, validates every segment, removes a record cut short by a crash at the end of
    /// the last one, skips damaged frames (reported, and logged as warnings), deletes segments
    /// that are fully acknowledged, and positions reading at the first unacknowledged record.
    pub fn open(config: SpoolConfig) -> Result<(Spool, OpenReport), SpoolError> {
        validate(&config)?;
        let dir = lock_dir(&config.dir)?;
        ledger::remove_stale_tmp(&config.dir)?;
        let mut report = OpenReport::default();
        let (acked_id, ledger_ok) = match ledger::load(&config.dir)? {
            ledger::Loaded::Acked(id) => (id, true),
            ledger::Loaded::Missing => (0, false),
            ledger::Loaded::Invalid(reason) => {
                tracing::warn!(
                    path = %config.dir.join(ledger::FILE_NAME).display(),
                    reason,
                    "spool ledger is unreadable; every record on disk will be delivered again"
                );
                report.ledger_reset = true;
                (0, false)
            }
        };

        let Recovered {
            segments,
            last_id,
            head,
            pending_records,
            pending_bytes,
        } = recover_segments(&config.dir, acked_id, &mut report)?;

        // Ids must never go backwards: not below a record on disk, not to an acknowledged id
        // (a new record with it would count as delivered), and not to a segment name in use.
        // An empty writable last segment may take its own name's id.
        let name_floor = match segments.back() {
            Some(last) if last.writable => last.first_id.saturating_sub(1),
            Some(last) => last.first_id,
            None => 0,
        };
        let next_id = last_id.max(acked_id).max(name_floor).saturating_add(1);
        let (head, oldest_pending_unix_ns) = match head {
            Some((position, created)) => (position, Some(created)),
            None => match segments.back() {
                Some(last) => (
                    Position {
                        segment: last.first_id,
                        offset: last.len,
                        index: last.records,
                        previous_id: last_id,
                    },
                    None,
                ),
                None => (Position::start(next_id, last_id), None),
            },
        };

        let mut spool = Spool {
            config,
            dir,
            segments,
            writer: None,
            next_id,
            acked_id,
            head,
            oldest_pending_unix_ns,
            read_pos: head,
            reader: None,
            head_file: None,
            pending_records,
            pending_bytes,
            skipped_bytes: report
                .corrupt_segments
                .iter()
                .map(|c| c.skipped_bytes)
                .sum(),
            unsynced: Unsynced::default(),
            ledger_stale: false,
            last_sync: Instant::now(),
            frame_buf: Vec::new(),
        };
        spool.settle()?;
        if !ledger_ok {
            // Record the format version (and the recovered ack point) from the start.
            ledger::store(&spool.config.dir, &spool.dir, spool.acked_id, true)?;
        }
        report.pending_records = spool.pending_records;
        report.pending_bytes = spool.pending_bytes;
        tracing::debug!(
            dir = %spool.config.dir.display(),
            pending_records = spool.pending_records,
            pending_bytes = spool.pending_bytes,
            segments = spool.segments.len(),
            next_id = spool.next_id,
            "spool opened"
        );
        Ok((spool, report))
    }

    /// Appends a record. It is written to the current segment before this returns (and
    /// fsynced under [`FsyncPolicy::Always`]).
    ///
    /// When the spool is full, [`FullPolicy::DropNewest`] returns [`AppendOutcome::Rejected`]
    /// and [`FullPolicy::DropOldest`] acknowledges the oldest records until this one fits. A
    /// record that alone exceeds `max_bytes` is always rejected.
    pub fn append(
        &mut self,
        payload: &[u8],
        created_unix_ns: i64,
    ) -> Result<AppendOutcome, SpoolError> {
        let frame_len = HEADER_LEN + payload.len() as u64;
        if payload.len() as u64 > MAX_PAYLOAD_LEN || frame_len > self.config.max_bytes {
            return Ok(AppendOutcome::Rejected);
        }
        let budget = self.config.max_bytes - frame_len;
        let mut evicted = 0;
        if self.pending_bytes > budget {
            match self.config.when_full {
                FullPolicy::DropNewest => return Ok(AppendOutcome::Rejected),
                FullPolicy::DropOldest => evicted = self.evict(budget)?,
            }
        }

        let id = self.next_id;
        let mut frame = std::mem::take(&mut self.frame_buf);
        frame::encode(&mut frame, id, created_unix_ns, payload);
        let written = self.write_frame(&frame, id);
        self.frame_buf = frame;
        written?;

        self.next_id += 1;
        // The head sits where this frame was written whenever nothing was pending.
        if self.pending_records == 0 {
            self.oldest_pending_unix_ns = Some(created_unix_ns);
        }
        self.pending_records += 1;
        self.pending_bytes += frame_len;
        match self.config.fsync {
            FsyncPolicy::Always => {
                if let (Some(writer), Some(last)) = (&self.writer, self.segments.back()) {
                    writer.sync_data().map_err(SpoolError::io(&last.path))?;
                }
            }
            FsyncPolicy::Interval(_) | FsyncPolicy::Never => self.unsynced.segment = true,
        }
        Ok(AppendOutcome::Stored { id, evicted })
    }

    /// Returns the next records after those already read, in order: at most `max_records`,
    /// and at most `max_bytes` of payload, except that one record is returned whatever its size
    /// if any is pending. On error nothing is consumed.
    pub fn read(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<SpoolRecord>, SpoolError> {
        self.clamp_read_pos();
        let start = self.read_pos;
        let mut records = Vec::new();
        match self.read_into(&mut records, max_records, max_bytes) {
            Ok(()) => Ok(records),
            Err(error) => {
                self.read_pos = start;
                self.reader = None;
                self.clamp_read_pos();
                Err(error)
            }
        }
    }

    /// Moves reading back to the first unacknowledged record, to retry what was read and not
    /// acknowledged.
    pub fn rewind(&mut self) {
        self.read_pos = self.head;
    }

    /// Marks every record with an id up to `through_id` delivered: persists the new ack point
    /// in the ledger (fsynced under [`FsyncPolicy::Always`]) and deletes segments whose records
    /// are all acknowledged, except the one being appended to.
    pub fn ack(&mut self, through_id: u64) -> Result<(), SpoolError> {
        // Acknowledging ids not handed out yet would silently drop the records that get them.
        let through = through_id.min(self.next_id - 1);
        if through <= self.acked_id && !self.ledger_stale {
            return Ok(());
        }
        let advanced = self.advance_head(Target::Through(through));
        self.acked_id = match advanced {
            Ok(_) => self.acked_id.max(through),
            Err(_) => self.acked_id.max(self.head.previous_id),
        };
        advanced?;
        // The ledger goes first: a crash between the two leaves acknowledged segments that
        // the next open deletes, never a gap.
        self.store_ledger()?;
        self.settle()
    }

    /// Forces appended records, the ledger and new directory entries to stable storage,
    /// whatever the policy (for example at shutdown).
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if self.ledger_stale {
            self.store_ledger()?;
        }
        if self.unsynced.segment {
            if let (Some(writer), Some(last)) = (&self.writer, self.segments.back()) {
                writer.sync_data().map_err(SpoolError::io(&last.path))?;
            }
            self.unsynced.segment = false;
        }
        if self.unsynced.ledger {
            ledger::sync(&self.config.dir)?;
        }
        if self.unsynced.dir || self.unsynced.ledger {
            self.dir
                .sync_all()
                .map_err(SpoolError::io(&self.config.dir))?;
            self.unsynced.dir = false;
            self.unsynced.ledger = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Under [`FsyncPolicy::Interval`], [`sync`](Self::sync)s if the interval has passed since
    /// the last sync; call it periodically. Also retries a ledger write that failed.
    pub fn sync_if_due(&mut self) -> Result<(), SpoolError> {
        match self.config.fsync {
            FsyncPolicy::Interval(every) if self.last_sync.elapsed() >= every => self.sync(),
            _ if self.ledger_stale => self.store_ledger(),
            _ => Ok(()),
        }
    }

    /// Records appended and not acknowledged.
    #[must_use]
    pub fn pending_records(&self) -> u64 {
        self.pending_records
    }

    /// Disk bytes of the records appended and not acknowledged: what `max_bytes` caps.
    #[must_use]
    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes
    }

    /// Creation time of the oldest record not acknowledged.
    #[must_use]
    pub fn oldest_pending_unix_ns(&self) -> Option<i64> {
        self.oldest_pending_unix_ns
    }

    /// Bytes skipped as damaged since open, including those reported by [`Spool::open`]; the
    /// records in them are lost.
    #[must_use]
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped_bytes
    }

    /// The spool's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Drops the oldest unacknowledged records until at most `budget` bytes are pending.
    fn evict(&mut self, budget: u64) -> Result<u64, SpoolError> {
        let advanced = self.advance_head(Target::Fit(budget));
        self.acked_id = self.acked_id.max(self.head.previous_id);
        let evicted = advanced?;
        self.store_ledger()?;
        self.settle()?;
        tracing::debug!(
            dir = %self.config.dir.display(),
            evicted,
            "spool full: dropped the oldest records"
        );
        Ok(evicted)
    }

    /// Writes an encoded frame at the end of the current segment, rolling to a new one first
    /// if needed, and indexes it.
    fn write_frame(&mut self, frame: &[u8], id: u64) -> Result<(), SpoolError> {
        let frame_len = frame.len() as u64;
        let (last, writer) = self.writable_tail(frame_len)?;
        match writer.write_all(frame) {
            Ok(()) => {
                last.len += frame_len;
                last.records += 1;
                last.last_id = Some(id);
                Ok(())
            }
            Err(source) => {
                // Part of the frame may be on disk. Cut it off so the next append starts on a
                // frame boundary; if even that fails, stop appending to this file.
                let sealed = writer.set_len(last.len).is_err();
                if sealed {
                    last.writable = false;
                }
                let error = SpoolError::Io {
                    path: last.path.clone(),
                    source,
                };
                if sealed {
                    self.writer = None;
                }
                // A buffered reader may hold the discarded bytes.
                self.reader = None;
                Err(error)
            }
        }
    }

    /// The last segment and its append handle, after rolling to a new segment if the frame
    /// does not fit in the current one (or it is not writable).
    fn writable_tail(&mut self, frame_len: u64) -> Result<(&mut Segment, &mut File), SpoolError> {
        let roll = match self.segments.back() {
            Some(last) if last.writable => {
                last.len > 0 && last.len.saturating_add(frame_len) > self.config.segment_bytes
            }
            _ => true,
        };
        if roll {
            self.roll()?;
        }
        if self.writer.is_none()
            && let Some(last) = self.segments.back()
        {
            self.writer = Some(segment::open_append(&last.path)?);
        }
        match (self.segments.back_mut(), self.writer.as_mut()) {
            (Some(last), Some(writer)) if last.writable => Ok((last, writer)),
            _ => Err(SpoolError::Io {
                path: self.config.dir.clone(),
                source: io::Error::other("spool has no writable segment after rolling"),
            }),
        }
    }

    /// Seals the current segment and starts a new one named for `next_id`.
    fn roll(&mut self) -> Result<(), SpoolError> {
        if let Some(last) = self.segments.back_mut()
            && last.writable
        {
            // `sync` only flushes the current segment, so what this one owes is paid now.
            if self.unsynced.segment
                && self.config.fsync != FsyncPolicy::Never
                && let Some(writer) = &self.writer
            {
                writer.sync_data().map_err(SpoolError::io(&last.path))?;
            }
            last.writable = false;
        }
        self.writer = None;
        self.unsynced.segment = false;

        let first_id = self.next_id;
        let path = self.config.dir.join(segment::file_name(first_id));
        let file = segment::create(&path)?;
        // Indexed before anything else can fail, so a retry does not trip over the file.
        self.segments.push_back(Segment {
            first_id,
            path,
            len: 0,
            records: 0,
            last_id: None,
            writable: true,
        });
        self.writer = Some(file);
        match self.config.fsync {
            FsyncPolicy::Always => self
                .dir
                .sync_all()
                .map_err(SpoolError::io(&self.config.dir))?,
            FsyncPolicy::Interval(_) | FsyncPolicy::Never => self.unsynced.dir = true,
        }
        // The sealed segment may be fully acknowledged already.
        self.settle()
    }

    fn store_ledger(&mut self) -> Result<(), SpoolError> {
        self.ledger_stale = true;
        let durable = self.config.fsync == FsyncPolicy::Always;
        ledger::store(&self.config.dir, &self.dir, self.acked_id, durable)?;
        self.ledger_stale = false;
        self.unsynced.ledger |= !durable;
        Ok(())
    }

    fn index_of(&self, first_id: u64) -> Option<usize> {
        self.segments
            .binary_search_by_key(&first_id, |s| s.first_id)
            .ok()
    }
}

fn validate(config: &SpoolConfig) -> Result<(), SpoolError> {
    let invalid = |reason| SpoolError::InvalidConfig {
        path: config.dir.clone(),
        reason,
    };
    if config.segment_bytes == 0 {
        return Err(invalid("segment_bytes must be positive"));
    }
    if config.max_bytes <= HEADER_LEN {
        return Err(invalid("max_bytes is too small to hold a record"));
    }
    Ok(())
}

/// Creates `path` (mode 0700) if needed, opens it and takes an exclusive lock on it: two agents
/// appending to one spool would interleave frames.
fn lock_dir(path: &Path) -> Result<Flock<File>, SpoolError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(SpoolError::io(path))?;
    let dir = File::open(path).map_err(SpoolError::io(path))?;
    let mode = dir
        .metadata()
        .map_err(SpoolError::io(path))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        // An existing directory is the operator's choice (it may be shared); say so rather
        // than change it.
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", mode & 0o7777),
            "spool directory is accessible to other users; alerts in it are sensitive"
        );
    }
    Flock::lock(dir, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        if errno == Errno::EWOULDBLOCK {
            SpoolError::Locked {
                path: path.to_path_buf(),
            }
        } else {
            SpoolError::io(path)(io::Error::from(errno))
        }
    })
}
