use crate::{get, StoreError};
use chrono::{DateTime, Utc};
use sluice_audit::{AuditEntry, ChainHead, NewEntry};
use sqlx::{Any, AnyConnection, AnyPool, Transaction};

/// An audited write transaction.
///
/// `begin` locks the audit chain head (an `UPDATE … RETURNING` on its one row, which takes a
/// row lock on PostgreSQL and the write lock on SQLite), so every audited write in the
/// database is serialised and the chain stays linear and gap-free whatever instance writes.
/// `commit` refuses a transaction that recorded nothing: no audit, no action.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    flusher: Option<std::sync::Arc<crate::durable::Flusher>>,
    head: ChainHead,
    entries: Vec<AuditEntry>,
}

impl WriteTx {
    pub(crate) async fn begin(
        pool: &AnyPool,
        flusher: Option<std::sync::Arc<crate::durable::Flusher>>,
    ) -> Result<WriteTx, StoreError> {
        let mut tx = pool.begin().await?;
        let row = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut *tx)
            .await?;
        let head = ChainHead {
            seq: get(&row, "seq")?,
            hash: get(&row, "hash")?,
        };
        Ok(WriteTx {
            tx,
            flusher,
            head,
            entries: Vec::new(),
        })
    }

    /// The connection, for the change itself.
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// Appends an audit entry to the chain, inside this transaction.
    pub async fn audit(
        &mut self,
        at: DateTime<Utc>,
        entry: NewEntry,
    ) -> Result<AuditEntry, StoreError> {
        let entry = self.head.append(at, entry);
        sqlx::query(
            "INSERT INTO audit_entries (seq, at, actor, action, resource, subject_id, details, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(entry.seq)
        .bind(entry.at.timestamp_millis())
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(entry.resource.clone())
        .bind(entry.subject_id.clone())
        .bind(serde_json::to_string(&entry.details)?)
        .bind(&entry.prev_hash)
        .bind(&entry.hash)
        .execute(&mut *self.tx)
        .await?;
        self.head = entry.head();
        self.entries.push(entry.clone());
        Ok(entry)
    }

    /// Commits the change and its audit entries together.
    pub async fn commit(mut self) -> Result<Vec<AuditEntry>, StoreError> {
        if self.entries.is_empty() {
            // INVARIANT: every committed change carries at least one audit entry.
            self.tx.rollback().await?;
            return Err(StoreError::Database(
                "refusing to commit a change without an audit entry".into(),
            ));
        }
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(self.head.seq)
            .bind(&self.head.hash)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        if let Some(f) = &self.flusher {
            f.durable().await.map_err(|e| {
                StoreError::Unavailable(format!("cannot make the commit durable: {e}"))
            })?;
        }
        Ok(self.entries)
    }
}
