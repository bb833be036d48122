//! Recovering the segment files at open.

use std::collections::VecDeque;
use std::path::Path;

use super::frame::Damage;
use super::segment::{self, Segment};
use super::{CorruptSegment, OpenReport, Position, SpoolError};

/// What the segment files on disk hold, after repairs.
pub(super) struct Recovered {
    pub(super) segments: VecDeque<Segment>,
    /// Highest valid id on disk (0 without any).
    pub(super) last_id: u64,
    /// The first record above the acknowledged id, and its creation time.
    pub(super) head: Option<(Position, i64)>,
    pub(super) pending_records: u64,
    pub(super) pending_bytes: u64,
}

/// Validates every segment in `dir`: removes a partial frame at the end of the last one (a
/// crash mid-append), reports damage anywhere else and seals the damaged segment.
pub(super) fn recover_segments(
    dir: &Path,
    acked_id: u64,
    report: &mut OpenReport,
) -> Result<Recovered, SpoolError> {
    let files = segment::list(dir)?;
    let count = files.len();
    let mut found = Recovered {
        segments: VecDeque::with_capacity(count),
        last_id: 0,
        head: None,
        pending_records: 0,
        pending_bytes: 0,
    };
    for (i, (first_id, path)) in files.into_iter().enumerate() {
        let is_last = i + 1 == count;
        let scan = segment::scan(&path, first_id, found.last_id, acked_id)?;
        let mut writable = is_last;
        if let Some(damage) = scan.damage {
            let skipped = scan.file_len - scan.len;
            if is_last && damage == Damage::Truncated {
                // The file then ends on a frame boundary and appends continue in it.
                segment::truncate(&path, scan.len)?;
                tracing::warn!(
                    path = %path.display(),
                    offset = scan.len,
                    bytes = skipped,
                    "spool: removed a partly written record at the end of the last segment"
                );
                report.truncated_bytes += skipped;
            } else {
                // Kept as is (the valid prefix is still read) but never appended to.
                writable = false;
                tracing::warn!(
                    path = %path.display(),
                    offset = scan.len,
                    skipped_bytes = skipped,
                    reason = %damage,
                    "spool segment is damaged; the records from the damage on are lost"
                );
                report.corrupt_segments.push(CorruptSegment {
                    path: path.clone(),
                    offset: scan.len,
                    skipped_bytes: skipped,
                    reason: damage.to_string(),
                });
            }
        }
        if found.head.is_none()
            && let Some(first) = scan.first_pending
        {
            let position = Position {
                segment: first_id,
                offset: first.offset,
                index: first.index,
                previous_id: first.previous_id,
            };
            found.head = Some((position, first.created_unix_ns));
        }
        found.pending_records += scan.pending_records;
        found.pending_bytes += scan.pending_bytes;
        found.last_id = scan.last_id.unwrap_or(found.last_id);
        found.segments.push_back(Segment {
            first_id,
            path,
            len: scan.len,
            records: scan.records,
            last_id: scan.last_id,
            writable,
        });
    }
    Ok(found)
}
