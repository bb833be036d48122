//! When the ring buffer's reader looks at the ring without being woken, and what it promises
//! the kernel side in exchange.
//!
//! Each CPU wakes the reader at most once per wakeup interval `W`, and not at all while the
//! reader has promised to look anyway (the `READER_POLLS_UNTIL` map). After a read that found
//! records, the reader reads again `P` later (`P` is [`READER_POLL_FACTOR`] times `W`) and
//! promises the kernel side a read after `P + 2W`: the extra `2W` covers the reader's lateness
//! (its timer's millisecond, and a runtime busy with the rules), so under a steady flow of
//! records every read comes before the promise runs out and no CPU has to wake the reader.
//! (With `P + W` the storm benchmark still saw a few hundred wakeups a second, each an
//! interrupt; with `P + 2W`, about eighty.) The reader keeps the promise even when a read in
//! between finds nothing: it reads once more after `P + 3W`, which leaves a margin of `W` for
//! records stamped before the promised time but committed a little later. Records after the
//! promised time may wake the reader: the last wakeup came before the read that made the
//! promise, at least `P + 2W` earlier.

use std::time::{Duration, Instant};

use agent_common::READER_POLL_FACTOR;

/// The reader's polling state.
#[derive(Debug)]
pub struct PollSchedule {
    interval: Duration,
    promise: Duration,
    keep: Duration,
    next: Option<Instant>,
    kept_until: Option<Instant>,
}

impl PollSchedule {
    /// The schedule for CPUs that wake the reader at most once per `wakeup_interval`; `None`
    /// when that is zero (every record may wake the reader: no polling).
    pub fn new(wakeup_interval: Duration) -> Option<PollSchedule> {
        if wakeup_interval.is_zero() {
            return None;
        }
        let interval = wakeup_interval * READER_POLL_FACTOR;
        Some(PollSchedule {
            interval,
            promise: interval + 2 * wakeup_interval,
            keep: interval + 3 * wakeup_interval,
            next: None,
            kept_until: None,
        })
    }

    /// When the reader reads next without a wakeup, if it does.
    pub fn deadline(&self) -> Option<Instant> {
        self.next
    }

    /// Notes a read that ended at `now` (`boot_now_ns` on the boot clock, read just before
    /// `now`) and whether it `found` records; returns the new promise to publish to the kernel
    /// side (boot clock, ns), if any.
    pub fn after_read(&mut self, found: bool, now: Instant, boot_now_ns: u64) -> Option<u64> {
        if found {
            self.next = Some(now + self.interval);
            // `now` is no earlier than `boot_now_ns`: the read kept for the promise comes no
            // earlier than `keep` after the promised time's origin.
            self.kept_until = Some(now + self.keep);
            let promise = u64::try_from(self.promise.as_nanos()).unwrap_or(u64::MAX);
            return Some(boot_now_ns.saturating_add(promise));
        }
        if self.next.is_some_and(|next| next <= now) {
            // Nothing new since the last read: read once more after the promise ran out.
            self.next = self.kept_until.filter(|kept| *kept > now);
            if self.next.is_none() {
                self.kept_until = None;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const MS_NS: u64 = 1_000_000;

    #[test]
    fn no_wakeup_interval_means_no_polling() {
        assert!(PollSchedule::new(Duration::ZERO).is_none());
    }

    #[test]
    fn a_read_that_finds_records_schedules_the_next_and_promises_past_it() {
        let start = Instant::now();
        let mut schedule = PollSchedule::new(MS).expect("polling");
        assert_eq!(schedule.deadline(), None, "idle: wait for a wakeup");
        let promised = schedule.after_read(true, start, 10 * MS_NS);
        assert_eq!(promised, Some(14 * MS_NS), "P + 2W after the read");
        assert_eq!(schedule.deadline(), Some(start + 2 * MS));
    }

    #[test]
    fn an_empty_read_keeps_the_promise_then_stops() {
        let start = Instant::now();
        let mut schedule = PollSchedule::new(MS).expect("polling");
        schedule.after_read(true, start, 0);
        // Woken early with nothing new: the deadline stands.
        assert_eq!(schedule.after_read(false, start + MS / 2, 0), None);
        assert_eq!(schedule.deadline(), Some(start + 2 * MS));
        // The scheduled read finds nothing: one more read after the promise ran out.
        schedule.after_read(false, start + 2 * MS, 0);
        assert_eq!(schedule.deadline(), Some(start + 5 * MS));
        // That one finds nothing either: back to waiting for wakeups.
        schedule.after_read(false, start + 5 * MS, 0);
        assert_eq!(schedule.deadline(), None);
        // And a late timer does not bring the kept read back.
        schedule.after_read(false, start + 6 * MS, 0);
        assert_eq!(schedule.deadline(), None);
    }

    #[test]
    fn the_kept_read_always_comes_after_the_promise() {
        let start = Instant::now();
        let mut schedule = PollSchedule::new(MS).expect("polling");
        let boot = 50 * MS_NS;
        let promised = schedule.after_read(true, start, boot).expect("promise");
        schedule.after_read(false, start + 2 * MS, 0);
        let kept = schedule.deadline().expect("kept read");
        // In the boot clock, the kept read is at least `boot + (kept - start)`.
        let kept_boot = boot + u64::try_from((kept - start).as_nanos()).expect("fits");
        assert!(
            kept_boot >= promised + MS_NS,
            "a margin of W after the promise"
        );
    }
}
