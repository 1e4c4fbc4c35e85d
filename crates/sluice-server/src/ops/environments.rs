//! Which environment a flag write may name. An environment exists when the policy declares it
//! (`environments:`) or when it holds flags; any other name is refused, so a typo cannot
//! quietly start a new environment. An administrator creates one deliberately with
//! `create_env`, and the creation is audited (`environment.created`) with the write that
//! brings it into being.

use crate::app::App;
use crate::ops::{Input, OpError};
use chrono::{DateTime, Utc};
use serde_json::json;
use sluice_audit::NewEntry;
use sluice_store::WriteTx;
use std::collections::BTreeSet;

impl App {
    /// Refuses a flag write naming an environment that does not exist, unless an
    /// administrator asks to `create` it. Read-only: creation is recorded by
    /// [`record_environment_created`](Self::record_environment_created) in the write's
    /// transaction.
    pub async fn check_environment(
        &self,
        env: &str,
        create: bool,
        admin: bool,
    ) -> Result<(), OpError> {
        sluice_core::policy::check_name("environment", env)
            .map_err(|e| OpError::invalid(Input::Environment, e.message))?;
        let policy = self.policy();
        if policy.doc.environments.contains_key(env) {
            return Ok(());
        }
        let stored = self.store.environment_names().await?;
        if stored.iter().any(|s| s == env) {
            return Ok(());
        }
        if create {
            if !admin {
                return Err(OpError::Forbidden(format!(
                    "only administrators create environments; `{env}` does not exist"
                )));
            }
            return Ok(());
        }
        let known: BTreeSet<&str> = policy
            .doc
            .environments
            .keys()
            .map(String::as_str)
            .chain(stored.iter().map(String::as_str))
            .collect();
        let known = if known.is_empty() {
            "there are none yet".to_owned()
        } else {
            let list: Vec<String> = known.iter().map(|e| format!("`{e}`")).collect();
            format!("the environments are {}", list.join(", "))
        };
        Err(OpError::UnknownEnvironment {
            env: env.to_owned(),
            known,
        })
    }

    /// In the write's transaction: when `env` is neither declared nor stored yet, records that
    /// `actor` created it. Call only for a write an administrator asked to create it with.
    pub async fn record_environment_created(
        &self,
        tx: &mut WriteTx,
        actor: &str,
        env: &str,
        now: DateTime<Utc>,
    ) -> Result<(), OpError> {
        if self.policy().doc.environments.contains_key(env) || tx.environment_exists(env).await? {
            return Ok(());
        }
        tx.audit(
            now,
            NewEntry::new(actor, "environment.created")
                .resource(format!("flag:{env}/*"))
                .details(json!({"environment": env, "declared_in_policy": false})),
        )
        .await?;
        tracing::info!(
            environment = env,
            by = actor,
            "environment {env} created by {actor}"
        );
        Ok(())
    }
}
