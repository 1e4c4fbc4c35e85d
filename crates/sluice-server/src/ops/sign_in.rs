//! Sessions of people signed in through the identity provider: opened at sign-in, renewed by
//! a refresh that asks the identity provider again, ended at sign-out. Each is audited.
//!
//! A person's identity provider groups are recorded on their principal at every sign-in and
//! refresh; the policy's `idp_groups` turns them into Sluice groups when the access snapshot
//! is rebuilt. When a sign-in or refresh finds a mapped group gone, every session of the
//! person ends (their session tokens are revoked) and a refresh is refused: eligibility is
//! lost at once, and the person signs in again with what they still have.

use crate::app::App;
use crate::caller::Caller;
use crate::ids::new_id;
use crate::oidc::flow::SignedIn;
use crate::oidc::pending::{self, PendingLogin};
use crate::oidc::seal::Sealer;
use crate::oidc::{Identity, Oidc, SignInError};
use crate::ops::admin::BOOTSTRAP_ADMIN;
use crate::ops::{Input, OpError};
use chrono::{DateTime, Utc};
use serde_json::json;
use sluice_audit::NewEntry;
use sluice_core::policy::PrincipalKind;
use sluice_core::token::{SecretToken, TokenKind};
use sluice_store::{PendingSignIn, TokenRow};
use std::sync::Arc;

/// How a session was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Console,
    Cli,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Console => "console",
            Via::Cli => "cli",
        }
    }
}

/// A session token as issued: the secret is shown this once.
pub struct NewSession {
    pub token: SecretToken,
    pub token_id: String,
    pub principal: String,
    pub expires_at: DateTime<Utc>,
    /// The Sluice groups the identity provider's groups map to.
    pub groups: Vec<String>,
}

impl App {
    /// The identity provider, when one is configured.
    pub fn oidc(&self) -> Result<&Arc<Oidc>, SignInError> {
        self.oidc_slot().ok_or(SignInError::NotConfigured)
    }

    /// Starts a console sign-in for the browser whose cookie hashes to `browser`: keeps it in
    /// the store (so the answer may come back to any instance) and returns the provider's URL
    /// to send the browser to.
    pub async fn start_console_sign_in(
        &self,
        redirect: &str,
        browser: String,
    ) -> Result<String, OpError> {
        let oidc = self.oidc()?;
        let (url, login) = oidc.authorization_url(redirect).await?;
        let now = self.now();
        let sealed = login
            .seal(&self.pending_sealer())
            .map_err(|e| OpError::Internal(format!("sealing a sign-in in progress: {e}")))?;
        let row = PendingSignIn {
            state_hash: pending::state_hash(&login.state),
            browser,
            sealed,
            created_at: now,
            expires_at: now + pending::LIFETIME,
        };
        self.store.put_pending_sign_in(&row, now).await?;
        Ok(url)
    }

    /// The provider's answer to a console sign-in: the sign-in under `state` taken from the
    /// store (once: a replayed answer finds nothing), checked against the browser that started
    /// it, and finished at the provider. `sign_in_expired` when there is no such sign-in.
    pub async fn finish_console_sign_in(
        &self,
        redirect: &str,
        state: &str,
        code: &str,
        browser: &str,
    ) -> Result<Identity, OpError> {
        let oidc = self.oidc()?;
        let now = self.now();
        let row = self
            .store
            .take_pending_sign_in(&pending::state_hash(state), now)
            .await?
            .filter(|p| p.browser == browser)
            .ok_or(SignInError::UnknownLogin)?;
        let login = PendingLogin::open(&self.pending_sealer(), state, &row.sealed)
            .map_err(|_| SignInError::UnknownLogin)?;
        Ok(oidc.finish_code(redirect, login, code, now).await?)
    }

    /// Seals sign-ins in progress (a key of its own, from the audit signing key).
    fn pending_sealer(&self) -> Sealer {
        Sealer::new(&self.signer.derive_key(pending::PURPOSE))
    }

