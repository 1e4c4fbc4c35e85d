use crate::{get, Store, StoreError};
use chrono::{DateTime, Utc};
use sluice_audit::{AuditEntry, ChainHead, Checkpoint, Format};
use sluice_core::clock::{from_ms, to_ms};
use sqlx::any::AnyRow;

/// Filters for reading the audit trail. Pages go by sequence number.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only entries with `seq > after`.
    pub after: Option<i64>,
    pub limit: i64,
    /// The *last* `limit` matching entries (still returned in sequence order) instead of the
    /// first.
    pub newest: bool,
}

fn entry(row: &AnyRow) -> Result<AuditEntry, StoreError> {
    let details: String = get(row, "details")?;
    Ok(AuditEntry {
        seq: get(row, "seq")?,
        at: from_ms(get(row, "at")?),
        actor: get(row, "actor")?,
        action: get(row, "action")?,
        resource: get(row, "resource")?,
        subject_id: get(row, "subject_id")?,
        details: serde_json::from_str(&details)?,
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
        format: Format::try_from(get::<i64>(row, "format")?)
            .map_err(|e| StoreError::Database(e.to_string()))?,
    })
}

fn checkpoint(r: &AnyRow) -> Result<Checkpoint, StoreError> {
    Ok(Checkpoint {
        seq: get(r, "seq")?,
        hash: get(r, "hash")?,
        at: from_ms(get(r, "at")?),
        key_id: get(r, "key_id")?,
        signature: get(r, "signature")?,
    })
}

const COLS: &str = "seq, at, actor, action, resource, subject_id, details, prev_hash, hash, format";

impl Store {
    /// Entries matching `q`, in sequence order. `action` matches a prefix (`access.` finds all
    /// access events).
    pub async fn audit_entries(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let filter = "FROM audit_entries WHERE seq > $1 AND ($2 IS NULL OR actor = $2) \
             AND ($3 IS NULL OR action = $3 OR action LIKE $4) AND ($5 IS NULL OR resource = $5) \
             AND at >= $6 AND at < $7";
        let sql = if q.newest {
            format!(
                "SELECT {COLS} FROM (SELECT {COLS} {filter} ORDER BY seq DESC LIMIT $8) AS newest \
                 ORDER BY seq"
            )
        } else {
            format!("SELECT {COLS} {filter} ORDER BY seq LIMIT $8")
        };
        let prefix = q
            .action
            .as_ref()
            .map(|a| format!("{}%", a.replace(['%', '_'], "")));
        let rows = sqlx::query(&sql)
            .bind(q.after.unwrap_or(0))
            .bind(q.actor.clone())
            .bind(q.action.clone())
            .bind(prefix)
            .bind(q.resource.clone())
            .bind(q.since.map_or(i64::MIN, to_ms))
            .bind(q.until.map_or(i64::MAX, to_ms))
            .bind(q.limit.clamp(1, 10_000))
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(entry).collect()
    }

