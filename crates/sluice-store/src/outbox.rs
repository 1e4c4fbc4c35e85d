//! The notification outbox: rows written in the same transaction as the audit entries they
//! report (see [`OutboxRouter`] and [`crate::WriteTx::commit`]), claimed by dispatchers with a
//! lease, and marked delivered, retried later or dead.

use crate::tx::{insert_args, insert_sql, Arg};
use crate::{get, Backend, Store, StoreError};
use chrono::{DateTime, Utc};
use sluice_audit::AuditEntry;
use sluice_core::clock::{from_ms, to_ms};
use sqlx::any::AnyRow;
use std::sync::Arc;

/// A notification to be delivered to one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// The id every delivery attempt carries (`webhook-id`), so receivers de-duplicate.
    pub id: String,
    /// The configured sink's name.
    pub sink: String,
    /// The event type, e.g. `access.request.opened`.
    pub event: String,
    /// The body to deliver (JSON text), fixed once written: every attempt sends the same.
    pub payload: String,
}

/// Decides which notifications an audit entry gives rise to. Called by
/// [`crate::WriteTx::commit`] for every entry, inside the transaction: it must be quick and
/// must not fail (an entry it cannot render notifies nobody).
pub trait OutboxRouter: Send + Sync + std::fmt::Debug + 'static {
    fn route(&self, entry: &AuditEntry) -> Vec<OutboxMessage>;
}

/// Where an outbox row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    Pending,
    Delivered,
    Dead,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Delivered => "delivered",
            OutboxState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxState> {
        match s {
            "pending" => Some(OutboxState::Pending),
            "delivered" => Some(OutboxState::Delivered),
            "dead" => Some(OutboxState::Dead),
            _ => None,
        }
    }
}

/// An outbox row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: String,
    pub sink: String,
    pub event: String,
    pub audit_seq: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub payload: String,
    pub state: OutboxState,
    pub attempts: i64,
    pub next_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// The HTTP status the sink answered, if it answered.
    pub http_status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    /// What becomes of the row.
    pub then: AfterAttempt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    Delivered,
    RetryAt(DateTime<Utc>),
    Dead,
}

/// How many rows stand in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub pending: i64,
    pub delivered: i64,
    pub dead: i64,
}

const COLS: &str = "id, sink, event, audit_seq, created_at, payload, state, attempts, next_at, \
                    last_error, delivered_at";

fn row(r: &AnyRow) -> Result<OutboxRow, StoreError> {
    let state: String = get(r, "state")?;
    Ok(OutboxRow {
        id: get(r, "id")?,
        sink: get(r, "sink")?,
        event: get(r, "event")?,
        audit_seq: get(r, "audit_seq")?,
        created_at: from_ms(get(r, "created_at")?),
        payload: get(r, "payload")?,
        state: OutboxState::parse(&state)
            .ok_or_else(|| StoreError::Database(format!("unknown outbox state `{state}`")))?,
        attempts: get(r, "attempts")?,
        next_at: from_ms(get(r, "next_at")?),
        last_error: get(r, "last_error")?,
        delivered_at: get::<Option<i64>>(r, "delivered_at")?.map(from_ms),
    })
}

/// The router's slot in a [`Store`]: set once the server knows its configuration.
pub(crate) type RouterSlot = Arc<std::sync::OnceLock<Arc<dyn OutboxRouter>>>;

impl Store {
    /// Routes every audit entry committed from now on through `router` (only the first call
    /// counts).
    pub fn set_outbox_router(&self, router: Arc<dyn OutboxRouter>) {
        let _ = self.router.set(router);
    }

    /// Woken whenever this handle commits outbox rows (others' are found by polling).
    pub fn outbox_written(&self) -> Arc<tokio::sync::Notify> {
        self.outbox_notify.clone()
    }

    /// Inserts messages that no audited change carries (reminders, a failed verification);
    /// a message whose id exists already is skipped, so a reminder is written once. Returns
    /// how many were new.
    pub async fn enqueue(
        &self,
        at: DateTime<Utc>,
        messages: &[OutboxMessage],
    ) -> Result<u64, StoreError> {
        if messages.is_empty() {
            return Ok(0);
        }
        let mut args = Vec::new();
        for m in messages {
            insert_args(m, None, to_ms(at), &mut args);
        }
        let sql = insert_sql(messages.len());
        let n = self.write_untracked(&sql, args).await?;
        if n > 0 {
            self.outbox_notify.notify_waiters();
        }
        Ok(n)
    }

