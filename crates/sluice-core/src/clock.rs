//! Time is a parameter: domain logic takes `now` from a [`Clock`] it is given.
//!
//! The wall clock is read in exactly one place, [`SystemClock::now`]; clippy's
//! `disallowed-methods` (see `clippy.toml`) keeps it that way.

use chrono::{DateTime, TimeDelta, Utc};
use std::sync::{Arc, Mutex};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock, truncated to milliseconds (the precision everything is stored at).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(
        clippy::disallowed_methods,
        reason = "the one place the wall clock is read"
    )]
    fn now(&self) -> DateTime<Utc> {
        // Whole milliseconds straight from the system clock: one calendar conversion, where
        // `Utc::now` then `truncate_ms` made two (~350 instructions, read on every request).
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_millis())
                .ok()
                .and_then(DateTime::from_timestamp_millis)
                .unwrap_or_else(|| truncate_ms(Utc::now())),
            // A clock set before 1970.
            Err(_) => truncate_ms(Utc::now()),
        }
    }
}

/// A clock that only moves when told to. Used by tests and by the `--clock manual` test mode.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(truncate_ms(start))))
    }
    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = truncate_ms(t);
    }
    pub fn advance(&self, d: TimeDelta) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *g += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Truncates to whole milliseconds, the precision of every stored time.
pub fn truncate_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    // Through the integer form: a few instructions, where `duration_trunc` costs a calendar
    // round trip (this runs on every evaluation).
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// Milliseconds since the Unix epoch, the stored form of every time.
pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The inverse of [`to_ms`]; out-of-range values clamp to the epoch.
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[expect(
        clippy::disallowed_methods,
        reason = "the system clock checked against chrono's reading of it"
    )]
    fn the_system_clock_reads_whole_milliseconds_of_now() {
        let before = truncate_ms(Utc::now());
        let now = SystemClock.now();
        let after = Utc::now();
        assert_eq!(now.timestamp_subsec_nanos() % 1_000_000, 0, "{now:?}");
        assert!(
            before <= now && now <= after,
            "{before:?} {now:?} {after:?}"
        );
    }
}
