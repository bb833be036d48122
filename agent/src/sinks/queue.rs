//! A sink's queue: the on-disk [`Spool`] when a spool directory is configured, otherwise a
//! bounded in-memory queue with the same semantics (ids, read cursor, acknowledgements).
//!
//! Records are stored as their JSON bytes, serialised once by the dispatcher for every sink.
//! With a spool every record is written through to disk as it is queued, so a killed agent
//! loses nothing the kernel accepted into the page cache; the worker reads back recent
//! records from that cache.

use std::{
    collections::VecDeque,
    sync::{Mutex, MutexGuard},
};

use tokio::sync::Notify;

use super::spool::{AppendOutcome, FullPolicy, Spool, SpoolError, SpoolRecord};

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The spool failed (disk full, I/O error); the message names the file.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// What became of a pushed record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued; `evicted` older records were dropped to make room (drop_oldest).
    Stored {
        /// Records dropped to make room.
        evicted: u64,
    },
    /// The queue was full and the record was dropped (drop_newest).
    Dropped,
}

/// A queued record handed to the worker.
#[derive(Clone, Debug)]
pub struct Queued {
    /// Queue id, increasing.
    pub id: u64,
    /// When it was queued, Unix nanoseconds.
    pub created_unix_ns: i64,
    /// The record's JSON.
    pub payload: Vec<u8>,
}

impl From<SpoolRecord> for Queued {
    fn from(record: SpoolRecord) -> Self {
        Queued {
            id: record.id,
            created_unix_ns: record.created_unix_ns,
            payload: record.payload,
        }
    }
}

/// One sink's queue, shared by the dispatcher (push) and the sink's worker (read, ack).
pub struct SinkQueue {
    inner: Mutex<Inner>,
    ready: Notify,
}

enum Inner {
    Memory(MemoryQueue),
    Disk(Box<Spool>),
}

struct MemoryQueue {
    records: VecDeque<Queued>,
    /// Records before this index have been handed out and not yet acknowledged.
    read: usize,
    next_id: u64,
    max_records: usize,
    policy: FullPolicy,
    bytes: u64,
}

impl SinkQueue {
    /// A queue in memory holding at most `max_records`.
    pub fn memory(max_records: usize, policy: FullPolicy) -> SinkQueue {
        SinkQueue::new(Inner::Memory(MemoryQueue {
            records: VecDeque::new(),
            read: 0,
            next_id: 1,
            max_records: max_records.max(1),
            policy,
            bytes: 0,
        }))
    }

    /// A queue backed by an opened spool.
    pub fn disk(spool: Spool) -> SinkQueue {
        SinkQueue::new(Inner::Disk(Box::new(spool)))
    }