    /// Opens a session for a person the identity provider vouched for.
    pub async fn open_idp_session(
        &self,
        signed: SignedIn,
        via: Via,
    ) -> Result<NewSession, OpError> {
        let oidc = self.oidc()?;
        let id = signed.identity;
        self.check_may_sign_in(&id).await?;
        let now = self.now();
        let policy = self.policy();
        let groups: Vec<String> = policy.mapped_groups(&id.groups).into_iter().collect();
        let mut tx = self.store.begin().await?;
        tx.bump_access().await?;
        let before = tx
            .upsert_idp_principal(&id.principal, &id.groups, now)
            .await?;
        let lost = lost_groups(&policy, before.as_deref(), &id.groups);
        let mut ended = Vec::new();
        if !lost.is_empty() {
            ended = tx
                .revoke_tokens_of_kind(&id.principal, TokenKind::Session.as_str(), now)
                .await?;
            tx.end_idp_sessions_of(&id.principal).await?;
        }
        let (secret, row) = session_row(&id.principal, via, now, oidc.config.session_ttl);
        tx.insert_token(&row, &secret.hash()).await?;
        if via == Via::Cli {
            let sealed = self.seal_refresh(&id.principal, &row.id, signed.refresh_token)?;
            tx.insert_idp_session(&row.id, &id.principal, sealed.as_deref(), now)
                .await?;
        }
        tx.audit(
            now,
            NewEntry::new(&id.principal, "principal.signed_in")
                .subject_id(&id.principal)
                .details(json!({
                    "via": via.as_str(),
                    "token_id": row.id,
                    "expires_at": row.expires_at,
                    "idp_subject": id.subject,
                    "idp_groups": id.groups,
                    "groups": groups,
                    "groups_lost": lost,
                    "sessions_ended": ended,
                })),
        )
        .await?;
        tx.commit().await?;
        // The groups may have moved: rebuild the snapshot (and drop cached callers, so an
        // ended session is refused at once).
        self.refresh().await?;
        tracing::info!(principal = %id.principal, via = via.as_str(), "{} signed in through the identity provider ({})", id.principal, via.as_str());
        Ok(NewSession {
            token: secret,
            token_id: row.id,
            principal: id.principal,
            expires_at: row.expires_at.unwrap_or(now),
            groups,
        })
    }

