//! Changing flags one at a time: the kill switch, default variant, targeting, metadata, create
//! and delete. Every change names the revision it was based on, is validated like an import,
//! is allowed by an active grant in a protected environment (standing permissions elsewhere),
//! and is audited with the flag before and after.

use crate::app::App;
use crate::ops::{Input, Missing, OpError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sluice_audit::NewEntry;
use sluice_eval::{FlagSetDef, Snapshot};
use sluice_store::{FlagConflict, WriteTx};

pub use sluice_api::flags::{FlagChange, FlagChanged};

/// What the server does with a [`FlagChange`] (the type itself is plain wire data).
pub trait FlagChangeExt {
    /// The action a grant must allow for this change.
    fn action(&self) -> &'static str;
    /// Its `op`, as audited.
    fn op(&self) -> &'static str;
    fn apply(&self, key: &str, current: Option<&Value>) -> Result<Option<Value>, OpError>;
}

impl FlagChangeExt for FlagChange {
    fn action(&self) -> &'static str {
        match self {
            FlagChange::SetState { .. } => "toggle",
            FlagChange::Delete => "delete",
            _ => "edit-targeting",
        }
    }

    fn op(&self) -> &'static str {
        match self {
            FlagChange::Put { .. } => "put",
            FlagChange::SetState { .. } => "set-state",
            FlagChange::SetDefault { .. } => "set-default",
            FlagChange::SetTargeting { .. } => "set-targeting",
            FlagChange::SetMetadata { .. } => "set-metadata",
            FlagChange::Delete => "delete",
        }
    }

    /// The flag after the change (`None`: deleted).
    fn apply(&self, key: &str, current: Option<&Value>) -> Result<Option<Value>, OpError> {
        let missing = || OpError::from(Missing::FlagToChange(key.to_owned()));
        let mut def = match (self, current) {
            (FlagChange::Put { definition }, _) => return Ok(Some(definition.clone())),
            (FlagChange::Delete, Some(_)) => return Ok(None),
            (_, None) => return Err(missing()),
            (_, Some(c)) => c.clone(),
        };
        let obj = def
            .as_object_mut()
            .ok_or_else(|| OpError::Internal(format!("stored flag `{key}` is not an object")))?;
        match self {
            FlagChange::SetState { enabled } => {
                obj.insert(
                    "state".into(),
                    json!(if *enabled { "ENABLED" } else { "DISABLED" }),
                );
            }
            FlagChange::SetDefault { variant } => {
                obj.insert("defaultVariant".into(), json!(variant));
            }
            FlagChange::SetTargeting { targeting: Some(t) } => {
                obj.insert("targeting".into(), t.clone());
            }
            FlagChange::SetTargeting { targeting: None } => {
                obj.remove("targeting");
            }
            FlagChange::SetMetadata { metadata } => {
                obj.insert("metadata".into(), Value::Object(metadata.clone()));
            }
            FlagChange::Put { .. } | FlagChange::Delete => {}
        }
        Ok(Some(def))
    }
}

/// Who allowed a flag change, recorded with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Authority {
    Grant {
        grant_id: String,
        /// When the grant ends: what the authority is good for (not recorded; the grant is).
        #[serde(skip)]
        expires_at: DateTime<Utc>,
    },
    Standing,
    Admin,
    /// A change request the environment's approval rule accepted; no grant is involved.
    ChangeRequest {
        id: String,
        approvers: Vec<String>,
    },
    /// A staged rollout that reached 100%, whose start needed `edit-rollout`: its variant
    /// becomes the flag's default.
    Rollout {
        variant: String,
    },
}

impl App {
    /// May `who` do `action` on flag `key` of `env` now? A protected environment needs a live
    /// grant — administrators included; elsewhere standing permissions (or admin) suffice.
    pub fn authorize_flag(
        &self,
        who: &str,
        admin: bool,
        env: &str,
        key: &str,
        action: &str,
        now: DateTime<Utc>,
    ) -> Result<Authority, OpError> {
        let snap = self.access.load();
        let resource = format!("flag:{env}/{key}");
        let protected = snap.policy().is_protected(env);
        let d = if protected {
            snap.decide_by_grant(who, action, &resource, now)
        } else {
            snap.decide(who, action, &resource, now)
        };
        if d.allowed {
            return Ok(match d.reason {
                sluice_core::decision::Reason::Grant {
                    grant_id,
                    expires_at,
                    ..
                } => Authority::Grant {
                    grant_id,
                    expires_at,
                },
                _ => Authority::Standing,
            });
        }
        if admin && !protected {
            return Ok(Authority::Admin);
        }
        let hint = sluice_core::decision::GrantHint::new(
            snap.policy(),
            &snap.entitlements_allowing(action, &resource),
            who,
        );
        let what = if protected {
            format!("`{env}` is protected: you need an active grant for")
        } else {
            "you need a permission for".into()
        };
        Err(OpError::Forbidden(format!(
            "{what} `{action}` on {resource}{hint}"
        )))
    }