    /// Claims up to `limit` rows due at `now` for `owner` until `lease_until`: rows pending,
    /// due, and not leased by anyone else (or whose lease lapsed). On PostgreSQL several
    /// instances claim at once without meeting (`FOR UPDATE SKIP LOCKED`).
    pub async fn claim_outbox(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        // A read first: an idle outbox costs the poll no write transaction (and on SQLite no
        // commit in the batch).
        let due = sqlx::query(
            "SELECT 1 AS one FROM outbox WHERE state = 'pending' AND next_at <= $1 \
             AND (leased_until IS NULL OR leased_until <= $1) LIMIT 1",
        )
        .bind(to_ms(now))
        .fetch_optional(self.reader())
        .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET leased_until = $1, lease_owner = $2 WHERE id IN (\
             SELECT id FROM outbox WHERE state = 'pending' AND next_at <= $3 \
             AND (leased_until IS NULL OR leased_until <= $3) ORDER BY next_at, id LIMIT $4{lock}) \
             RETURNING {COLS}"
        );
        let args = vec![
            Arg::Int(to_ms(lease_until)),
            Arg::Text(owner.to_owned()),
            Arg::Int(to_ms(now)),
            Arg::Int(limit),
        ];
        let rows = self.write_returning(&sql, args).await?;
        let mut out = rows.iter().map(row).collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| (a.next_at, &a.id).cmp(&(b.next_at, &b.id)));
        Ok(out)
    }

    /// Records attempts on rows `owner` claimed, and what becomes of each row, in one
    /// transaction (one pass's worth: on SQLite one writer in the batch, not one per row).
    /// Returns, per attempt, false if the lease was lost meanwhile (another instance has the
    /// row; nothing is recorded for it).
    pub async fn record_attempts(
        &self,
        owner: &str,
        instance: &str,
        attempts: &[(String, Attempt)],
    ) -> Result<Vec<bool>, StoreError> {
        if attempts.is_empty() {
            return Ok(Vec::new());
        }
        match &self.batch {
            Some(batch) => {
                let (mut lease, head, access_rev) = batch.begin().await?;
                // A failure drops the lease, which rolls this writer back.
                let done = record_all(lease.conn(), owner, instance, attempts).await?;
                sqlx::query(crate::batch::KEEP)
                    .execute(lease.conn())
                    .await?;
                lease.kept(head, access_rev, Vec::new()).await?;
                Ok(done)
            }
            None => {
                let mut tx = self.writer().begin().await?;
                let done = record_all(&mut tx, owner, instance, attempts).await?;
                tx.commit().await?;
                Ok(done)
            }
        }
    }

    /// One page of rows by id (after `after`), in one state or all.
    pub async fn outbox(
        &self,
        state: Option<OutboxState>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = format!(
            "SELECT {COLS} FROM outbox WHERE ($1 IS NULL OR state = $1) AND id > $2 \
             ORDER BY id LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(state.map(|s| s.as_str().to_owned()))
            .bind(after.unwrap_or(""))
            .bind(limit.clamp(1, 1000))
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(row).collect()
    }

    /// One row, if it exists.
    pub async fn outbox_row(&self, id: &str) -> Result<Option<OutboxRow>, StoreError> {
        let sql = format!("SELECT {COLS} FROM outbox WHERE id = $1");
        let r = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        r.as_ref().map(row).transpose()
    }

    /// How many rows stand in each state.
    pub async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state")
            .fetch_all(self.reader())
            .await?;
        let mut c = OutboxCounts::default();
        for r in &rows {
            let n: i64 = get(r, "n")?;
            match get::<String>(r, "state")?.as_str() {
                "pending" => c.pending = n,
                "delivered" => c.delivered = n,
                "dead" => c.dead = n,
                _ => {}
            }
        }
        Ok(c)
    }

    /// The attempts made on a row, in order: (n, at, http status, error, duration ms).
    pub async fn outbox_attempts(&self, id: &str) -> Result<Vec<AttemptRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT n, at, instance, http_status, error, duration_ms FROM outbox_attempts \
             WHERE outbox_id = $1 ORDER BY n",
        )
        .bind(id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AttemptRow {
                    n: get(r, "n")?,
                    at: from_ms(get(r, "at")?),
                    instance: get(r, "instance")?,
                    http_status: get(r, "http_status")?,
                    error: get(r, "error")?,
                    duration_ms: get(r, "duration_ms")?,
                })
            })
            .collect()
    }

    /// A write that no audit entry records (outbox bookkeeping). On SQLite it joins the write
    /// batch like a writer without entries, sharing its commit; on PostgreSQL it is one
    /// statement. Returns the rows affected.
    async fn write_untracked(&self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        match &self.batch {
            Some(batch) => {
                let (mut lease, head, access_rev) = batch.begin().await?;
                let done = crate::tx::bind(sqlx::query(sql), args)
                    .execute(lease.conn())
                    .await?;
                sqlx::query(crate::batch::KEEP)
                    .execute(lease.conn())
                    .await?;
                lease.kept(head, access_rev, Vec::new()).await?;
                Ok(done.rows_affected())
            }
            None => Ok(crate::tx::bind(sqlx::query(sql), args)
                .execute(self.writer())
                .await?
                .rows_affected()),
        }
    }

    async fn write_returning(&self, sql: &str, args: Vec<Arg>) -> Result<Vec<AnyRow>, StoreError> {
        match &self.batch {
            Some(batch) => {
                let (mut lease, head, access_rev) = batch.begin().await?;
                let rows = crate::tx::bind(sqlx::query(sql), args)
                    .fetch_all(lease.conn())
                    .await?;
                sqlx::query(crate::batch::KEEP)
                    .execute(lease.conn())
                    .await?;
                lease.kept(head, access_rev, Vec::new()).await?;
                Ok(rows)
            }
            None => Ok(crate::tx::bind(sqlx::query(sql), args)
                .fetch_all(self.writer())
                .await?),
        }
    }
}