    /// Renews the session `caller` holds: refreshes at the identity provider, reads the
    /// groups again, and issues a new session token in place of the old (which is revoked).
    /// Refused — and every session of the person ended — when the provider refuses or a
    /// mapped group is gone.
    pub async fn refresh_idp_session(&self, caller: &Caller) -> Result<NewSession, OpError> {
        let oidc = self.oidc()?;
        if caller.kind != TokenKind::Session {
            return Err(OpError::invalid(
                Input::TokenKind,
                "only a session token (from `sluice login`) is refreshed",
            ));
        }
        let Some((principal, sealed)) = self.store.idp_session(&caller.token_id).await? else {
            return Err(SignInError::SessionEnded(
                "this session cannot be refreshed (a console session, or refreshed already)".into(),
            )
            .into());
        };
        let sealer = Sealer::of(&self.signer);
        let refreshed = match sealed {
            None => Err(SignInError::SessionEnded(
                "the identity provider gave no refresh token".into(),
            )),
            // Not opening is a verdict, not an outage: the session ends (audited), never a 500.
            Some(sealed) => match sealer.open(&principal, &caller.token_id, &sealed) {
                Ok(rt) => oidc.refresh(&rt, self.now()).await,
                Err(e) => Err(SignInError::SessionEnded(e.to_string())),
            },
        };
        let signed = match refreshed {
            Ok(s) if s.identity.principal == principal => s,
            Ok(s) => {
                let e = SignInError::SessionEnded(format!(
                    "the identity provider now names this person `{}`",
                    s.identity.principal
                ));
                return Err(self.end_after_refresh(&principal, e, None).await);
            }
            Err(SignInError::Provider(m)) => {
                // Unavailable is not a verdict: the session stays, the caller may retry.
                return Err(SignInError::Provider(m).into());
            }
            Err(e) => return Err(self.end_after_refresh(&principal, e, None).await),
        };
        let policy = self.policy();
        let now = self.now();
        let mut tx = self.store.begin().await?;
        tx.bump_access().await?;
        let before = tx
            .upsert_idp_principal(&principal, &signed.identity.groups, now)
            .await?;
        let lost = lost_groups(&policy, before.as_deref(), &signed.identity.groups);
        if !lost.is_empty() {
            drop(tx);
            let e = SignInError::SessionEnded(format!(
                "no longer in {} at the identity provider",
                lost.join(", ")
            ));
            return Err(self
                .end_after_refresh(&principal, e, Some(&signed.identity.groups))
                .await);
        }
        if tx.take_idp_session(&caller.token_id).await?.is_none() {
            return Err(SignInError::SessionEnded("refreshed already".into()).into());
        }
        tx.revoke_token(&caller.token_id, now).await?;
        let (secret, row) = session_row(&principal, Via::Cli, now, oidc.config.session_ttl);
        tx.insert_token(&row, &secret.hash()).await?;
        let sealed = self.seal_refresh(&principal, &row.id, signed.refresh_token)?;
        tx.insert_idp_session(&row.id, &principal, sealed.as_deref(), now)
            .await?;
        let groups: Vec<String> = policy
            .mapped_groups(&signed.identity.groups)
            .into_iter()
            .collect();
        tx.audit(
            now,
            NewEntry::new(&principal, "principal.session_refreshed")
                .subject_id(&principal)
                .details(json!({
                    "token_id": row.id,
                    "replaces": caller.token_id,
                    "expires_at": row.expires_at,
                    "idp_groups": signed.identity.groups,
                    "groups": groups,
                })),
        )
        .await?;
        tx.commit().await?;
        self.refresh().await?;
        Ok(NewSession {
            token: secret,
            token_id: row.id,
            principal,
            expires_at: row.expires_at.unwrap_or(now),
            groups,
        })
    }

    /// A refused refresh: records the groups the provider now gives (if it gave any), ends
    /// every session of the person, audits why, and returns the refusal.
    async fn end_after_refresh(
        &self,
        principal: &str,
        why: SignInError,
        groups: Option<&[String]>,
    ) -> OpError {
        let now = self.now();
        let result: Result<(), OpError> = async {
            let mut tx = self.store.begin().await?;
            tx.bump_access().await?;
            if let Some(g) = groups {
                tx.upsert_idp_principal(principal, g, now).await?;
            }
            let ended = tx
                .revoke_tokens_of_kind(principal, TokenKind::Session.as_str(), now)
                .await?;
            tx.end_idp_sessions_of(principal).await?;
            tx.audit(
                now,
                NewEntry::new(principal, "principal.refresh_failed")
                    .subject_id(principal)
                    .details(json!({
                        "code": why.code(),
                        "reason": why.to_string(),
                        "idp_groups": groups,
                        "sessions_ended": ended,
                    })),
            )
            .await?;
            tx.commit().await?;
            self.refresh().await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => why.into(),
            Err(e) => e,
        }
    }

