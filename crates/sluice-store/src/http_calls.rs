//! The HTTP gateway's call log (see `migrations/0013_http_calls.sql`): rows written in the
//! transaction of the audit entry that seals their batch, read back per service or per batch.

use crate::tx::{bind, Arg};
use crate::{get, Store, StoreError, WriteTx};
use sqlx::any::AnyRow;

/// One record of a call, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    /// The `seq` of the entry sealing its batch.
    pub batch_seq: i64,
    /// Its place in the batch, from 0.
    pub pos: i64,
    pub call_id: String,
    /// `admitted`, `ended` or `refused`.
    pub event: String,
    /// Milliseconds since the epoch.
    pub at: i64,
    pub principal: String,
    pub resource: String,
    /// JSON text.
    pub details: String,
}

impl CallRow {
    pub fn record(&self) -> sluice_audit::call_log::CallRecord<'_> {
        sluice_audit::call_log::CallRecord {
            pos: self.pos,
            call: &self.call_id,
            event: &self.event,
            at: self.at,
            principal: &self.principal,
            resource: &self.resource,
            details: &self.details,
        }
    }
}

const COLS: &str = "batch_seq, pos, call_id, event, at, principal, resource, details";

/// Rows per `INSERT` on SQLite. Few: SQLite finds a parameter's name by a linear scan of the
/// statement's names, and sqlx asks for each one, so binding costs grow with the square of a
/// statement's parameters (at 100 rows, 800 parameters, it took 14% of a busy gateway's CPU).
const ROWS_PER_INSERT: usize = 16;
const ARGS: usize = 8;

/// SQLite: the `INSERT` of [`ROWS_PER_INSERT`] rows and the one of a single row. Their text never
/// changes, so each is prepared once per connection and kept (sqlx's statement cache); run
/// one by one, not joined to the batch's other statements, whose joined text differs from batch
/// to batch and was parsed and prepared again every time.
static INSERT_CHUNK: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| insert_sql(ROWS_PER_INSERT));
static INSERT_ONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| insert_sql(1));

fn insert_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let params: Vec<String> = (1..=ARGS).map(|c| format!("${}", r * ARGS + c)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO http_calls ({COLS}) VALUES {}",
        values.join(", ")
    )
}

/// PostgreSQL: a batch's rows as one JSON array (`[pos, call_id, event, at, principal,
/// resource, details]` per row) in one statement of fixed text, sent with the batch's other
/// statements in one round trip.
const INSERT_PG: &str = "INSERT INTO http_calls \
    (batch_seq, pos, call_id, event, at, principal, resource, details) \
    SELECT $1, (r->>0)::bigint, r->>1, r->>2, (r->>3)::bigint, r->>4, r->>5, r->>6 \
    FROM jsonb_array_elements($2::jsonb) AS r";

