//! Flag insight: evaluation counts per environment, flag, variant, reason and day, and when
//! each client key last evaluated. Added in batches by the server's flusher; not audited (they
//! are telemetry, and no answer depends on them).

use crate::{get, Store, StoreError};
use chrono::{DateTime, Utc};
use sluice_core::clock::{from_ms, to_ms};

/// Evaluations of one flag answered with one variant for one reason on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationCount {
    pub environment: String,
    pub flag_key: String,
    /// Empty when the answer named no variant.
    pub variant: String,
    pub reason: String,
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub count: i64,
    pub last_at: DateTime<Utc>,
}

/// Evaluations by one client key since the last flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEvaluations {
    pub token_id: String,
    pub environment: String,
    pub count: i64,
    pub last_at: DateTime<Utc>,
}

/// One flag's evaluations with one variant for one reason, summed over a range of days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationTotal {
    pub flag_key: String,
    pub variant: String,
    pub reason: String,
    pub count: i64,
    /// The first day with an evaluation in the range.
    pub first_day: i64,
    pub last_at: DateTime<Utc>,
}

/// The day (since 1970-01-01, UTC) of a moment.
pub fn day_of(at: DateTime<Utc>) -> i64 {
    to_ms(at).div_euclid(86_400_000)
}

/// Midnight (UTC) starting a day.
pub fn day_start(day: i64) -> DateTime<Utc> {
    from_ms(day.saturating_mul(86_400_000))
}

impl Store {
    /// Adds a batch of counts, in one transaction: rows are summed with what is stored, and
    /// the later `last_at` kept.
    pub async fn add_evaluations(
        &self,
        counts: &[EvaluationCount],
        clients: &[ClientEvaluations],
    ) -> Result<(), StoreError> {
        if counts.is_empty() && clients.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer().begin().await?;
        for c in counts {
            sqlx::query(
                "INSERT INTO flag_evaluations (environment, flag_key, variant, reason, day, count, last_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (environment, flag_key, variant, reason, day) DO UPDATE SET \
                 count = flag_evaluations.count + excluded.count, \
                 last_at = CASE WHEN excluded.last_at > flag_evaluations.last_at \
                 THEN excluded.last_at ELSE flag_evaluations.last_at END",
            )
            .bind(&c.environment)
            .bind(&c.flag_key)
            .bind(&c.variant)
            .bind(&c.reason)
            .bind(c.day)
            .bind(c.count)
            .bind(to_ms(c.last_at))
            .execute(&mut *tx)
            .await?;
        }
        for c in clients {
            sqlx::query(
                "INSERT INTO client_evaluations (token_id, environment, count, last_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (token_id) DO UPDATE SET \
                 count = client_evaluations.count + excluded.count, \
                 last_at = CASE WHEN excluded.last_at > client_evaluations.last_at \
                 THEN excluded.last_at ELSE client_evaluations.last_at END",
            )
            .bind(&c.token_id)
            .bind(&c.environment)
            .bind(c.count)
            .bind(to_ms(c.last_at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// An environment's evaluations from day `since_day` on (all of them with `i64::MIN`),
    /// summed per flag, variant and reason; ordered by flag, then most evaluated first.
    pub async fn evaluation_totals(
        &self,
        environment: &str,
        since_day: i64,
    ) -> Result<Vec<EvaluationTotal>, StoreError> {
        let rows = sqlx::query(
            "SELECT flag_key, variant, reason, CAST(SUM(count) AS BIGINT) AS total, \
             MIN(day) AS first_day, MAX(last_at) AS last_at FROM flag_evaluations \
             WHERE environment = $1 AND day >= $2 GROUP BY flag_key, variant, reason \
             ORDER BY flag_key, total DESC, variant, reason",
        )
        .bind(environment)
        .bind(since_day)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EvaluationTotal {
                    flag_key: get(r, "flag_key")?,
                    variant: get(r, "variant")?,
                    reason: get(r, "reason")?,
                    count: get(r, "total")?,
                    first_day: get(r, "first_day")?,
                    last_at: from_ms(get(r, "last_at")?),
                })
            })
            .collect()
    }

    /// The client keys that evaluated in an environment, most recent first.
    pub async fn client_evaluations(
        &self,
        environment: &str,
    ) -> Result<Vec<ClientEvaluations>, StoreError> {
        let rows = sqlx::query(
            "SELECT token_id, environment, count, last_at FROM client_evaluations \
             WHERE environment = $1 ORDER BY last_at DESC, token_id",
        )
        .bind(environment)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ClientEvaluations {
                    token_id: get(r, "token_id")?,
                    environment: get(r, "environment")?,
                    count: get(r, "count")?,
                    last_at: from_ms(get(r, "last_at")?),
                })
            })
            .collect()
    }

    /// When each flag of an environment was last written (created or changed).
    pub async fn flag_updated_at(
        &self,
        environment: &str,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let rows = sqlx::query("SELECT key, updated_at FROM flags WHERE environment = $1")
            .bind(environment)
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| Ok((get(r, "key")?, from_ms(get(r, "updated_at")?))))
            .collect()
    }
}