    /// Ends the session `caller` holds: its token revoked, the identity provider's refresh
    /// token forgotten (and revoked there, best effort).
    pub async fn sign_out(&self, caller: &Caller) -> Result<(), OpError> {
        if caller.kind != TokenKind::Session {
            return Err(OpError::invalid(
                Input::TokenKind,
                "only a session token signs out; revoke an API token with `sluice tokens revoke`",
            ));
        }
        let now = self.now();
        let mut tx = self.store.begin().await?;
        tx.bump_access().await?;
        let idp = tx.take_idp_session(&caller.token_id).await?;
        tx.revoke_token(&caller.token_id, now).await?;
        tx.audit(
            now,
            NewEntry::new(&caller.name, "principal.signed_out")
                .subject_id(&caller.name)
                .details(json!({
                    "token_id": caller.token_id,
                    "via": if idp.is_some() { "cli" } else { "console" },
                })),
        )
        .await?;
        tx.commit().await?;
        self.refresh().await?;
        if let (Some((principal, Some(sealed))), Ok(oidc)) = (idp, self.oidc()) {
            // One that does not open is one nobody can use either: nothing to revoke.
            if let Ok(rt) = Sealer::of(&self.signer).open(&principal, &caller.token_id, &sealed) {
                oidc.revoke(&rt).await;
            }
        }
        Ok(())
    }

    /// The provider's refresh token sealed for the session token `token_id` (see
    /// [`crate::oidc::seal`]): only sealed does it reach the store.
    fn seal_refresh(
        &self,
        principal: &str,
        token_id: &str,
        refresh_token: Option<String>,
    ) -> Result<Option<String>, OpError> {
        refresh_token
            .map(|rt| {
                Sealer::of(&self.signer)
                    .seal(principal, token_id, &rt)
                    .map_err(|e| OpError::Internal(format!("sealing a refresh token: {e}")))
            })
            .transpose()
    }

    /// Records an ID token the server refused (a bad signature, audience, expiry …): worth an
    /// audit entry, since only the provider or someone between it and Sluice makes one.
    pub async fn record_refused_sign_in(&self, why: &SignInError) {
        match why {
            SignInError::IdToken(_) => {}
            SignInError::Pending { .. } => return,
            _ => {
                tracing::info!(code = why.code(), "a sign-in was refused: {why}");
                return;
            }
        }
        tracing::warn!(code = why.code(), "an ID token was refused: {why}");
        let now = self.now();
        let result: Result<(), OpError> = async {
            let mut tx = self.store.begin().await?;
            tx.audit(
                now,
                NewEntry::new("system:oidc", "sign_in.refused")
                    .details(json!({"code": why.code(), "reason": why.to_string()})),
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "recording a refused sign-in failed: {e}");
        }
    }

    /// The built-in administrator and service accounts never sign in as people.
    async fn check_may_sign_in(&self, id: &Identity) -> Result<(), SignInError> {
        let reserved = id.principal == BOOTSTRAP_ADMIN
            || self.policy().kind_of(&id.principal) == Some(PrincipalKind::Service)
            || matches!(
                self.store.principal(&id.principal).await,
                Ok(Some(p)) if p.source == "bootstrap" || p.kind != "user"
            );
        if reserved {
            return Err(SignInError::Reserved(id.principal.clone()));
        }
        Ok(())
    }
}

/// The Sluice groups `before` mapped to that `now` no longer does.
fn lost_groups(
    policy: &sluice_core::policy::Policy,
    before: Option<&[String]>,
    now: &[String],
) -> Vec<String> {
    let Some(before) = before else {
        return Vec::new();
    };
    let had = policy.mapped_groups(before);
    let has = policy.mapped_groups(now);
    had.difference(&has).cloned().collect()
}

fn session_row(
    principal: &str,
    via: Via,
    now: DateTime<Utc>,
    ttl: std::time::Duration,
) -> (SecretToken, TokenRow) {
    let secret = SecretToken::generate(TokenKind::Session, &mut rand::rngs::OsRng);
    let ttl = chrono::TimeDelta::from_std(ttl).unwrap_or(chrono::TimeDelta::hours(1));
    let row = TokenRow {
        id: new_id("tok"),
        principal: principal.to_owned(),
        kind: TokenKind::Session.as_str().into(),
        environment: None,
        name: format!("sign-in ({})", via.as_str()),
        created_at: now,
        expires_at: Some(now + ttl),
        revoked_at: None,
        context: None,
        database: None,
    };
    (secret, row)
}
