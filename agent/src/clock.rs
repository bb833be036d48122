//! Converts the kernel's boot-clock timestamps (`bpf_ktime_get_boot_ns`) to wall-clock time.

use nix::time::{ClockId, clock_gettime};

/// The offset between the boot clock and the realtime clock, taken once.
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    offset_ns: i64,
}

impl BootClock {
    /// Measures the offset now. The boot clock keeps counting across suspend, so the offset only
    /// moves when the wall clock is stepped.
    pub fn now() -> BootClock {
        let boot = read_ns(ClockId::CLOCK_BOOTTIME);
        let real = read_ns(ClockId::CLOCK_REALTIME);
        BootClock {
            offset_ns: real.saturating_sub(boot),
        }
    }

    /// Nanoseconds since the Unix epoch for a boot-clock timestamp.
    pub fn to_unix_ns(&self, boot_ns: u64) -> i64 {
        self.offset_ns
            .saturating_add(i64::try_from(boot_ns).unwrap_or(i64::MAX))
    }

    /// The boot clock's current reading, in nanoseconds.
    pub fn boot_now_ns() -> u64 {
        u64::try_from(read_ns(ClockId::CLOCK_BOOTTIME)).unwrap_or(0)
    }
}

/// A monotonic clock that ticks only every few milliseconds, for throttling checks that run
/// per event: it costs a fraction of a precise read (no time-stamp counter, which in a virtual
/// machine may go through the hypervisor's clock page).
pub fn coarse_monotonic() -> std::time::Duration {
    let ns = clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE)
        .map(|ts| i128::from(ts.tv_sec()) * 1_000_000_000 + i128::from(ts.tv_nsec()))
        .unwrap_or(0);
    std::time::Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

/// The wall clock now, in nanoseconds since the Unix epoch.
pub fn now_unix_ns() -> i64 {
    read_ns(ClockId::CLOCK_REALTIME)
}

fn read_ns(clock: ClockId) -> i64 {
    // Both clocks always exist on Linux; a failure would leave the offset at zero, which only
    // skews displayed times.
    clock_gettime(clock)
        .map(|ts| ts.tv_sec() * 1_000_000_000 + ts.tv_nsec())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_roughly_now() {
        let clock = BootClock::now();
        let now = clock.to_unix_ns(BootClock::boot_now_ns());
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        assert!(
            (wall - now).abs() < 1_000_000_000,
            "off by {} ns",
            wall - now
        );
    }
}