    fn new(inner: Inner) -> SinkQueue {
        SinkQueue {
            inner: Mutex::new(inner),
            ready: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the queue half-updated in a way that
        // matters more than stopping delivery would, so keep going with the data.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether records survive a restart.
    pub fn is_durable(&self) -> bool {
        matches!(*self.lock(), Inner::Disk(_))
    }

    /// Queues a record and wakes the worker.
    pub fn push(&self, payload: &[u8], created_unix_ns: i64) -> Result<Pushed, QueueError> {
        let pushed = match &mut *self.lock() {
            Inner::Memory(queue) => queue.push(payload, created_unix_ns),
            Inner::Disk(spool) => match spool.append(payload, created_unix_ns)? {
                AppendOutcome::Stored { evicted, .. } => Pushed::Stored { evicted },
                AppendOutcome::Rejected => Pushed::Dropped,
            },
        };
        if matches!(pushed, Pushed::Stored { .. }) {
            self.ready.notify_one();
        }
        Ok(pushed)
    }

    /// The next records after those already handed out, in order.
    pub fn read(&self, max_records: usize, max_bytes: usize) -> Result<Vec<Queued>, QueueError> {
        match &mut *self.lock() {
            Inner::Memory(queue) => Ok(queue.read(max_records, max_bytes)),
            Inner::Disk(spool) => Ok(spool
                .read(max_records, max_bytes)?
                .into_iter()
                .map(Queued::from)
                .collect()),
        }
    }

    /// Everything up to and including `id` was delivered (or set aside).
    pub fn ack(&self, id: u64) -> Result<(), QueueError> {
        match &mut *self.lock() {
            Inner::Memory(queue) => {
                queue.ack(id);
                Ok(())
            }
            Inner::Disk(spool) => Ok(spool.ack(id)?),
        }
    }

    /// Hands out the unacknowledged records again from the first.
    pub fn rewind(&self) {
        match &mut *self.lock() {
            Inner::Memory(queue) => queue.read = 0,
            Inner::Disk(spool) => spool.rewind(),
        }
    }

    /// Records queued and not acknowledged.
    pub fn pending(&self) -> u64 {
        match &*self.lock() {
            Inner::Memory(queue) => queue.records.len() as u64,
            Inner::Disk(spool) => spool.pending_records(),
        }
    }

    /// Bytes queued and not acknowledged (on disk for a spool).
    pub fn pending_bytes(&self) -> u64 {
        match &*self.lock() {
            Inner::Memory(queue) => queue.bytes,
            Inner::Disk(spool) => spool.pending_bytes(),
        }
    }

    /// When the oldest unacknowledged record was queued.
    pub fn oldest_pending_unix_ns(&self) -> Option<i64> {
        match &*self.lock() {
            Inner::Memory(queue) => queue.records.front().map(|r| r.created_unix_ns),
            Inner::Disk(spool) => spool.oldest_pending_unix_ns(),
        }
    }

    /// Forces spooled records to disk if the fsync interval has passed.
    pub fn sync_if_due(&self) -> Result<(), QueueError> {
        match &mut *self.lock() {
            Inner::Memory(_) => Ok(()),
            Inner::Disk(spool) => Ok(spool.sync_if_due()?),
        }
    }

    /// Forces spooled records to disk now.
    pub fn sync(&self) -> Result<(), QueueError> {
        match &mut *self.lock() {
            Inner::Memory(_) => Ok(()),
            Inner::Disk(spool) => Ok(spool.sync()?),
        }
    }

    /// Waits until a record is pushed (returns at once if one was pushed since the last wait).
    pub async fn wait(&self) {
        self.ready.notified().await;
    }
}

impl MemoryQueue {
    fn push(&mut self, payload: &[u8], created_unix_ns: i64) -> Pushed {
        let mut evicted = 0;
        if self.records.len() >= self.max_records {
            match self.policy {
                FullPolicy::DropNewest => return Pushed::Dropped,
                FullPolicy::DropOldest => {
                    if let Some(old) = self.records.pop_front() {
                        self.bytes -= old.payload.len() as u64;
                        self.read = self.read.saturating_sub(1);
                        evicted = 1;
                    }
                }
            }
        }
        self.bytes += payload.len() as u64;
        self.records.push_back(Queued {
            id: self.next_id,
            created_unix_ns,
            payload: payload.to_vec(),
        });
        self.next_id += 1;
        Pushed::Stored { evicted }
    }

    fn read(&mut self, max_records: usize, max_bytes: usize) -> Vec<Queued> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while let Some(record) = self.records.get(self.read) {
            if out.len() >= max_records
                || (!out.is_empty() && bytes + record.payload.len() > max_bytes)
            {
                break;
            }
            bytes += record.payload.len();
            out.push(record.clone());
            self.read += 1;
        }
        out
    }

    fn ack(&mut self, id: u64) {
        while self.records.front().is_some_and(|r| r.id <= id) {
            if let Some(done) = self.records.pop_front() {
                self.bytes -= done.payload.len() as u64;
                self.read = self.read.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_queue_reads_acks_and_rewinds_in_order() {
        let queue = SinkQueue::memory(10, FullPolicy::DropNewest);
        for n in 0..5u8 {
            queue.push(&[n], i64::from(n)).unwrap();
        }
        let first = queue.read(2, usize::MAX).unwrap();
        assert_eq!(
            first.iter().map(|q| q.payload[0]).collect::<Vec<_>>(),
            [0, 1]
        );
        let second = queue.read(2, usize::MAX).unwrap();
        assert_eq!(
            second.iter().map(|q| q.payload[0]).collect::<Vec<_>>(),
            [2, 3]
        );
        queue.ack(first[1].id).unwrap();
        queue.rewind();
        let again = queue.read(10, usize::MAX).unwrap();
        assert_eq!(
            again.iter().map(|q| q.payload[0]).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        assert_eq!(queue.pending(), 3);
        assert_eq!(queue.oldest_pending_unix_ns(), Some(2));
    }

    #[test]
    fn memory_queue_full_policies() {
        let newest = SinkQueue::memory(2, FullPolicy::DropNewest);
        assert_eq!(newest.push(b"a", 0).unwrap(), Pushed::Stored { evicted: 0 });
        assert_eq!(newest.push(b"b", 0).unwrap(), Pushed::Stored { evicted: 0 });
        assert_eq!(newest.push(b"c", 0).unwrap(), Pushed::Dropped);
        let kept: Vec<_> = newest.read(10, usize::MAX).unwrap();
        assert_eq!(kept[0].payload, b"a");

        let oldest = SinkQueue::memory(2, FullPolicy::DropOldest);
        oldest.push(b"a", 0).unwrap();
        oldest.push(b"b", 0).unwrap();
        assert_eq!(oldest.push(b"c", 0).unwrap(), Pushed::Stored { evicted: 1 });
        let kept: Vec<_> = oldest.read(10, usize::MAX).unwrap();
        assert_eq!(
            kept.iter().map(|q| q.payload.clone()).collect::<Vec<_>>(),
            [b"b", b"c"]
        );
    }

    #[test]
    fn batches_respect_max_bytes_but_always_take_one() {
        let queue = SinkQueue::memory(10, FullPolicy::DropNewest);
        queue.push(&[0; 100], 0).unwrap();
        queue.push(&[1; 10], 0).unwrap();
        assert_eq!(queue.read(10, 50).unwrap().len(), 1);
        assert_eq!(queue.read(10, 50).unwrap().len(), 1);
    }
}
