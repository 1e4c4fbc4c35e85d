//! The HTTP gateway's call log (see `migrations/0013_http_calls.sql`): rows written in the
//! transaction of the audit entry that seals their batch, read back per service or per batch.

use crate::tx::Arg;
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
const ARGS: usize = 8;
/// Rows per `INSERT`. Few: SQLite finds a parameter's name by a linear scan of the statement's
/// names, and sqlx asks for each one, so binding costs grow with the square of a statement's
/// parameters (at 100 rows, 800 parameters, it took 14% of a busy gateway's CPU).
const ROWS_PER_INSERT: usize = 16;

impl WriteTx {
    /// Writes a batch of call records in this transaction, whose audit entry seals them.
    pub async fn insert_http_calls(&mut self, rows: &[CallRow]) -> Result<(), StoreError> {
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let mut sql = format!("INSERT INTO http_calls ({COLS}) VALUES ");
            let mut args = Vec::with_capacity(chunk.len() * ARGS);
            for (r, row) in chunk.iter().enumerate() {
                if r > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                for c in 1..=ARGS {
                    if c > 1 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("${}", r * ARGS + c));
                }
                sql.push(')');
                args.extend([
                    Arg::Int(row.batch_seq),
                    Arg::Int(row.pos),
                    Arg::Text(row.call_id.clone()),
                    Arg::Text(row.event.clone()),
                    Arg::Int(row.at),
                    Arg::Text(row.principal.clone()),
                    Arg::Text(row.resource.clone()),
                    Arg::Text(row.details.clone()),
                ]);
            }
            self.exec_owned(sql, args).await?;
        }
        Ok(())
    }
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
