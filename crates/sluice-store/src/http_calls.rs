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

/// A batch's rows go in as one JSON array (`[pos, call_id, event, at, principal, resource,
/// details]` per row) in one statement whose text never changes: a statement per 16 rows, the
/// last one of any length, was parsed and prepared again for every batch (its text differed),
/// and SQLite finds each of a statement's many parameters by a linear scan of their names.
const INSERT_SQLITE: &str = "INSERT INTO http_calls \
    (batch_seq, pos, call_id, event, at, principal, resource, details) \
    SELECT $1, json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
    json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'), \
    json_extract(value, '$[5]'), json_extract(value, '$[6]') FROM json_each($2)";
const INSERT_PG: &str = "INSERT INTO http_calls \
    (batch_seq, pos, call_id, event, at, principal, resource, details) \
    SELECT $1, (r->>0)::bigint, r->>1, r->>2, (r->>3)::bigint, r->>4, r->>5, r->>6 \
    FROM jsonb_array_elements($2::jsonb) AS r";

impl WriteTx {
    /// Writes a batch of call records in this transaction, whose audit entry seals them. Every
    /// row carries the same `batch_seq` (the sealing entry's).
    pub async fn insert_http_calls(&mut self, rows: &[CallRow]) -> Result<(), StoreError> {
        let Some(first) = rows.first() else {
            return Ok(());
        };
        let seq = first.batch_seq;
        if rows.iter().any(|r| r.batch_seq != seq) {
            return Err(StoreError::Database(
                "the call records of one batch must be sealed by one entry".into(),
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
        let sql = if self.is_pg() {
            INSERT_PG
        } else {
            INSERT_SQLITE
        };
        self.exec(sql, vec![Arg::Int(seq), Arg::Text(json)]).await
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
