//! Moving the head (the acknowledged point) and keeping the segment index consistent with it:
//! deleting what lies behind it, cutting damaged segments short, and the pending counters.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::frame::{Damage, HEADER_LEN, Header};
use super::segment::{self, Segment};
use super::{Position, Spool, SpoolError};

/// How far [`Spool::advance_head`] moves the acknowledged point.
#[derive(Clone, Copy, Debug)]
pub(super) enum Target {
    /// Past every record with an id up to this one.
    Through(u64),
    /// Until the unacknowledged bytes are at most this many.
    Fit(u64),
}

impl Spool {
    /// Moves the head (the acknowledged point) forward toward `target`, walking frame headers
    /// where it stops inside a segment and skipping whole segments otherwise. Returns how many
    /// records it passed. Deletes nothing: see [`Spool::settle`].
    pub(super) fn advance_head(&mut self, target: Target) -> Result<u64, SpoolError> {
        let mut passed = 0;
        loop {
            self.canonicalize_head();
            if self.pending_records == 0 {
                break;
            }
            if let Target::Fit(budget) = target
                && self.pending_bytes <= budget
            {
                break;
            }
            let Some(i) = self.index_of(self.head.segment) else {
                break;
            };
            let seg = &self.segments[i];
            let rest_records = seg.records - self.head.index;
            let rest_bytes = seg.len - self.head.offset;
            if rest_bytes == 0 {
                // Only the end of the last segment: nothing left to pass.
                break;
            }
            let whole = match target {
                Target::Through(id) => seg.last_id.is_none_or(|last| last <= id),
                // Stopping anywhere inside the rest would leave more than the budget.
                Target::Fit(budget) => self.pending_bytes.saturating_sub(rest_bytes) >= budget,
            };
            if whole {
                self.head = Position {
                    segment: seg.first_id,
                    offset: seg.len,
                    index: seg.records,
                    previous_id: seg.last_id.unwrap_or(self.head.previous_id),
                };
                self.pending_records = self.pending_records.saturating_sub(rest_records);
                self.pending_bytes = self.pending_bytes.saturating_sub(rest_bytes);
                passed += rest_records;
                continue;
            }
            match self.header_at(i, self.head)? {
                Err(damage) => {
                    self.quarantine(self.head, damage);
                }
                Ok(header) => {
                    if let Target::Through(id) = target
                        && header.id > id
                    {
                        break;
                    }
                    self.head.offset += header.frame_len();
                    self.head.index += 1;
                    self.head.previous_id = header.id;
                    self.pending_records = self.pending_records.saturating_sub(1);
                    self.pending_bytes = self.pending_bytes.saturating_sub(header.frame_len());
                    passed += 1;
                }
            }
        }
        Ok(passed)
    }

