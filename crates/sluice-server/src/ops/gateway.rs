use crate::app::App;
use crate::caller::Caller;
use crate::gateway::spec::{DatabaseConfig, DatabaseConfigExt};
use crate::ids::new_id;
use crate::ops::{Clash, Input, Missing, OpError};
use chrono::{DateTime, Utc};
use serde_json::json;
use sluice_audit::NewEntry;
use sluice_core::duration::Duration;
use sluice_core::token::{SecretToken, TokenKind};
use sluice_store::{DeclaredDatabase, TokenRow};

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
    ) -> Result<DbPassword, OpError> {
        let database = sluice_core::scope::normalize(database);
        sluice_core::policy::check_name("database", &database)
            .map_err(|e| OpError::invalid(Input::Request, e.to_string()))?;
        let ttl = ttl.unwrap_or(DB_PASSWORD_TTL);
        if ttl > DB_PASSWORD_MAX_TTL {
            return Err(OpError::invalid(
                Input::Duration,
                format!("a connection password lasts at most {DB_PASSWORD_MAX_TTL} (asked: {ttl})"),
            ));
        }
        let resource = format!("db:{database}");
        let now = self.now();
        let grant = {
            let snap = self.access.load();
            match snap.longest_grant_on(&caller.name, &resource, now) {
                Some(g) => (g.id().to_owned(), g.expires_at),
                None => {
                    // The gateway's own refusal, word for word: nothing here says whether
                    // the database is declared.
                    let hint = snap.request_hint(&resource);
                    return Err(OpError::Forbidden(format!(
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
        self.apply_local(&[], rev.get()).await;
        Ok(DbPassword {
            secret,
            token_id: row.id,
            expires_at,
            grant_id,
        })
    }

    /// Ends a live gateway session (administrators), on whichever instance holds it.
    /// Recorded before the session is told. Here: at once. Elsewhere: the kill is stored and
    /// the access revision bumped, so the holding instance ends it at its next sync.
    pub async fn kill_session(&self, caller: &Caller, id: &str) -> Result<(), OpError> {
        caller.require_admin()?;
        let not_live = || OpError::from(Missing::LiveSession(id.to_owned()));
        let local = self.gateway.get(id);
        let (principal, database, grant_id) = match &local {
            Some(l) => (l.principal.clone(), l.database.clone(), l.grant_id.clone()),
            None => {
                let s = self.store.gateway_session(id).await?.ok_or_else(not_live)?;
                if s.end.is_some() {
                    return Err(not_live());
                }
                (s.principal, s.database, s.grant_id)
            }
        };
        let mut tx = self.store.begin().await?;
        if !tx.request_session_kill(id, &caller.name).await? {
            return Err(not_live());
        }
        let rev = match local {
            Some(_) => None,
            None => Some(tx.bump_access().await?),
        };
        tx.audit(
            self.now(),
            NewEntry::new(&caller.name, "gateway.session.killed")
                .resource(format!("db:{database}"))
                .subject_id(id)
                .details(json!({"session": id, "principal": principal, "grant_id": grant_id})),
        )
        .await?;
        tx.commit().await?;
        match (local, rev) {
            (Some(l), _) => l.kill(&caller.name),
            // Nothing to reload here for it: only the holding instance acts on it.
            (None, Some(rev)) => self.apply_local(&[], rev.get()).await,
            (None, None) => {}
        }
        Ok(())
    }

    /// Says this gateway instance is alive, and ends the sessions whose instance stopped
    /// saying so `stale` ago (it crashed or was killed): recorded as ended, with the hash of
    /// the log as stored, so `audit verify` checks what was kept. Called by each running
    /// gateway every few seconds, and so at start too.
    pub async fn gateway_heartbeat(&self, stale: chrono::TimeDelta) -> Result<usize, OpError> {
        let now = self.now();
        self.store
            .gateway_heartbeat(self.gateway.instance_id(), now)
            .await?;
        let mut ended = 0;
        for s in self.store.orphaned_sessions(now - stale).await? {
            let rows = self.store.gateway_statements(&s.id).await?;
            let end = sluice_store::SessionEnd {
                at: now,
                reason: "the gateway instance holding it stopped".into(),
                bytes_in: 0,
                bytes_out: 0,
                statements: i64::try_from(rows.len()).unwrap_or(i64::MAX),
                log_hash: crate::audit::session_log_hash(&rows),
            };
            let mut tx = self.store.begin().await?;
            if !tx.end_orphaned_session(&s.id, &end).await? {
                continue;
            }
            tx.audit(
                now,
                NewEntry::new(&s.principal, "gateway.session.ended")
                    .resource(format!("db:{}", s.database))
                    .subject_id(&s.id)
                    .details(json!({
                        "session": s.id, "grant_id": s.grant_id, "reason": end.reason,
                        "orphaned": true, "instance": s.instance,
                        "statements": end.statements, "logged": end.statements,
                        "log_hash": end.log_hash,
                        "log_complete": false,
                    })),
            )
            .await?;
            tx.commit().await?;
            tracing::warn!(session = %s.id, "gateway session {} ended: the instance holding it stopped (its last statements may be missing from the log)", s.id);
            ended += 1;
        }
        Ok(ended)
    }
}

pub use sluice_api::gateway::{DatabaseView, DeclaredIn};

impl App {
    /// Every gateway database: this instance's config file's, then the API's (a name in
    /// both is served from the config file).
    pub async fn gateway_databases(&self) -> Result<Vec<DatabaseView>, OpError> {
        let configured = self.gateway.configured();
        let mut out: Vec<DatabaseView> = configured
            .iter()
            .map(|d| DatabaseView {
                spec: d.clone(),
                declared_in: DeclaredIn::Config,
                declared_at: None,
                declared_by: None,
            })
            .collect();
        for d in self.store.gateway_databases().await? {
            if configured.iter().any(|c| c.name == d.name) {
                continue;
            }
            out.push(DatabaseView {
                spec: parse_spec(&d.spec)?,
                declared_in: DeclaredIn::Api,
                declared_at: Some(d.declared_at),
                declared_by: Some(d.declared_by),
            });
        }
        Ok(out)
    }

    /// The database the gateway serves as `name`: the config file's, else the API's.
    pub async fn gateway_database(&self, name: &str) -> Result<Option<DatabaseConfig>, OpError> {
        if let Some(d) = self
            .gateway
            .configured()
            .into_iter()
            .find(|d| d.name == name)
        {
            return Ok(Some(d));
        }
        match self.store.gateway_database(name).await? {
            Some(d) => Ok(Some(parse_spec(&d.spec)?)),
            None => Ok(None),
        }
    }

    /// Declares (or re-declares) a gateway database through the API (administrators;
    /// audited). Its credentials are only named; a name the config file holds is refused.
    /// Returns whether it was new.
    pub async fn declare_gateway_database(
        &self,
        caller: &Caller,
        spec: DatabaseConfig,
    ) -> Result<bool, OpError> {
        caller.require_admin()?;
        spec.validate_declared()
            .map_err(|m| OpError::invalid(Input::Database, m))?;
        if self
            .gateway
            .configured()
            .iter()
            .any(|c| c.name == spec.name)
        {
            return Err(Clash::DeclaredInConfig {
                name: spec.name.clone(),
                removing: false,
            }
            .into());
        }
        let now = self.now();
        let json = serde_json::to_value(&spec).map_err(|e| {
            OpError::Internal(format!("a database declaration did not serialise: {e}"))
        })?;
        let mut tx = self.store.begin().await?;
        let existed = tx
            .put_gateway_database(&DeclaredDatabase {
                name: spec.name.clone(),
                spec: json.to_string(),
                declared_at: now,
                declared_by: caller.name.clone(),
            })
            .await?;
        tx.audit(
            now,
            NewEntry::new(&caller.name, "gateway.database.declared")
                .resource(format!("db:{}", spec.name))
                .details(json!({"database": json, "replaced": existed})),
        )
        .await?;
        tx.commit().await?;
        Ok(!existed)
    }

    /// Removes a database declared through the API (administrators; audited). Live sessions
    /// on it run on until their grants end; no new one is admitted.
    pub async fn remove_gateway_database(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<(), OpError> {
        caller.require_admin()?;
        if self.gateway.configured().iter().any(|c| c.name == name) {
            return Err(Clash::DeclaredInConfig {
                name: name.to_owned(),
                removing: true,
            }
            .into());
        }
        let mut tx = self.store.begin().await?;
        if !tx.delete_gateway_database(name).await? {
            return Err(Missing::ApiDatabase(name.to_owned()).into());
        }
        tx.audit(
            self.now(),
            NewEntry::new(&caller.name, "gateway.database.removed").resource(format!("db:{name}")),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn parse_spec(text: &str) -> Result<DatabaseConfig, OpError> {
    serde_json::from_str(text)
        .map_err(|e| OpError::Internal(format!("a stored gateway database is not valid: {e}")))
}
