//! Scheduled flag changes: applied exactly once by the server, as the scheduler on behalf of
//! whoever scheduled them, and refused then if that person's grant no longer allows them.

use crate::app::App;
use crate::caller::Caller;
use crate::ids::new_id;
use crate::ops::flag_changes::{FlagChange, FlagChangeExt};
use crate::ops::{Clash, Input, OpError};
use chrono::{DateTime, Utc};
use serde_json::json;
use sluice_audit::NewEntry;
use sluice_store::{ScheduledChange, ScheduledStatus as Status};

pub use sluice_api::flags::{ScheduledFlagChange, ScheduledStatus, ScheduledView};

/// The wire form of a scheduled change's status; a status added to the store fails to
/// compile here.
fn wire_status(s: Status) -> ScheduledStatus {
    match s {
        Status::Pending => ScheduledStatus::Pending,
        Status::Applied => ScheduledStatus::Applied,
        Status::Refused => ScheduledStatus::Refused,
        Status::Cancelled => ScheduledStatus::Cancelled,
    }
}

/// A stored scheduled change as the API shows it. The server stores only what it wrote from
/// a [`ScheduledFlagChange`], so a change that does not read back is a damaged row.
pub fn scheduled_view(c: ScheduledChange) -> Result<ScheduledView, OpError> {
    let change: ScheduledFlagChange = serde_json::from_value(c.change)
        .map_err(|e| OpError::Internal(format!("scheduled change {}: {e}", c.id)))?;
    Ok(ScheduledView {
        id: c.id,
        environment: c.environment,
        key: c.key,
        change,
        apply_at: c.apply_at,
        created_by: c.created_by,
        status: wire_status(c.status),
        result: c.result,
    })
}

impl App {
    pub async fn schedule_change(
        &self,
        caller: &Caller,
        env: &str,
        key: &str,
        change: FlagChange,
        base_revision: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<ScheduledView, OpError> {
        let now = self.now();
        if at <= now {
            return Err(OpError::invalid(
                Input::Time,
                "`at` must be in the future; leave it out to change the flag now",
            ));
        }
        self.check_environment(env, false, caller.admin).await?;
        // Checked now so nobody schedules what they may not do, and again when it applies,
        // because a grant may have ended by then.
        self.authorize_flag(&caller.name, caller.admin, env, key, change.action(), now)?;
        let c = ScheduledChange {
            id: new_id("sch"),
            environment: env.to_owned(),
            key: key.to_owned(),
            change: json!({"change": change, "base_revision": base_revision}),
            apply_at: at,
            created_by: caller.name.clone(),
            created_at: now,
            status: Status::Pending,
            result: None,
        };
        let mut tx = self.store.begin().await?;
        tx.insert_scheduled(&c).await?;
        tx.audit(
            now,
            NewEntry::new(&caller.name, "flag.change-scheduled")
                .resource(format!("flag:{env}/{key}"))
                .subject_id(&c.id)
                .details(json!({"apply_at": at, "change": c.change})),
        )
        .await?;
        tx.commit().await?;
        // The background loop now wakes at `at`, not at whatever it waited for before.
        self.due.note(at.timestamp_millis());
        scheduled_view(c)
    }

    pub async fn cancel_scheduled(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<ScheduledView, OpError> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let c = tx
            .claim_scheduled(id)
            .await?
            .ok_or_else(|| Clash::NotPending(id.to_owned()))?;
        if c.created_by != caller.name {
            caller.require_admin()?;
        }
        tx.settle_scheduled(
            id,
            Status::Cancelled,
            &format!("cancelled by {}", caller.name),
        )
        .await?;
        tx.audit(
            now,
            NewEntry::new(&caller.name, "flag.schedule-cancelled")
                .resource(format!("flag:{}/{}", c.environment, c.key))
                .subject_id(id),
        )
        .await?;
        tx.commit().await?;
        scheduled_view(ScheduledChange {
            status: Status::Cancelled,
            ..c
        })
    }

    /// Applies every due change exactly once: the claim, the change and its audit entry share
    /// one transaction, so a crash leaves the change pending rather than half-applied.
    pub async fn apply_due_changes(&self) -> Result<usize, OpError> {
        let ids = self.store.due_changes(self.now()).await?;
        let mut applied = 0;
        for id in ids {
            let mut tx = self.store.begin().await?;
            let Some(c) = tx.claim_scheduled(&id).await? else {
                continue;
            };
            let change: Result<FlagChange, _> = serde_json::from_value(c.change["change"].clone());
            let base = c.change["base_revision"].as_i64();
            let admin = self.is_admin(&c.created_by).await?;
            let outcome = match change {
                Ok(ch) => {
                    self.change_flag_in(
                        &mut tx,
                        "system:scheduler",
                        admin,
                        Some(&c.created_by),
                        &c.environment,
                        &c.key,
                        &ch,
                        base,
                        None,
                    )
                    .await
                }
                Err(e) => Err(OpError::invalid(Input::Change, e.to_string())),
            };
            match outcome {
                Ok(done) => {
                    tx.settle_scheduled(
                        &id,
                        Status::Applied,
                        &format!("revision {}", done.revision),
                    )
                    .await?;
                    tx.commit().await?;
                    applied += 1;
                }
                Err(e) => {
                    drop(tx);
                    // Recorded as the API would answer it: its stable code and message.
                    // Record the refusal in a fresh transaction (the failed one is rolled back).
                    let mut tx = self.store.begin().await?;
                    if tx.claim_scheduled(&id).await?.is_some() {
                        tx.settle_scheduled(&id, Status::Refused, &e.to_string())
                            .await?;
                        tx.audit(self.now(), NewEntry::new("system:scheduler", "flag.schedule-refused").resource(format!("flag:{}/{}", c.environment, c.key)).subject_id(&id).details(json!({"on_behalf_of": c.created_by, "code": e.code(), "reason": e.to_string()})))
                            .await?;
                        tx.commit().await?;
                    }
                }
            }
        }
        if applied > 0 {
            self.refresh_flags().await?;
        }
        Ok(applied)
    }

    async fn is_admin(&self, name: &str) -> Result<bool, OpError> {
        let p = self.store.principal(name).await?;
        Ok(p.is_some_and(|p| p.admin) || self.policy().is_admin(name))
    }
}
