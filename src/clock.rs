//! Time that counts sleep.
//!
//! A laptop sleeps for hours. `std::time::Instant` is CLOCK_MONOTONIC on Linux, which stops while
//! the machine is suspended: an answer cached with a 300 s TTL before a night asleep would still be
//! "fresh" in the morning. Everything that ages by a TTL or a timeout (cached answers, negative
//! answers, DNSKEY re-checks, the "TCP first" memory of a server) uses a [`Stamp`] instead, read
//! from CLOCK_BOOTTIME on Linux (which includes suspended time) and CLOCK_MONOTONIC elsewhere (on
//! macOS that clock already counts sleep).
//!
//! The cache and the query handler take the time from a [`Clock`], so tests can inject a
//! [`ManualClock`] and move it forward as a night asleep would.
//!
//! Wall-clock time, for what is shown to people or compared with signatures' validity periods,
//! is [`unix_now`], written for people by [`utc`].

use std::fmt;
use std::ops::Add;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The wall clock in Unix seconds (0 if the clock is set before 1970): for timestamps shown to a
/// person or written to files, and for RRSIG validity periods. Never for ageing (see [`Stamp`]).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `2026-12-04 17:22:01Z` for a Unix time.
pub fn utc(at: u64) -> String {
    let (days, secs) = (at / 86_400, at % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// A point in time since boot, suspended time included. Only differences mean anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Stamp(Duration);

impl Stamp {
    /// Now, by the clock that keeps running while the machine sleeps.
    pub fn now() -> Self {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let id = nix::time::ClockId::CLOCK_BOOTTIME;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let id = nix::time::ClockId::CLOCK_MONOTONIC;
        // clock_gettime on these clocks cannot fail for a valid id; a zero stamp would only make
        // everything look fresh for one call, never stale.
        let ts = nix::time::clock_gettime(id).unwrap_or(nix::sys::time::TimeSpec::new(0, 0));
        Stamp(Duration::new(ts.tv_sec().max(0) as u64, ts.tv_nsec().clamp(0, 999_999_999) as u32))
    }

    /// A stamp at `since_boot` (tests and benches).
    pub const fn from_since_boot(since_boot: Duration) -> Self {
        Stamp(since_boot)
    }

    /// Time since boot.
    pub fn since_boot(self) -> Duration {
        self.0
    }

    /// How much later `self` is than `earlier` (zero if it is not later).
    pub fn saturating_duration_since(self, earlier: Stamp) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// `self - d`, or `None` before boot.
    pub fn checked_sub(self, d: Duration) -> Option<Stamp> {
        self.0.checked_sub(d).map(Stamp)
    }

    /// Time since this stamp, by [`Stamp::now`].
    pub fn elapsed(self) -> Duration {
        Stamp::now().saturating_duration_since(self)
    }
}

impl Add<Duration> for Stamp {
    type Output = Stamp;
    fn add(self, d: Duration) -> Stamp {
        Stamp(self.0.saturating_add(d))
    }
}

/// Where the query path reads the time from.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Stamp;
}

/// The real clock: [`Stamp::now`].
#[derive(Debug, Default, Clone, Copy)]
pub struct BootClock;

impl Clock for BootClock {
    fn now(&self) -> Stamp {
        Stamp::now()
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock as a shared handle.
pub fn boot_clock() -> SharedClock {
    Arc::new(BootClock)
}

/// A clock that moves only when told to: a test stands a night asleep in for with
/// [`ManualClock::advance`].
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Stamp) -> Self {
        Self(AtomicU64::new(start.0.as_nanos() as u64))
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Stamp {
        Stamp(Duration::from_nanos(self.0.load(Ordering::SeqCst)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(utc(1_796_400_061), "2026-12-04 16:01:01Z");
    }

    #[test]
    fn stamps_order_and_add() {
        let a = Stamp::from_since_boot(Duration::from_secs(10));
        let b = a + Duration::from_millis(1500);
        assert!(b > a);
        assert_eq!(b.saturating_duration_since(a), Duration::from_millis(1500));
        assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
        assert_eq!(b.checked_sub(Duration::from_millis(1500)), Some(a));
        assert_eq!(a.checked_sub(Duration::from_secs(11)), None);
    }

    #[test]
    fn the_real_clock_moves_and_counts_at_least_monotonic_time() {
        let a = Stamp::now();
        std::thread::sleep(Duration::from_millis(5));
        let b = Stamp::now();
        assert!(b.saturating_duration_since(a) >= Duration::from_millis(5));
        // CLOCK_BOOTTIME = CLOCK_MONOTONIC + time spent suspended, so it is never behind.
        #[cfg(target_os = "linux")]
        {
            let mono = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
            let boot = Stamp::now().since_boot();
            let mono = Duration::new(mono.tv_sec() as u64, mono.tv_nsec() as u32);
            assert!(boot + Duration::from_millis(1) >= mono, "boottime {boot:?} behind monotonic {mono:?}");
        }
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Stamp::from_since_boot(Duration::from_secs(100)));
        let a = c.now();
        assert_eq!(c.now(), a);
        c.advance(Duration::from_secs(8 * 3600));
        assert_eq!(c.now().saturating_duration_since(a), Duration::from_secs(8 * 3600));
    }
}
