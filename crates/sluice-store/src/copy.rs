//! `sluice store copy`: move a whole installation between backends, audit trail included.

use crate::{Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

/// Tables in foreign-key order, with their columns. Singleton rows (`audit_head`,
/// `sluice_state`) are updated rather than inserted.
const TABLES: &[(&str, &[&str])] = &[
    (
        "principals",
        &[
            "name",
            "kind",
            "admin",
            "source",
            "created_at",
            "idp_groups",
        ],
    ),
    (
        "tokens",
        &[
            "id",
            "principal",
            "kind",
            "environment",
            "name",
            "hash",
            "created_at",
            "expires_at",
            "revoked_at",
            "context",
            "database",
        ],
    ),
    (
        "policies",
        &["version", "hash", "source", "applied_at", "applied_by"],
    ),
    (
        "requests",
        &[
            "id",
            "requester",
            "entitlement",
            "status",
            "needs_review",
            "created_at",
            "pending_until",
            "expires_at",
            "body",
        ],
    ),
    ("votes", &["request_id", "approver", "approve", "at"]),
    (
        "audit_entries",
        &[
            "seq",
            "at",
            "actor",
            "action",
            "resource",
            "subject_id",
            "details",
            "prev_hash",
            "hash",
            "format",
        ],
    ),
    (
        "audit_checkpoints",
        &["seq", "hash", "at", "key_id", "signature"],
    ),
    (
        "flag_environments",
        &["name", "revision", "document", "updated_at", "updated_by"],
    ),
    (
        "flags",
        &[
            "environment",
            "key",
            "position",
            "revision",
            "definition",
            "updated_at",
            "updated_by",
        ],
    ),
    ("flag_layers", &["environment", "key", "body", "updated_at"]),
    (
        "scheduled_changes",
        &[
            "id",
            "environment",
            "key",
            "change",
            "apply_at",
            "created_by",
            "created_at",
            "status",
            "result",
        ],
    ),
    (
        "change_requests",
        &[
            "id",
            "environment",
            "key",
            "proposer",
            "status",
            "created_at",
            "pending_until",
            "apply_at",
            "body",
        ],
    ),
    (
        "change_request_votes",
        &["request_id", "approver", "approve", "at"],
    ),
    (
        "gateway_sessions",
        &[
            "id",
            "principal",
            "database_name",
            "action",
            "role",
            "grant_id",
            "client_addr",
            "started_at",
            "expires_at",
            "ended_at",
            "end_reason",
            "bytes_in",
            "bytes_out",
            "statements",
            "log_hash",
            "kill_requested_by",
            "instance",
        ],
    ),
    (
        "gateway_statements",
        &["session_id", "seq", "at", "kind", "text", "params"],
    ),
    (
        "gateway_statement_chunks",
        &["session_id", "first_seq", "last_seq", "body"],
    ),
    ("gateway_instances", &["id", "seen_at"]),
    (
        "http_calls",
        &[
            "batch_seq",
            "pos",
            "call_id",
            "event",
            "at",
            "principal",
            "resource",
            "details",
        ],
    ),
    (
        "gateway_databases",
        &["name", "spec", "declared_at", "declared_by"],
    ),
    (
        "http_services",
        &["name", "spec", "declared_at", "declared_by"],
    ),
    (
        "outbox",
        &[
            "id",
            "sink",
            "event",
            "audit_seq",
            "created_at",
            "payload",
            "state",
            "attempts",
            "next_at",
            "leased_until",
            "lease_owner",
            "last_error",
            "delivered_at",
        ],
    ),
    (
        "outbox_attempts",
        &[
            "outbox_id",
            "n",
            "at",
            "instance",
            "http_status",
            "error",
            "duration_ms",
        ],
    ),
    (
        "idp_sessions",
        &[
            "token_id",
            "principal",
            "sealed_refresh_token",
            "created_at",
            "refreshed_at",
        ],
    ),
    (
        "pending_sign_ins",
        &[
            "state_hash",
            "browser",
            "sealed",
            "created_at",
            "expires_at",
        ],
    ),
];

#[derive(Debug, Clone)]
enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
}

/// Columns declared BIGINT in the migrations; every other column is TEXT.
const INT_COLUMNS: &[&str] = &[
    "admin",
    "refreshed_at",
    "created_at",
    "expires_at",
    "revoked_at",
    "version",
    "applied_at",
    "needs_review",
    "pending_until",
    "approve",
    "at",
    "seq",
    "first_seq",
    "last_seq",
    "revision",
    "updated_at",
    "position",
    "apply_at",
    "started_at",
    "ended_at",
    "bytes_in",
    "bytes_out",
    "statements",
    "format",
    "batch_seq",
    "pos",
    "audit_seq",
    "attempts",
    "next_at",
    "leased_until",
    "delivered_at",
    "n",
    "http_status",
    "duration_ms",
];

fn cell(row: &AnyRow, col: &str) -> Result<Cell, StoreError> {
    // SQLite will happily read text as an integer, so go by the schema, not by trying.
    if INT_COLUMNS.contains(&col) {
        Ok(Cell::Int(row.try_get::<Option<i64>, _>(col)?))
    } else {
        Ok(Cell::Text(row.try_get::<Option<String>, _>(col)?))
    }
}

/// What was copied, per table.
#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    pub rows: Vec<(String, u64)>,
}

impl Store {
    /// Copies everything from `self` into `target`, which must be empty, in one transaction.
    pub async fn copy_into(&self, target: &Store) -> Result<CopyReport, StoreError> {
        let entries = target.audit_head().await?.seq;
        if entries != 0 || target.principal_count().await? != 0 {
            return Err(StoreError::Conflict(format!(
                "the target store is not empty ({entries} audit entries); copy into a new, empty database"
            )));
        }
        let mut report = CopyReport::default();
        let mut tx = target.writer().begin().await?;
        for (table, cols) in TABLES {
            let select = format!("SELECT {} FROM {table}", cols.join(", "));
            let rows = sqlx::query(&select).fetch_all(self.reader()).await?;
            let marks: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
            let insert = format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                cols.join(", "),
                marks.join(", ")
            );
            for row in &rows {
                let mut q = sqlx::query(&insert);
                for col in cols.iter() {
                    q = match cell(row, col)? {
                        Cell::Int(v) => q.bind(v),
                        Cell::Text(v) => q.bind(v),
                    };
                }
                q.execute(&mut *tx).await?;
            }
            report.rows.push(((*table).to_owned(), rows.len() as u64));
        }
        let head = self.audit_head().await?;
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(head.seq)
            .bind(&head.hash)
            .execute(&mut *tx)
            .await?;
        let revs = self.state_revs().await?;
        sqlx::query("UPDATE sluice_state SET access_rev = $1, flags_rev = $2 WHERE id = 1")
            .bind(revs.access)
            .bind(revs.flags)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(report)
    }
}
