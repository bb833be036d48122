//! Reading records in order from the read position, a buffered reader per segment.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};

use super::frame::{self, Damage, FrameError, HEADER_LEN};
use super::segment::{self, Segment};
use super::{Position, Spool, SpoolError, SpoolRecord};

/// A buffered reader over one segment, kept between [`Spool::read`] calls so consecutive
/// batches are sequential reads.
#[derive(Debug)]
pub(super) struct SegmentReader {
    /// The segment's first id.
    pub(super) segment: u64,
    /// Where `inner` is positioned; `u64::MAX` when unknown after a failed read.
    offset: u64,
    inner: BufReader<File>,
}

/// One outcome of [`Spool::read_step`].
enum Step {
    Record(SpoolRecord),
    OverBudget,
    Damaged(Damage),
}

impl Spool {
    /// Appends to `records` what [`Spool::read`] returns; on error, `records` and the read
    /// position are left mid-batch for the caller to discard and restore.
    pub(super) fn read_into(
        &mut self,
        records: &mut Vec<SpoolRecord>,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<(), SpoolError> {
        let mut bytes = 0usize;
        while records.len() < max_records {
            let Some(i) = self.index_of(self.read_pos.segment) else {
                break;
            };
            if self.read_pos.offset >= self.segments[i].len {
                match self.segments.get(i + 1) {
                    Some(next) => {
                        self.read_pos = Position::start(next.first_id, self.read_pos.previous_id);
                        continue;
                    }
                    None => break,
                }
            }
            // The first record is returned whatever its size.
            let limit = (!records.is_empty()).then_some((bytes, max_bytes));
            match self.read_step(i, limit)? {
                Step::Record(record) => {
                    bytes = bytes.saturating_add(record.payload.len());
                    records.push(record);
                }
                Step::OverBudget => break,
                Step::Damaged(damage) => {
                    self.quarantine(self.read_pos, damage);
                    self.settle()?;
                }
            }
        }
        Ok(())
    }

    /// Reads the frame at the read position in segment `i` (which has bytes left there) and
    /// moves past it, unless its payload would take the batch's `(bytes, max_bytes)` over.
    fn read_step(&mut self, i: usize, limit: Option<(usize, usize)>) -> Result<Step, SpoolError> {
        let pos = self.read_pos;
        let seg = &self.segments[i];
        let remaining = seg.len - pos.offset;
        let reader = reader_at(&mut self.reader, seg, pos.offset)?;
        let header = match frame::read_header(&mut reader.inner, remaining, pos.previous_id) {
            Ok(Some(header)) => header,
            Ok(None) => return Ok(Step::Damaged(Damage::Truncated)),
            Err(error) => {
                reader.offset = u64::MAX;
                return match error {
                    FrameError::Damaged(damage) => Ok(Step::Damaged(damage)),
                    FrameError::Io(error) => Err(SpoolError::io(&seg.path)(error)),
                };
            }
        };
        reader.offset += HEADER_LEN;
        if limit.is_some_and(|(bytes, max)| bytes.saturating_add(header.len as usize) > max) {
            // Leave the frame for the next batch; stepping back keeps the buffer.
            match reader.inner.seek_relative(-(HEADER_LEN as i64)) {
                Ok(()) => reader.offset -= HEADER_LEN,
                Err(_) => reader.offset = u64::MAX,
            }
            return Ok(Step::OverBudget);
        }
        let mut payload = Vec::new();
        if let Err(error) = frame::read_payload(&mut reader.inner, &header, &mut payload) {
            reader.offset = u64::MAX;
            return match error {
                FrameError::Damaged(damage) => Ok(Step::Damaged(damage)),
                FrameError::Io(error) => Err(SpoolError::io(&seg.path)(error)),
            };
        }
        reader.offset += u64::from(header.len);
        self.read_pos = Position {
            segment: pos.segment,
            offset: pos.offset + header.frame_len(),
            index: pos.index + 1,
            previous_id: header.id,
        };
        Ok(Step::Record(SpoolRecord {
            id: header.id,
            created_unix_ns: header.created_unix_ns,
            payload,
        }))
    }
}

/// The reader in `slot`, (re)opened on `seg` and positioned at `offset`.
fn reader_at<'a>(
    slot: &'a mut Option<SegmentReader>,
    seg: &Segment,
    offset: u64,
) -> Result<&'a mut SegmentReader, SpoolError> {
    let reader = match slot.take() {
        Some(reader) if reader.segment == seg.first_id => slot.insert(reader),
        _ => {
            let file = File::open(&seg.path).map_err(SpoolError::io(&seg.path))?;
            slot.insert(SegmentReader {
                segment: seg.first_id,
                offset: u64::MAX,
                inner: BufReader::with_capacity(segment::READ_BUFFER, file),
            })
        }
    };
    if reader.offset != offset {
        reader.offset = u64::MAX;
        reader
            .inner
            .seek(SeekFrom::Start(offset))
            .map_err(SpoolError::io(&seg.path))?;
        reader.offset = offset;
    }
    Ok(reader)
}