impl WriteTx {
    /// Writes a batch of call records in this transaction, sealed by the audit entry it
    /// appended last: every row's `batch_seq` is that entry's `seq`, whatever the rows carry
    /// (in a PostgreSQL batch it is known only at the commit; see `WriteTx::exec_sealed`).
    pub async fn insert_http_calls(&mut self, rows: &[CallRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        if self.is_pg() {
            // Written at the commit with every writer of the batch: rows `jsonb` cannot hold
            // (a NUL character) fail this writer now, not all of them then.
            let nul = |t: &str| t.contains('\0');
            if rows.iter().any(|r| {
                nul(&r.call_id)
                    || nul(&r.event)
                    || nul(&r.principal)
                    || nul(&r.resource)
                    || nul(&r.details)
            }) {
                return Err(StoreError::Database(
                    "a call record cannot hold a NUL character".into(),
                ));
            }
            let tuples: Vec<_> = rows
                .iter()
                .map(|r| {
                    (
                        r.pos,
                        &r.call_id,
                        &r.event,
                        r.at,
                        &r.principal,
                        &r.resource,
                        &r.details,
                    )
                })
                .collect();
            let json = serde_json::to_string(&tuples)
                .map_err(|e| StoreError::Database(format!("encoding call records: {e}")))?;
            return self.exec_sealed(INSERT_PG, vec![Arg::Text(json)]).await;
        }
        let seq = self.sealing_seq().ok_or_else(|| {
            StoreError::Database("call records need the entry that seals them first".into())
        })?;
        let conn = self.conn().await?;
        let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
        for chunk in chunks.by_ref() {
            bind(sqlx::query(INSERT_CHUNK.as_str()), args(seq, chunk))
                .execute(&mut *conn)
                .await?;
        }
        for row in chunks.remainder() {
            bind(
                sqlx::query(INSERT_ONE.as_str()),
                args(seq, std::slice::from_ref(row)),
            )
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

fn args(seq: i64, rows: &[CallRow]) -> Vec<Arg> {
    let mut args = Vec::with_capacity(rows.len() * ARGS);
    for row in rows {
        args.extend([
            Arg::Int(seq),
            Arg::Int(row.pos),
            Arg::Text(row.call_id.clone()),
            Arg::Text(row.event.clone()),
            Arg::Int(row.at),
            Arg::Text(row.principal.clone()),
            Arg::Text(row.resource.clone()),
            Arg::Text(row.details.clone()),
        ]);
    }
    args
}

fn call_row(r: &AnyRow) -> Result<CallRow, StoreError> {
    Ok(CallRow {
        batch_seq: get(r, "batch_seq")?,
        pos: get(r, "pos")?,
        call_id: get(r, "call_id")?,
        event: get(r, "event")?,
        at: get(r, "at")?,
        principal: get(r, "principal")?,
        resource: get(r, "resource")?,
        details: get(r, "details")?,
    })
}

impl Store {
    /// The newest `limit` records of `event`s on `resource` (of `principal` only, if given),
    /// newest first.
    pub async fn http_calls(
        &self,
        resource: &str,
        events: &[&str],
        principal: Option<&str>,
        limit: i64,
    ) -> Result<Vec<CallRow>, StoreError> {
        let events = events
            .iter()
            .filter(|e| e.bytes().all(|b| b.is_ascii_lowercase()))
            .map(|e| format!("'{e}'"))
            .collect::<Vec<_>>()
            .join(", ");
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let by = if principal.is_some() {
            "AND principal = $3"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {COLS} FROM http_calls WHERE resource = $1 AND event IN ({events}) {by} \
             ORDER BY batch_seq DESC, pos DESC LIMIT $2"
        );
        let mut q = sqlx::query(&sql).bind(resource).bind(limit);
        if let Some(p) = principal {
            q = q.bind(p);
        }
        let rows = q.fetch_all(self.reader()).await?;
        rows.iter().map(call_row).collect()
    }

    /// The records of the batch sealed by the entry `batch_seq`, in order.
    pub async fn http_call_batch(&self, batch_seq: i64) -> Result<Vec<CallRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM http_calls WHERE batch_seq = $1 ORDER BY pos"
        ))
        .bind(batch_seq)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(call_row).collect()
    }

    /// Up to `limit` batch numbers of stored records that no `http.calls.recorded` entry seals.
    pub async fn unsealed_http_call_batches(&self, limit: i64) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT h.batch_seq FROM http_calls h WHERE NOT EXISTS \
             (SELECT 1 FROM audit_entries a WHERE a.seq = h.batch_seq \
              AND a.action = 'http.calls.recorded') ORDER BY h.batch_seq LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(|r| get(r, "batch_seq")).collect()
    }
}

/// The hash of a batch of records, as its sealing entry records it (rows in `pos` order).
pub fn http_call_batch_hash(rows: &[CallRow]) -> String {
    sluice_audit::call_log::batch_hash(rows.iter().map(CallRow::record))
}