    /// One page of the whole chain from `after`, for verification and export.
    pub async fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!("SELECT {COLS} FROM audit_entries WHERE seq > $1 ORDER BY seq LIMIT $2");
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(entry).collect()
    }

    /// The entry at `seq`, if any.
    pub async fn audit_entry_at(&self, seq: i64) -> Result<Option<AuditEntry>, StoreError> {
        let sql = format!("SELECT {COLS} FROM audit_entries WHERE seq = $1");
        let row = sqlx::query(&sql)
            .bind(seq)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(entry).transpose()
    }

    /// The whole chain, in sequence order. It grows without bound: verification and export
    /// read it by [`Store::audit_page`] instead.
    pub async fn audit_all(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let mut out = Vec::new();
        loop {
            let after = out.last().map_or(0, |e: &AuditEntry| e.seq);
            let page = self.audit_page(after, 5_000).await?;
            if page.is_empty() {
                return Ok(out);
            }
            out.extend(page);
        }
    }

    pub async fn audit_head(&self) -> Result<ChainHead, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(self.reader())
            .await?;
        Ok(ChainHead {
            seq: get(&row, "seq")?,
            hash: get(&row, "hash")?,
        })
    }

    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, hash, at, key_id, signature FROM audit_checkpoints ORDER BY seq",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(checkpoint).collect()
    }

    /// One page of the checkpoints with `seq > after`, in sequence order.
    pub async fn checkpoints_page(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, hash, at, key_id, signature FROM audit_checkpoints WHERE seq > $1 \
             ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(checkpoint).collect()
    }

    /// The checkpoint with the highest sequence number.
    pub async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.checkpoint_where("ORDER BY seq DESC LIMIT 1", None)
            .await
    }

    /// The checkpoint at `seq`, if any.
    pub async fn checkpoint_at(&self, seq: i64) -> Result<Option<Checkpoint>, StoreError> {
        self.checkpoint_where("WHERE seq = $1", Some(seq)).await
    }

    async fn checkpoint_where(
        &self,
        clause: &str,
        seq: Option<i64>,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let sql =
            format!("SELECT seq, hash, at, key_id, signature FROM audit_checkpoints {clause}");
        let mut query = sqlx::query(&sql);
        if let Some(seq) = seq {
            query = query.bind(seq);
        }
        let row = query.fetch_optional(self.reader()).await?;
        row.as_ref().map(checkpoint).transpose()
    }

    /// Stores `c` only if the latest checkpoint is still the one at `latest` (0: none), so a
    /// caller that checked who signed it knows nobody signed since. On PostgreSQL the check
    /// and the insert hold a lock on the checkpoints table that only checkpoint writers take
    /// (`SHARE ROW EXCLUSIVE` conflicts with itself and with inserts, not with reads), which
    /// serialises them with every other instance doing the same. Not the chain head's lock:
    /// a checkpoint signs a head already committed and changes nothing the chain's writers
    /// read, and under the head lock every round (one after each commit) would stop the
    /// next write batch for its insert and its commit. Returns whether `c` was stored.
    pub async fn insert_checkpoint_after(
        &self,
        c: &Checkpoint,
        latest: i64,
    ) -> Result<bool, StoreError> {
        if let Some(batch) = &self.batch {
            return insert_checkpoint_batched(batch, c, latest).await;
        }
        let mut tx = self.writer().begin().await?;
        if self.backend() == crate::Backend::Postgres {
            // INVARIANT: a statement of its own, before the insert, so that the insert's
            // snapshot (read committed) is taken once the lock is held and sees the
            // checkpoint of whoever held it before.
            sqlx::query("LOCK TABLE audit_checkpoints IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
        }
        let done = insert_after(c, latest).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a signed checkpoint of the chain head (idempotent per sequence number).
    pub async fn insert_checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (seq) DO NOTHING",
        )
        .bind(c.seq)
        .bind(&c.hash)
        .bind(to_ms(c.at))
        .bind(&c.key_id)
        .bind(&c.signature)
        .execute(self.writer())
        .await?;
        Ok(())
    }
}

const INSERT_AFTER: &str = "INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature) \
     SELECT $1, $2, $3, $4, $5 \
     WHERE COALESCE((SELECT MAX(seq) FROM audit_checkpoints), 0) = $6 \
     ON CONFLICT (seq) DO NOTHING";

/// The insert of [`Store::insert_checkpoint_after`].
fn insert_after(
    c: &Checkpoint,
    latest: i64,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    sqlx::query(INSERT_AFTER)
        .bind(c.seq)
        .bind(&c.hash)
        .bind(to_ms(c.at))
        .bind(&c.key_id)
        .bind(&c.signature)
        .bind(latest)
}

/// On SQLite the checkpoint joins the open write batch, like a writer with no audit entry
/// (a checkpoint changes no state; it only vouches for entries already committed): a
/// transaction of its own would wait for the batch's write lock and hold up the next batch,
/// while this shares the batch's commit and fsync. Returns once durable.
async fn insert_checkpoint_batched(
    batch: &crate::batch::Batcher,
    c: &Checkpoint,
    latest: i64,
) -> Result<bool, StoreError> {
    let (mut lease, head, access_rev) = batch.begin().await?;
    // A failure drops the lease, which rolls this savepoint back.
    let done = insert_after(c, latest).execute(lease.conn()).await?;
    sqlx::query(crate::batch::KEEP)
        .execute(lease.conn())
        .await?;
    lease.kept(head, access_rev, Vec::new()).await?;
    Ok(done.rows_affected() == 1)
}