/// The statements of [`Store::record_attempts`], on a connection inside a transaction.
async fn record_all(
    conn: &mut sqlx::AnyConnection,
    owner: &str,
    instance: &str,
    attempts: &[(String, Attempt)],
) -> Result<Vec<bool>, StoreError> {
    let mut out = Vec::with_capacity(attempts.len());
    for (id, a) in attempts {
        let (state, next_at, delivered_at) = match a.then {
            AfterAttempt::Delivered => ("delivered", to_ms(a.at), Some(to_ms(a.at))),
            AfterAttempt::RetryAt(t) => ("pending", to_ms(t), None),
            AfterAttempt::Dead => ("dead", to_ms(a.at), None),
        };
        let row = sqlx::query(
            "UPDATE outbox SET state = $1, attempts = attempts + 1, next_at = $2, \
             delivered_at = $3, last_error = $4, leased_until = NULL, lease_owner = NULL \
             WHERE id = $5 AND lease_owner = $6 AND state = 'pending' RETURNING attempts",
        )
        .bind(state)
        .bind(next_at)
        .bind(delivered_at)
        .bind(a.error.clone())
        .bind(id)
        .bind(owner)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            out.push(false);
            continue;
        };
        let n: i64 = get(&row, "attempts")?;
        sqlx::query(
            "INSERT INTO outbox_attempts (outbox_id, n, at, instance, http_status, error, duration_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (outbox_id, n) DO NOTHING",
        )
        .bind(id)
        .bind(n)
        .bind(to_ms(a.at))
        .bind(instance)
        .bind(a.http_status)
        .bind(a.error.clone())
        .bind(a.duration_ms)
        .execute(&mut *conn)
        .await?;
        out.push(true);
    }
    Ok(out)
}

/// One recorded delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub n: i64,
    pub at: DateTime<Utc>,
    pub instance: String,
    pub http_status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

impl crate::WriteTx {
    /// Makes a dead (or pending) row due again at `now`, in this audited transaction; `None`
    /// if there is no such row, else the state it was in (a delivered row is left alone). Its
    /// attempts are kept: a retried row that fails again is dead again at once, so a manual
    /// retry is one more attempt, not another round of them.
    pub async fn retry_outbox(
        &mut self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OutboxState>, StoreError> {
        let r = sqlx::query("SELECT state FROM outbox WHERE id = $1")
            .bind(id)
            .fetch_optional(self.conn().await?)
            .await?;
        let Some(r) = r else { return Ok(None) };
        let state: String = get(&r, "state")?;
        let state = OutboxState::parse(&state)
            .ok_or_else(|| StoreError::Database(format!("unknown outbox state `{state}`")))?;
        if state != OutboxState::Delivered {
            sqlx::query(
                "UPDATE outbox SET state = 'pending', next_at = $1, \
                 leased_until = NULL, lease_owner = NULL WHERE id = $2",
            )
            .bind(to_ms(now))
            .bind(id)
            .execute(self.conn().await?)
            .await?;
        }
        Ok(Some(state))
    }
}
