//! One clock for every instance: the database's.
//!
//! Several instances on one PostgreSQL database must agree on "now", or an instance whose
//! clock runs slow would honour a grant past its expiry. [`DbClock`] reads the local clock
//! (cheap, monotonic enough between calibrations) and adds the offset to the database's clock,
//! measured at start and re-measured in the background.

use sluice_core::{Clock, SystemClock};
use sluice_store::{Store, StoreError};
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug, Default)]
pub struct DbClock {
    offset_ms: AtomicI64,
}

impl DbClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Measures `database now − local now`, halving the round trip. Of a few samples, the
    /// one with the shortest round trip is kept: a slow one (the first use of a connection
    /// also prepares the statement) skews the midpoint by up to half its length.
    pub async fn calibrate(&self, store: &Store) -> Result<i64, StoreError> {
        let mut best: Option<(i64, i64)> = None;
        for _ in 0..3 {
            let before = SystemClock.now().timestamp_millis();
            let db = store.db_now_ms().await?;
            let after = SystemClock.now().timestamp_millis();
            let (rtt, offset) = (after - before, db - (before + after) / 2);
            if best.is_none_or(|(r, _)| rtt < r) {
                best = Some((rtt, offset));
            }
        }
        let offset = best.map_or(0, |(_, o)| o);
        self.offset_ms.store(offset, Ordering::Relaxed);
        Ok(offset)
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
}

impl Clock for DbClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        SystemClock.now() + chrono::TimeDelta::milliseconds(self.offset_ms())
    }
}
