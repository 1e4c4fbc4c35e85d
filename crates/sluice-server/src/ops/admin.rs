use crate::app::App;
use crate::caller::Caller;
use crate::ids::new_id;
use crate::ops::{Clash, Input, Missing, OpError};
use chrono::{DateTime, Utc};
use serde_json::json;
use sluice_audit::NewEntry;
use sluice_core::access::{self, RequestStatus};
use sluice_core::duration::Duration;
use sluice_core::policy::Policy;
use sluice_core::token::{SecretToken, TokenKind};
use sluice_store::{PrincipalRow, TokenRow};

/// The name of the administrator created on first start.
pub const BOOTSTRAP_ADMIN: &str = "admin";

/// What `apply` did or would do.
#[derive(Debug, Clone)]
pub struct Applied {
    pub version: Option<i64>,
    pub hash: String,
    pub diff: Vec<String>,
    /// The lines of `diff` that take something away (principals, entitlements, environments,
    /// protection): what a person should confirm.
    pub removals: Vec<String>,
    /// sha256 of the policy the diff was computed against.
    pub base_hash: String,
}

/// A token as created: the secret is shown this once.
pub struct NewToken {
    pub row: TokenRow,
    pub secret: SecretToken,
}

impl App {
    /// On first start with an empty store: creates the administrator and its token. Returns
    /// the token when one was generated (to be shown once), `None` if the store was not empty
    /// or the token came from the environment.
    pub async fn bootstrap(
        &self,
        from_env: Option<SecretToken>,
    ) -> Result<Option<SecretToken>, OpError> {
        if self.store.principal_count().await? > 0 {
            return Ok(None);
        }
        let generated = from_env.is_none();
        let secret = match from_env {
            Some(t) if t.is_well_formed() && t.kind() == Some(TokenKind::Api) => t,
            Some(_) => {
                return Err(OpError::invalid(
                    Input::AdminToken,
                    "SLUICE_ADMIN_TOKEN must be `slu_api_` followed by at least 32 characters",
                ))
            }
            None => SecretToken::generate(TokenKind::Api, &mut rand::rngs::OsRng),
        };
        let now = self.now();
        let mut tx = self.store.begin().await?;
        // Re-checked under the write lock: two instances starting at once on an empty
        // database must not both bootstrap.
        if tx.principal_count().await? > 0 {
            return Ok(None);
        }
        let admin = PrincipalRow {
            name: BOOTSTRAP_ADMIN.into(),
            kind: "user".into(),
            admin: true,
            source: "bootstrap".into(),
        };
        tx.upsert_principal(&admin, now).await?;
        let row = TokenRow {
            id: new_id("tok"),
            principal: BOOTSTRAP_ADMIN.into(),
            kind: TokenKind::Api.as_str().into(),
            environment: None,
            name: "bootstrap".into(),
            created_at: now,
            expires_at: None,
            revoked_at: None,
            context: None,
            database: None,
        };
        tx.insert_token(&row, &secret.hash()).await?;
        tx.audit(
            now,
            NewEntry::new("system:bootstrap", "principal.bootstrapped")
                .subject_id(BOOTSTRAP_ADMIN)
                .details(json!({"token_id": row.id})),
        )
        .await?;
        tx.bump_access().await?;
        tx.commit().await?;
        self.refresh().await?;
        Ok(generated.then_some(secret))
    }

