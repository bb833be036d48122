//! Segment files: naming, creating, and validating one at open.
//!
//! A segment is a run of frames (see [`frame`](super::frame)) named after the id of the first
//! record it was created for: `segment-<id, 20 digits>.log`, so names sort in id order.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, ErrorKind};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::SpoolError;
use super::frame::{self, Damage, FrameError};

const PREFIX: &str = "segment-";
const SUFFIX: &str = ".log";
const ID_DIGITS: usize = 20;

/// Buffer for sequential reads; large enough that a scan or a batch read is a few syscalls.
pub(super) const READ_BUFFER: usize = 64 * 1024;

/// What the spool knows about one segment file, kept in memory for every segment.
#[derive(Debug)]
pub(super) struct Segment {
    /// The id in the file name; segments are ordered and identified by it.
    pub first_id: u64,
    /// The file.
    pub path: PathBuf,
    /// Bytes of valid frames from the start of the file. Reads never go past it, even when
    /// the file is longer (damage found and skipped).
    pub len: u64,
    /// Valid frames in `len`.
    pub records: u64,
    /// Id of the last valid frame.
    pub last_id: Option<u64>,
    /// Whether appends go to this segment. Only the last segment can be writable, and only
    /// while its file ends exactly at `len`.
    pub writable: bool,
}

/// The file name of the segment whose first record is `first_id`.
pub(super) fn file_name(first_id: u64) -> String {
    format!("{PREFIX}{first_id:0ID_DIGITS$}{SUFFIX}")
}

/// The first id encoded in a segment file name, `None` for any other file.
pub(super) fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != ID_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment files in `dir`, in id order.
pub(super) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SpoolError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(SpoolError::io(dir))? {
        let entry = entry.map_err(SpoolError::io(dir))?;
        let name = entry.file_name();
        if let Some(id) = name.to_str().and_then(parse_file_name) {
            found.push((id, entry.path()));
        }
    }
    found.sort_unstable_by_key(|(id, _)| *id);
    Ok(found)
}

/// Creates a new, empty segment file for appending. Fails if it exists: segment names are never
/// reused, so an existing file means the index and the directory disagree.
pub(super) fn create(path: &Path) -> Result<File, SpoolError> {
    OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(SpoolError::io(path))
}

/// Opens an existing segment for appending.
pub(super) fn open_append(path: &Path) -> Result<File, SpoolError> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(SpoolError::io(path))
}

/// Cuts a segment file to `len` bytes and makes that durable.
pub(super) fn truncate(path: &Path, len: u64) -> Result<(), SpoolError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(SpoolError::io(path))?;
    file.set_len(len).map_err(SpoolError::io(path))?;
    file.sync_all().map_err(SpoolError::io(path))
}

/// Deletes a segment file. A file already gone is not an error.
pub(super) fn remove(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
        Err(error) => Err(SpoolError::io(path)(error)),
    }
}

/// Where the first unacknowledged record of a segment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FirstPending {
    /// Byte offset of its frame.
    pub offset: u64,
    /// Valid frames before it in the segment.
    pub index: u64,
    /// Id of the frame before it (or the `previous_id` given to [`scan`]).
    pub previous_id: u64,
    /// Its creation time.
    pub created_unix_ns: i64,
}

/// The result of validating one segment.
#[derive(Debug)]
pub(super) struct Scan {
    /// Size of the file.
    pub file_len: u64,
    /// Bytes of valid frames from the start.
    pub len: u64,
    /// Valid frames.
    pub records: u64,
    /// Id of the last valid frame.
    pub last_id: Option<u64>,
    /// Valid frames with an id above the acknowledged id, and their bytes.
    pub pending_records: u64,
    /// See `pending_records`.
    pub pending_bytes: u64,
    /// The first of them.
    pub first_pending: Option<FirstPending>,
    /// Invalid bytes at offset `len`, through the end of the file.
    pub damage: Option<Damage>,
}

/// Reads and verifies every frame of the segment at `path`, named for `first_id`, whose frames
/// must all have ids above `previous_id` (the last valid id of the segments before it) and
/// `first_id - 1`. Frames with ids up to `acked` are counted as acknowledged.
pub(super) fn scan(
    path: &Path,
    first_id: u64,
    previous_id: u64,
    acked: u64,
) -> Result<Scan, SpoolError> {
    let file = File::open(path).map_err(SpoolError::io(path))?;
    let file_len = file.metadata().map_err(SpoolError::io(path))?.len();
    let mut reader = BufReader::with_capacity(READ_BUFFER, file);
    let mut scan = Scan {
        file_len,
        len: 0,
        records: 0,
        last_id: None,
        pending_records: 0,
        pending_bytes: 0,
        first_pending: None,
        damage: None,
    };
    let mut bound = previous_id.max(first_id.saturating_sub(1));
    let mut payload = Vec::new();
    loop {
        let remaining = file_len - scan.len;
        let header =
            match frame::read_header(&mut reader, remaining, bound).and_then(
                |header| match header {
                    Some(header) => frame::read_payload(&mut reader, &header, &mut payload)
                        .map(|()| Some(header)),
                    None => Ok(None),
                },
            ) {
                Ok(Some(header)) => header,
                Ok(None) => break,
                Err(FrameError::Damaged(damage)) => {
                    scan.damage = Some(damage);
                    break;
                }
                Err(FrameError::Io(error)) => return Err(SpoolError::io(path)(error)),
            };
        if header.id > acked {
            if scan.first_pending.is_none() {
                scan.first_pending = Some(FirstPending {
                    offset: scan.len,
                    index: scan.records,
                    previous_id: scan.last_id.unwrap_or(previous_id),
                    created_unix_ns: header.created_unix_ns,
                });
            }
            scan.pending_records += 1;
            scan.pending_bytes += header.frame_len();
        }
        scan.len += header.frame_len();
        scan.records += 1;
        scan.last_id = Some(header.id);
        bound = header.id;
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_id_order_and_parse_back() {
        assert_eq!(file_name(42), "segment-00000000000000000042.log");
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert!(file_name(9) < file_name(10));
        for other in [
            "ledger",
            "segment-42.log",
            "segment-0000000000000000004x.log",
            "segment-00000000000000000042.log.tmp",
            "segment-+0000000000000000042.log",
        ] {
            assert_eq!(parse_file_name(other), None, "{other}");
        }
    }

    #[test]
    fn scan_counts_acked_and_pending_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(3));
        let mut bytes = Vec::new();
        let mut buf = Vec::new();
        for id in 3..=6 {
            frame::encode(&mut buf, id, id as i64 * 10, b"abc");
            bytes.extend_from_slice(&buf);
        }
        fs::write(&path, &bytes).unwrap();
        let scan = scan(&path, 3, 2, 4).unwrap();
        assert_eq!(
            (scan.records, scan.last_id, scan.damage),
            (4, Some(6), None)
        );
        assert_eq!((scan.len, scan.file_len), (108, 108));
        assert_eq!((scan.pending_records, scan.pending_bytes), (2, 54));
        let first = scan.first_pending.unwrap();
        assert_eq!((first.offset, first.index, first.previous_id), (54, 2, 4));
        assert_eq!(first.created_unix_ns, 50);
    }

    #[test]
    fn scan_rejects_frames_below_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(10));
        let mut buf = Vec::new();
        frame::encode(&mut buf, 9, 0, b"stale");
        fs::write(&path, &buf).unwrap();
        let scan = scan(&path, 10, 0, 0).unwrap();
        assert_eq!(scan.records, 0);
        assert!(matches!(
            scan.damage,
            Some(Damage::IdOutOfOrder { id: 9, .. })
        ));
    }
}