    /// Restores the invariants after the head moved or segments changed: the head in the first
    /// segment, nothing before it on disk, the read position not behind it, and the oldest
    /// pending time current.
    pub(super) fn settle(&mut self) -> Result<(), SpoolError> {
        loop {
            self.canonicalize_head();
            if let Some(front) = self.segments.front()
                && front.first_id > self.head.segment
            {
                // The head's segment is gone (or was never created): start at the first one.
                self.head = Position::start(front.first_id, self.head.previous_id);
                continue;
            }
            while let Some(front) = self.segments.front() {
                let behind = front.first_id < self.head.segment;
                // Canonical, so this is the last segment; a writable one is kept for appends.
                let spent = front.first_id == self.head.segment
                    && self.head.offset >= front.len
                    && !front.writable;
                if !(behind || spent) {
                    break;
                }
                if let Some(done) = self.segments.pop_front() {
                    self.forget(done);
                }
            }
            if self.segments.is_empty() {
                self.head = Position::start(self.next_id, self.head.previous_id);
            }
            self.clamp_read_pos();

            if self.pending_records == 0 {
                self.oldest_pending_unix_ns = None;
                return Ok(());
            }
            let Some(i) = self.index_of(self.head.segment) else {
                self.recount();
                return Ok(());
            };
            match self.header_at(i, self.head)? {
                Ok(header) => {
                    self.oldest_pending_unix_ns = Some(header.created_unix_ns);
                    return Ok(());
                }
                Err(damage) => {
                    if !self.quarantine(self.head, damage) {
                        self.recount();
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Moves a head sitting at the end of a segment to the start of the next one.
    fn canonicalize_head(&mut self) {
        while let Some(i) = self.index_of(self.head.segment) {
            match self.segments.get(i + 1) {
                Some(next) if self.head.offset >= self.segments[i].len => {
                    self.head = Position::start(next.first_id, self.head.previous_id);
                }
                _ => break,
            }
        }
    }

    pub(super) fn clamp_read_pos(&mut self) {
        if self.read_pos.key() < self.head.key() {
            self.read_pos = self.head;
        }
    }

    /// Cuts segment `at.segment` short at `at` after finding `damage` there: its remaining
    /// bytes cannot be framed, so their records are lost. Returns whether anything was cut.
    pub(super) fn quarantine(&mut self, at: Position, damage: Damage) -> bool {
        let Some(i) = self.index_of(at.segment) else {
            return false;
        };
        let seg = &mut self.segments[i];
        if at.offset >= seg.len {
            return false;
        }
        let lost_records = seg.records.saturating_sub(at.index);
        let lost_bytes = seg.len - at.offset;
        tracing::warn!(
            path = %seg.path.display(),
            offset = at.offset,
            skipped_bytes = lost_bytes,
            lost_records,
            reason = %damage,
            "spool segment is damaged; the records from the damage on are lost"
        );
        seg.len = at.offset;
        seg.records = at.index;
        seg.last_id = (at.index > 0).then_some(at.previous_id);
        // Appending after damage would put good records where no reader reaches them.
        if std::mem::replace(&mut seg.writable, false) {
            self.writer = None;
            self.unsynced.segment = false;
        }
        // Positions at or after `at` (never before the head), so all of it was pending.
        self.pending_records = self.pending_records.saturating_sub(lost_records);
        self.pending_bytes = self.pending_bytes.saturating_sub(lost_bytes);
        self.skipped_bytes += lost_bytes;
        if self
            .reader
            .as_ref()
            .is_some_and(|r| r.segment == at.segment)
        {
            self.reader = None;
        }
        if self.read_pos.segment == at.segment && self.read_pos.offset > at.offset {
            self.read_pos = at;
        }
        true
    }

    /// Recomputes the pending counters from the index. Only reached if they disagree with it,
    /// which is a bug; recovering beats looping or panicking in the delivery path.
    fn recount(&mut self) {
        debug_assert!(false, "spool pending counters disagree with the index");
        tracing::error!(dir = %self.config.dir.display(), "spool pending counters were wrong; recounted");
        let mut records = 0;
        let mut bytes = 0;
        for seg in self
            .segments
            .iter()
            .filter(|s| s.first_id >= self.head.segment)
        {
            records += seg.records;
            bytes += seg.len;
        }
        if self.index_of(self.head.segment).is_some() {
            records = records.saturating_sub(self.head.index);
            bytes = bytes.saturating_sub(self.head.offset);
        }
        self.pending_records = records;
        self.pending_bytes = bytes;
        if records == 0 {
            self.oldest_pending_unix_ns = None;
        }
    }

    /// Drops a segment from disk and from every handle. A failed delete is only logged: the
    /// segment's records are acknowledged, and the next open deletes it.
    fn forget(&mut self, done: Segment) {
        if done.writable {
            self.writer = None;
            self.unsynced.segment = false;
        }
        if self
            .reader
            .as_ref()
            .is_some_and(|r| r.segment == done.first_id)
        {
            self.reader = None;
        }
        if self
            .head_file
            .as_ref()
            .is_some_and(|(id, _)| *id == done.first_id)
        {
            self.head_file = None;
        }
        if let Err(error) = segment::remove(&done.path) {
            tracing::warn!(%error, "cannot delete an acknowledged spool segment; retrying at the next open");
        }
    }

    /// Reads and checks the frame header at `pos` in segment `i`, without its payload.
    fn header_at(&mut self, i: usize, pos: Position) -> Result<Result<Header, Damage>, SpoolError> {
        let seg = &self.segments[i];
        let remaining = seg.len.saturating_sub(pos.offset);
        if remaining < HEADER_LEN {
            return Ok(Err(Damage::Truncated));
        }
        let file = match self.head_file.take() {
            Some((id, file)) if id == seg.first_id => &self.head_file.insert((id, file)).1,
            _ => {
                let file = File::open(&seg.path).map_err(SpoolError::io(&seg.path))?;
                &self.head_file.insert((seg.first_id, file)).1
            }
        };
        let mut bytes = [0u8; HEADER_LEN as usize];
        match file.read_exact_at(&mut bytes, pos.offset) {
            Ok(()) => Ok(Header::parse(&bytes, remaining, pos.previous_id)),
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                Ok(Err(Damage::Truncated))
            }
            Err(error) => Err(SpoolError::io(&seg.path)(error)),
        }
    }
}