    /// Validates a policy completely, shows the diff, and (unless `dry_run`) applies it.
    pub async fn apply_policy(
        &self,
        caller: &Caller,
        source: &str,
        dry_run: bool,
        base_hash: Option<&str>,
    ) -> Result<Applied, OpError> {
        caller.require_admin()?;
        let next = Policy::from_yaml(source).map_err(OpError::Policy)?;
        let current = self.policy();
        // The diff a person confirmed was against `base_hash`: refuse if the policy moved since.
        if let Some(base) = base_hash.filter(|b| *b != current.hash) {
            return Err(Clash::PolicyChanged {
                base: base.to_owned(),
                now: current.hash.clone(),
            }
            .into());
        }
        let mut diff = current.diff(&next);
        let removals = current.removals(&next);
        // Principals that exist but that the new policy does not declare: their grants end and
        // their tokens are revoked in the same transaction (default deny for the undeclared).
        let removed: Vec<String> = self
            .store
            .principals()
            .await?
            .into_iter()
            .filter(|p| p.source != "bootstrap" && !next.declares(&p.name))
            .map(|p| p.name)
            .collect();
        for name in &removed {
            let tokens = self
                .store
                .tokens(Some(name))
                .await?
                .iter()
                .filter(|t| t.revoked_at.is_none())
                .count();
            let open = self
                .store
                .requests(&sluice_store::RequestFilter {
                    requester: Some(name.clone()),
                    limit: Some(1000),
                    ..Default::default()
                })
                .await?
                .iter()
                .filter(|r| {
                    matches!(
                        r.status_at(self.now()),
                        RequestStatus::Active | RequestStatus::Pending
                    )
                })
                .count();
            if tokens > 0 || open > 0 {
                diff.push(format!(
                    "! {name} is not declared: {open} open request(s) and grant(s) end, {tokens} token(s) are revoked"
                ));
            }
        }
        if dry_run {
            return Ok(Applied {
                version: None,
                hash: next.hash,
                diff,
                removals,
                base_hash: current.hash.clone(),
            });
        }
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let version = tx
            .insert_policy(&next.hash, source, &caller.name, now)
            .await?;
        for (name, kind) in next.principals() {
            if name == BOOTSTRAP_ADMIN {
                continue;
            }
            let row = PrincipalRow {
                name: name.into(),
                kind: kind.as_str().into(),
                admin: false,
                source: "policy".into(),
            };
            tx.upsert_principal(&row, now).await?;
        }
        for name in &removed {
            self.remove_principal_access(&mut tx, caller, name, version, now)
                .await?;
        }
        tx.audit(
            now,
            NewEntry::new(&caller.name, "policy.applied")
                .subject_id(format!("policy-v{version}"))
                .details(json!({"version": version, "hash": next.hash, "diff": diff})),
        )
        .await?;
        tx.bump_access().await?;
        tx.commit().await?;
        tracing::info!(version, hash = %next.hash, by = %caller.name, "policy v{version} applied by {}", caller.name);
        self.refresh().await?;
        Ok(Applied {
            version: Some(version),
            hash: next.hash,
            diff,
            removals,
            base_hash: current.hash.clone(),
        })
    }

    /// Ends everything a principal the policy no longer declares holds: open requests and
    /// grants (each audited as cancelled or revoked by the policy change) and tokens.
    async fn remove_principal_access(
        &self,
        tx: &mut sluice_store::WriteTx,
        caller: &Caller,
        name: &str,
        version: i64,
        now: DateTime<Utc>,
    ) -> Result<(), OpError> {
        for id in tx.open_request_ids_of(name).await? {
            let Some(mut req) = tx.lock_request(&id).await? else {
                continue;
            };
            let Some(status) =
                access::end_for_removed_requester(&mut req, &caller.name, version, now)
            else {
                continue;
            };
            tx.update_request(&req).await?;
            let action = match status {
                RequestStatus::Revoked => "access.revoked",
                _ => "access.cancelled",
            };
            crate::ops::access::record(
                tx,
                now,
                &caller.name,
                action,
                &req,
                json!({"end_reason": req.end_reason, "policy_version": version}),
            )
            .await?;
            tracing::info!(request_id = %req.id, principal = name, "{action} {}: {name} removed from the policy", req.id);
        }
        let tokens = tx.revoke_tokens_of(name, now).await?;
        if !tokens.is_empty() {
            tx.audit(
                now,
                NewEntry::new(&caller.name, "token.revoked")
                    .subject_id(name)
                    .details(json!({"principal": name, "tokens": tokens, "reason": "not declared in the policy", "policy_version": version})),
            )
            .await?;
        }
        Ok(())
    }

