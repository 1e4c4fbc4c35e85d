use crate::app::{new_id, App};
use crate::auth::Caller;
use crate::error::ApiError;
use chrono::{DateTime, Utc};
use serde_json::json;
use sluice_audit::NewEntry;
use sluice_core::duration::Duration;
use sluice_core::token::{SecretToken, TokenKind};
use sluice_store::TokenRow;

/// How long a connection password lasts unless asked otherwise, and at most.
pub const DB_PASSWORD_TTL: Duration = Duration::from_secs(10 * 60);
pub const DB_PASSWORD_MAX_TTL: Duration = Duration::from_secs(60 * 60);

/// A connection password, shown once.
pub struct DbPassword {
    pub secret: SecretToken,
    pub token_id: String,
    pub expires_at: DateTime<Utc>,
    pub grant_id: String,
}

impl App {
    /// Issues a short-lived password that opens gateway sessions on `database` as the
    /// caller: only with a live grant on `db:<database>`, for at most `ttl` and never past
    /// that grant's end. It opens sessions only — the grant still decides each one — and is
    /// refused everywhere on the HTTP API. Audited; revoked with the caller's tokens.
    pub async fn issue_db_password(
        &self,
        caller: &Caller,
        database: &str,
        ttl: Option<Duration>,
    ) -> Result<DbPassword, ApiError> {
        let database = sluice_core::scope::normalize(database);
        sluice_core::policy::check_name("database", &database)
            .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
        let ttl = ttl.unwrap_or(DB_PASSWORD_TTL);
        if ttl > DB_PASSWORD_MAX_TTL {
            return Err(ApiError::bad_request(
                "invalid_duration",
                format!("a connection password lasts at most {DB_PASSWORD_MAX_TTL} (asked: {ttl})"),
            ));
        }
        let resource = format!("db:{database}");
        let now = self.now();
        let grant = {
            let snap = self.access.load();
            match snap.longest_grant_on(&caller.name, &resource, now) {
                Some(g) => (g.id.clone(), g.expires_at),
                None => {
                    // The gateway's own refusal, word for word: nothing here says whether
                    // the database is declared.
                    let hint = snap.request_hint(&resource);
                    return Err(ApiError::Forbidden(format!(
                        "no live grant allows {} to connect to {resource}; {hint}",
                        caller.name
                    )));
                }
            }
        };
        let (grant_id, grant_ends) = grant;
        let expires_at = (now + ttl.delta()).min(grant_ends);
        let secret = SecretToken::generate(TokenKind::Db, &mut rand::rngs::OsRng);
        let row = TokenRow {
            id: new_id("tok"),
            principal: caller.name.clone(),
            kind: TokenKind::Db.as_str().into(),
            environment: None,
            name: format!("db connect {database}"),
            created_at: now,
            expires_at: Some(expires_at),
            revoked_at: None,
            context: None,
            database: Some(database.clone()),
        };
        let mut tx = self.store.begin().await?;
        tx.insert_token(&row, &secret.hash()).await?;
        let rev = tx.bump_access().await?;
        tx.audit(
            now,
            NewEntry::new(&caller.name, "gateway.password.issued")
                .resource(&resource)
                .subject_id(&row.id)
                .details(json!({
                    "token_id": row.id, "grant_id": grant_id, "expires_at": expires_at,
                })),
        )
        .await?;
        tx.commit().await?;
        self.apply_local(&[], rev).await;
        Ok(DbPassword {
            secret,
            token_id: row.id,
            expires_at,
            grant_id,
        })
    }

    /// Ends a live gateway session (administrators). Recorded before the session is told.
    pub async fn kill_session(&self, caller: &Caller, id: &str) -> Result<(), ApiError> {
        caller.require_admin()?;
        let live = self.gateway.get(id).ok_or_else(|| {
            ApiError::NotFound(format!("no live gateway session {id} on this instance"))
        })?;
        let mut tx = self.store.begin().await?;
        tx.audit(
            self.now(),
            NewEntry::new(&caller.name, "gateway.session.killed")
                .resource(format!("db:{}", live.database))
                .subject_id(id)
                .details(
                    json!({"session": id, "principal": live.principal, "grant_id": live.grant_id}),
                ),
        )
        .await?;
        tx.commit().await?;
        live.kill(&caller.name);
        Ok(())
    }
}
