//! Console sign-ins in progress (`pending_sign_ins`): written when the browser is sent to the
//! identity provider, taken once when its answer comes back, on whichever instance. Not
//! audited: nothing is decided until the answer is verified, and that is audited.

use crate::{get, Store, StoreError};
use chrono::{DateTime, Utc};
use sluice_core::clock::{from_ms, to_ms};

/// A sign-in in progress, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSignIn {
    /// SHA-256 (hex) of the `state` sent to the identity provider.
    pub state_hash: String,
    /// SHA-256 (hex) of the cookie of the browser that started it.
    pub browser: String,
    /// What only the server may know (PKCE verifier, nonce), sealed by the caller.
    pub sealed: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Keeps a sign-in in progress, and sweeps those expired at `now`.
    pub async fn put_pending_sign_in(
        &self,
        p: &PendingSignIn,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer().begin().await?;
        sqlx::query("DELETE FROM pending_sign_ins WHERE expires_at <= $1")
            .bind(to_ms(now))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO pending_sign_ins (state_hash, browser, sealed, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&p.state_hash)
        .bind(&p.browser)
        .bind(&p.sealed)
        .bind(to_ms(p.created_at))
        .bind(to_ms(p.expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes the sign-in under `state_hash` — deleting it, so only one answer ever uses it —
    /// if it has not expired at `now`. `None` when there is none (never started, taken
    /// already, or expired).
    pub async fn take_pending_sign_in(
        &self,
        state_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingSignIn>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM pending_sign_ins WHERE state_hash = $1 \
             RETURNING state_hash, browser, sealed, created_at, expires_at",
        )
        .bind(state_hash)
        .fetch_optional(self.writer())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let p = PendingSignIn {
            state_hash: get(&row, "state_hash")?,
            browser: get(&row, "browser")?,
            sealed: get(&row, "sealed")?,
            created_at: from_ms(get(&row, "created_at")?),
            expires_at: from_ms(get(&row, "expires_at")?),
        };
        // INVARIANT: an expired sign-in is refused even if no sweep has run yet.
        Ok((p.expires_at > now).then_some(p))
    }
}