    /// Applies one change to one flag as `actor` (on behalf of `on_behalf`, for the scheduler),
    /// if the flag is still at `base_revision`.
    #[allow(clippy::too_many_arguments)]
    pub async fn change_flag(
        &self,
        actor: &str,
        admin: bool,
        on_behalf: Option<&str>,
        env: &str,
        key: &str,
        change: &FlagChange,
        base_revision: Option<i64>,
        create_env: bool,
    ) -> Result<FlagChanged, OpError> {
        self.check_environment(env, create_env, admin).await?;
        let mut tx = self.store.begin().await?;
        if create_env {
            self.record_environment_created(&mut tx, actor, env, self.now())
                .await?;
        }
        let done = self
            .change_flag_in(
                &mut tx,
                actor,
                admin,
                on_behalf,
                env,
                key,
                change,
                base_revision,
                None,
            )
            .await?;
        tx.commit().await?;
        self.refresh_flags().await?;
        Ok(done)
    }

    /// [`change_flag`](Self::change_flag) inside a transaction the caller commits.
    /// `authority`: who already allowed the change (an approved change request); `None`
    /// checks grants and permissions with [`authorize_flag`](Self::authorize_flag).
    #[allow(clippy::too_many_arguments)]
    pub async fn change_flag_in(
        &self,
        tx: &mut WriteTx,
        actor: &str,
        admin: bool,
        on_behalf: Option<&str>,
        env: &str,
        key: &str,
        change: &FlagChange,
        base_revision: Option<i64>,
        authority: Option<Authority>,
    ) -> Result<FlagChanged, OpError> {
        let now = self.now();
        let who = on_behalf.unwrap_or(actor);
        let authority = match authority {
            Some(a) => a,
            None => self.authorize_flag(who, admin, env, key, change.action(), now)?,
        };
        // Through the transaction: a batch-mate's uncommitted change to this flag counts.
        // The flag and the set-level parts only, not the environment's other flags.
        let found = tx.flag_in(env, key).await?;
        let (parts, current) = match found {
            Some((parts, flag)) => (parts, flag),
            None => (json!({}), None),
        };
        let after = change.apply(key, current.as_ref().map(|f| &f.definition))?;
        if let Some(def) = &after {
            // Validated like an import: the flag with the environment's shared evaluators.
            let mut doc = parts;
            if let Some(o) = doc.as_object_mut() {
                o.insert("flags".into(), json!({ key: def }));
            }
            let parsed = FlagSetDef::from_value(doc)
                .map_err(|e| OpError::invalid(Input::Flag, e.to_string()))?;
            Snapshot::compile(&parsed, 0)
                .map_err(|e| OpError::invalid(Input::Flag, e.to_string()))?;
        }
        let write = match tx
            .put_flag(env, key, base_revision, after.as_ref(), actor, now)
            .await?
        {
            Ok(w) => w,
            Err(FlagConflict::Stale { current }) => {
                return Err(OpError::StaleRevision {
                    environment: env.to_owned(),
                    key: key.to_owned(),
                    current,
                    base: base_revision,
                    proposal: false,
                });
            }
        };
        let action = match (&write.before, &after) {
            (None, _) => "flag.created",
            (_, None) => "flag.deleted",
            _ => "flag.changed",
        };
        tx.audit(
            now,
            NewEntry::new(actor, action)
                .resource(format!("flag:{env}/{key}"))
                .details(json!({
                    "environment": env,
                    "key": key,
                    "op": change.op(),
                    "action": change.action(),
                    "authority": authority,
                    "on_behalf_of": on_behalf,
                    "base_revision": base_revision,
                    "revision": write.revision,
                    "before": write.before.as_ref().map(|b| &b.definition),
                    "after": after,
                })),
        )
        .await?;
        tracing::info!(
            environment = env,
            flag = key,
            action,
            by = actor,
            "{action} {env}/{key} by {actor}"
        );
        Ok(FlagChanged {
            environment: env.to_owned(),
            key: key.to_owned(),
            revision: write.revision,
            definition: after,
        })
    }
}
