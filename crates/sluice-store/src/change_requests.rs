//! Change requests: proposed flag changes waiting for approval (or for their time).

use crate::{get, Store, StoreError, WriteTx};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_core::change_request::ChangeRequestStatus;
use sluice_core::clock::{from_ms, to_ms};
use sqlx::any::AnyRow;

/// One change request as stored: lookup columns plus the whole request as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChangeRequest {
    pub id: String,
    pub environment: String,
    pub key: String,
    pub proposer: String,
    /// As recorded; a pending request past `pending_until` is timed out whether or not
    /// background work has recorded it yet.
    pub status: ChangeRequestStatus,
    pub created_at: DateTime<Utc>,
    pub pending_until: DateTime<Utc>,
    pub apply_at: Option<DateTime<Utc>>,
    pub body: Value,
}

const COLS: &str =
    "id, environment, key, proposer, status, created_at, pending_until, apply_at, body";

fn status(s: &str) -> Result<ChangeRequestStatus, StoreError> {
    ChangeRequestStatus::parse(s).ok_or_else(|| {
        StoreError::Corrupt(format!("a change request has the unknown status `{s}`"))
    })
}

fn row(r: &AnyRow) -> Result<StoredChangeRequest, StoreError> {
    let body: String = get(r, "body")?;
    Ok(StoredChangeRequest {
        id: get(r, "id")?,
        environment: get(r, "environment")?,
        key: get(r, "key")?,
        proposer: get(r, "proposer")?,
        status: status(&get::<String>(r, "status")?)?,
        created_at: from_ms(get(r, "created_at")?),
        pending_until: from_ms(get(r, "pending_until")?),
        apply_at: get::<Option<i64>>(r, "apply_at")?.map(from_ms),
        body: serde_json::from_str(&body)?,
    })
}

impl Store {
    pub async fn change_request(
        &self,
        id: &str,
    ) -> Result<Option<StoredChangeRequest>, StoreError> {
        let r = sqlx::query(&format!("SELECT {COLS} FROM change_requests WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        r.as_ref().map(row).transpose()
    }

    /// Change requests, newest first, optionally of one environment and recorded statuses.
    pub async fn change_requests(
        &self,
        environment: Option<&str>,
        statuses: &[ChangeRequestStatus],
        limit: i64,
    ) -> Result<Vec<StoredChangeRequest>, StoreError> {
        let sql = format!(
            "SELECT {COLS} FROM change_requests WHERE ($1 IS NULL OR environment = $1) \
             ORDER BY created_at DESC, id DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(environment.map(str::to_owned))
            .fetch_all(self.reader())
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            let c = row(r)?;
            if statuses.is_empty() || statuses.contains(&c.status) {
                out.push(c);
            }
            if out.len() as i64 >= limit.clamp(1, 1000) {
                break;
            }
        }
        Ok(out)
    }

    /// Ids of change requests with something due at `now`: a pending one whose time is up,
    /// or an approved one whose apply time has come.
    pub async fn due_change_requests(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM change_requests WHERE (status = 'pending' AND pending_until <= $1) \
             OR (status = 'approved' AND apply_at <= $1) ORDER BY id LIMIT $2",
        )
        .bind(to_ms(now))
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(|r| get(r, "id")).collect()
    }
}

impl WriteTx {
    pub async fn insert_change_request(
        &mut self,
        c: &StoredChangeRequest,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO change_requests ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&c.id)
        .bind(&c.environment)
        .bind(&c.key)
        .bind(&c.proposer)
        .bind(c.status.as_str())
        .bind(to_ms(c.created_at))
        .bind(to_ms(c.pending_until))
        .bind(c.apply_at.map(to_ms))
        .bind(serde_json::to_string(&c.body)?)
        .execute(self.conn().await?)
        .await?;
        Ok(())
    }

    /// Reads a change request for update (locked until commit).
    pub async fn lock_change_request(
        &mut self,
        id: &str,
    ) -> Result<Option<StoredChangeRequest>, StoreError> {
        let sql =
            format!("UPDATE change_requests SET status = status WHERE id = $1 RETURNING {COLS}");
        let r = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.conn().await?)
            .await?;
        r.as_ref().map(row).transpose()
    }

    pub async fn update_change_request(
        &mut self,
        c: &StoredChangeRequest,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE change_requests SET status = $1, apply_at = $2, body = $3 WHERE id = $4",
        )
        .bind(c.status.as_str())
        .bind(c.apply_at.map(to_ms))
        .bind(serde_json::to_string(&c.body)?)
        .bind(&c.id)
        .execute(self.conn().await?)
        .await?;
        Ok(())
    }

    /// Records a vote; the key makes a second vote by the same approver fail.
    pub async fn insert_change_request_vote(
        &mut self,
        request_id: &str,
        approver: &str,
        approve: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO change_request_votes (request_id, approver, approve, at) VALUES ($1, $2, $3, $4)",
        )
        .bind(request_id)
        .bind(approver)
        .bind(i64::from(approve))
        .bind(to_ms(at))
        .execute(self.conn().await?)
        .await?;
        Ok(())
    }
}