    /// Creates a token. Anyone may create API tokens for themselves; administrators for anyone,
    /// and only administrators create client and edge keys.
    pub async fn create_token(
        &self,
        caller: &Caller,
        spec: TokenSpec,
    ) -> Result<NewToken, OpError> {
        let TokenSpec {
            principal,
            name,
            kind,
            environment,
            expires_in,
            context,
        } = spec;
        let principal = principal.unwrap_or_else(|| caller.name.clone());
        if principal != caller.name || matches!(kind, TokenKind::Client | TokenKind::Edge) {
            caller.require_admin()?;
        }
        if self.store.principal(&principal).await?.is_none() {
            return Err(Missing::Principal(principal).into());
        }
        let environment = match (kind, environment) {
            (TokenKind::Client, Some(env)) => {
                // A key for an environment that does not exist would evaluate nothing.
                self.check_environment(&env, false, caller.admin).await?;
                Some(env)
            }
            (TokenKind::Client, None) => {
                return Err(OpError::invalid(
                    Input::MissingEnvironment,
                    "a client key is bound to one environment; pass --env",
                ))
            }
            (TokenKind::Edge, Some(envs)) => {
                // An edge syncs each of its environments: every one must exist, named once.
                let mut seen = std::collections::BTreeSet::new();
                for env in envs.split(',') {
                    self.check_environment(env, false, caller.admin).await?;
                    if !seen.insert(env) {
                        return Err(OpError::invalid(
                            Input::Environment,
                            format!("environment `{env}` is named twice"),
                        ));
                    }
                }
                Some(envs)
            }
            (TokenKind::Edge, None) => {
                return Err(OpError::invalid(
                    Input::MissingEnvironment,
                    "an edge key syncs one or more environments; pass --env",
                ))
            }
            (TokenKind::Api, Some(_)) => {
                return Err(OpError::invalid(
                    Input::Request,
                    "only client and edge keys are bound to environments",
                ))
            }
            (TokenKind::Api, None) => None,
            (TokenKind::Session, _) => {
                return Err(OpError::invalid(
                    Input::Request,
                    "session tokens are issued by signing in through the identity provider",
                ))
            }
            (TokenKind::Db, _) => {
                return Err(OpError::invalid(
                    Input::Request,
                    "connection passwords are issued by `sluice db connect` (POST /v1/db/{name}/password)",
                ))
            }
        };
        if let Some(c) = &context {
            if kind != TokenKind::Client {
                return Err(OpError::invalid(
                    Input::Request,
                    "only client keys carry an evaluation context",
                ));
            }
            sluice_core::policy::check_static_context("context", c)
                .map_err(|e| OpError::invalid(Input::Context, e.to_string()))?;
        }
        let context = context.filter(|c| !c.is_empty());
        if name.trim().is_empty() || name.len() > 100 {
            return Err(OpError::invalid(
                Input::Request,
                "a token needs a name of 1 to 100 characters",
            ));
        }
        let now = self.now();
        let secret = SecretToken::generate(kind, &mut rand::rngs::OsRng);
        let row = TokenRow {
            id: new_id("tok"),
            principal,
            kind: kind.as_str().into(),
            environment,
            name,
            created_at: now,
            expires_at: expires_in.map(|d| now + d.delta()),
            revoked_at: None,
            context,
            database: None,
        };
        let mut tx = self.store.begin().await?;
        tx.insert_token(&row, &secret.hash()).await?;
        let rev = tx.bump_access().await?;
        tx.audit(
            now,
            NewEntry::new(&caller.name, "token.created")
                .subject_id(&row.id)
                .details(token_details(&row)),
        )
        .await?;
        tx.commit().await?;
        // No grant moved: only the revision, so this instance does not reload for it.
        self.apply_local(&[], rev.get()).await;
        Ok(NewToken { row, secret })
    }

    /// Revokes a token: one's own, or anyone's for an administrator.
    pub async fn revoke_token(&self, caller: &Caller, id: &str) -> Result<TokenRow, OpError> {
        let row = self
            .store
            .token(id)
            .await?
            .ok_or_else(|| Missing::Token(id.to_owned()))?;
        if row.principal != caller.name {
            caller.require_admin()?;
        }
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let rev = tx.bump_access().await?;
        if !tx.revoke_token(id, now).await? {
            return Err(Clash::AlreadyRevoked(id.to_owned()).into());
        }
        tx.audit(
            now,
            NewEntry::new(&caller.name, "token.revoked")
                .subject_id(id)
                .details(token_details(&row)),
        )
        .await?;
        tx.commit().await?;
        // The very next request with this token is refused here; other instances drop their
        // cached copy at their next sync.
        self.tokens.clear();
        self.apply_local(&[], rev.get()).await;
        Ok(TokenRow {
            revoked_at: Some(now),
            ..row
        })
    }
}

/// What a new token is to be.
#[derive(Debug)]
pub struct TokenSpec {
    /// Whose; default the caller.
    pub principal: Option<String>,
    pub name: String,
    pub kind: TokenKind,
    /// Client keys: the environment they evaluate.
    pub environment: Option<String>,
    pub expires_in: Option<Duration>,
    /// Client keys: static evaluation context.
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
}

fn token_details(row: &TokenRow) -> serde_json::Value {
    json!({"principal": row.principal, "kind": row.kind, "name": row.name, "environment": row.environment, "context": row.context, "expires_at": row.expires_at.map(|t: DateTime<Utc>| t.to_rfc3339())})
}
