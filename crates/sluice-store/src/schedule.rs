use crate::{get, Store, StoreError, WriteTx};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_core::clock::{from_ms, to_ms};
use sqlx::any::AnyRow;

/// A flag change to apply later.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledChange {
    pub id: String,
    pub environment: String,
    pub key: String,
    /// `{"change": …, "base_revision": …}`.
    pub change: Value,
    pub apply_at: DateTime<Utc>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub status: ScheduledStatus,
    pub result: Option<String>,
}

/// Where a scheduled change is, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduledStatus {
    Pending,
    Applied,
    Refused,
    Cancelled,
}

impl ScheduledStatus {
    /// As stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Applied => "applied",
            Self::Refused => "refused",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(Self::Pending),
            "applied" => Ok(Self::Applied),
            "refused" => Ok(Self::Refused),
            "cancelled" => Ok(Self::Cancelled),
            other => Err(StoreError::Corrupt(format!(
                "a scheduled change has the unknown status `{other}`"
            ))),
        }
    }
}

const COLS: &str = "id, environment, key, change, apply_at, created_by, created_at, status, result";

fn row(r: &AnyRow) -> Result<ScheduledChange, StoreError> {
    let change: String = get(r, "change")?;
    Ok(ScheduledChange {
        id: get(r, "id")?,
        environment: get(r, "environment")?,
        key: get(r, "key")?,
        change: serde_json::from_str(&change)?,
        apply_at: from_ms(get(r, "apply_at")?),
        created_by: get(r, "created_by")?,
        created_at: from_ms(get(r, "created_at")?),
        status: ScheduledStatus::parse(&get::<String>(r, "status")?)?,
        result: get(r, "result")?,
    })
}

impl Store {
    pub async fn scheduled_changes(
        &self,
        environment: Option<&str>,
    ) -> Result<Vec<ScheduledChange>, StoreError> {
        let sql = format!("SELECT {COLS} FROM scheduled_changes WHERE ($1 IS NULL OR environment = $1) ORDER BY apply_at, id");
        let rows = sqlx::query(&sql)
            .bind(environment.map(str::to_owned))
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(row).collect()
    }

    /// Ids of pending changes due at `now`.
    pub async fn due_changes(&self, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id FROM scheduled_changes WHERE status = 'pending' AND apply_at <= $1 ORDER BY apply_at, id LIMIT 100")
            .bind(to_ms(now))
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(|r| get(r, "id")).collect()
    }
}

impl WriteTx {
    pub async fn insert_scheduled(&mut self, c: &ScheduledChange) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO scheduled_changes ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&c.id)
        .bind(&c.environment)
        .bind(&c.key)
        .bind(serde_json::to_string(&c.change)?)
        .bind(to_ms(c.apply_at))
        .bind(&c.created_by)
        .bind(to_ms(c.created_at))
        .bind(c.status.as_str())
        .bind(c.result.clone())
        .execute(self.conn().await?)
        .await?;
        Ok(())
    }

    /// Locks a scheduled change that is still pending; `None` if it is gone or settled.
    pub async fn claim_scheduled(
        &mut self,
        id: &str,
    ) -> Result<Option<ScheduledChange>, StoreError> {
        let sql = format!("UPDATE scheduled_changes SET status = status WHERE id = $1 AND status = 'pending' RETURNING {COLS}");
        let r = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.conn().await?)
            .await?;
        r.as_ref().map(row).transpose()
    }

    pub async fn settle_scheduled(
        &mut self,
        id: &str,
        status: ScheduledStatus,
        result: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE scheduled_changes SET status = $1, result = $2 WHERE id = $3")
            .bind(status.as_str())
            .bind(result)
            .bind(id)
            .execute(self.conn().await?)
            .await?;
        Ok(())
    }
}
