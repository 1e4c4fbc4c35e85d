use crate::{get, Store, StoreError};

/// The change counters (see migration 0002): an instance reloads what moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateRevs {
    pub access: i64,
    pub flags: i64,
}

impl Store {
    pub async fn state_revs(&self) -> Result<StateRevs, StoreError> {
        let row = sqlx::query("SELECT access_rev, flags_rev FROM sluice_state WHERE id = 1")
            .fetch_one(self.reader())
            .await?;
        Ok(StateRevs {
            access: get(&row, "access_rev")?,
            flags: get(&row, "flags_rev")?,
        })
    }

    /// The database's own clock, in milliseconds since the epoch (one clock for every instance).
    pub async fn db_now_ms(&self) -> Result<i64, StoreError> {
        let sql = match self.backend() {
            crate::Backend::Sqlite => {
                "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS BIGINT) AS ms"
            }
            crate::Backend::Postgres => {
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) AS ms"
            }
        };
        let row = sqlx::query(sql).fetch_one(self.reader()).await?;
        get(&row, "ms")
    }
}
