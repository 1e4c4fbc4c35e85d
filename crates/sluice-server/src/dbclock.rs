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

    /// Measures `database now − local now`, halving the round trip.
    pub async fn calibrate(&self, store: &Store) -> Result<i64, StoreError> {
        let before = SystemClock.now().timestamp_millis();
        let db = store.db_now_ms().await?;
        let after = SystemClock.now().timestamp_millis();
        let offset = db - (before + after) / 2;
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
