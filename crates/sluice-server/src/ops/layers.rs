//! Expiring targets and staged rollouts on a flag, and the clock work that records their
//! expiry and steps (decisions never wait for it: evaluation compares with `now` itself).
//!
//! A rollout completes the moment it reaches a step at 100%: there is nothing left to watch
//! (the step already serves everyone), so — as a progressive rollout does in LaunchDarkly when
//! its last stage is reached — the release is over there and then, not one hold later. In one
//! transaction the flag's definition is changed to serve the variant (`defaultVariant` set to
//! it; its `targeting`, which the 100% layer was overriding for every evaluation, removed — both
//! kept in the audit entry), the layer is retired (state `completed`), and both are audited
//! (`flag.changed` by the rollout, then `rollout.completed`). No answer changes at that moment:
//! before, the layer served the variant to everyone; after, the definition does. Expiring
//! targets stay above the definition as they stayed above the rollout.

use crate::app::App;
use crate::caller::Caller;
use crate::ids::new_id;
use crate::ops::flag_changes::{Authority, FlagChange};
use crate::ops::{Input, Missing, OpError};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_audit::NewEntry;
use sluice_core::duration::Duration;
use sluice_eval::layers::{
    serve_variant, FlagLayers, Position, Rollout, RolloutError, RolloutState, StepSpec, Target,
    FULL,
};
use sluice_store::WriteTx;

/// The actor that records what time does to layers.
const CLOCK: &str = "system:clock";

use sluice_api::flags::RolloutState as WireState;
pub use sluice_api::flags::{GuardInput, RolloutStatus, StepInput};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutOp {
    Pause,
    Resume,
    Rollback,
}

pub(crate) fn status(env: &str, key: &str, r: &Rollout, now: DateTime<Utc>) -> RolloutStatus {
    status_read(env, key, r, None, now)
}

/// [`status`] with the guards' last readings on this instance.
pub(crate) fn status_read(
    env: &str,
    key: &str,
    r: &Rollout,
    readings: Option<&crate::guards::RolloutReadings>,
    now: DateTime<Utc>,
) -> RolloutStatus {
    let pos: Option<Position> = match r.state {
        RolloutState::Completed => r.full_step().map(|step| Position {
            step,
            share_bp: FULL,
            next_change_ms: None,
        }),
        _ => r.position(now.timestamp_millis()),
    };
    RolloutStatus {
        environment: env.to_owned(),
        key: key.to_owned(),
        variant: r.variant.clone(),
        state: match r.state {
            RolloutState::Running => WireState::Running,
            RolloutState::Paused => WireState::Paused,
            RolloutState::RolledBack => WireState::RolledBack,
            RolloutState::Completed => WireState::Completed,
        },
        steps: r
            .steps
            .iter()
            .map(|s| f64::from(s.share_bp) / 100.0)
            .collect(),
        current_step: pos.map(|p| p.step),
        current_percent: pos.map_or(0.0, |p| f64::from(p.share_bp) / 100.0),
        next_change_at: pos
            .and_then(|p| p.next_change_ms)
            .and_then(DateTime::from_timestamp_millis),
        completed_at: r.completed_at_ms.and_then(DateTime::from_timestamp_millis),
        completed_revision: r.completed_revision,
        completion_error: r.completion_error.clone(),
        guards: crate::guards::guard_statuses(r, readings),
        held: readings
            .filter(|_| r.state == RolloutState::Running)
            .and_then(|x| x.held.clone()),
    }
}

/// A target allowed by a grant may not outlive it: refuses a duration that ends after the
/// grant, naming when it ends and the most that may be asked for. (Standing permissions have
/// no end, so targets they allow are not capped.)
fn outlives_grant(
    grant_id: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
    duration: Duration,
) -> Result<(), OpError> {
    if now + duration.delta() <= expires_at {
        return Ok(());
    }
    let left = u64::try_from((expires_at - now).num_seconds()).unwrap_or(0);
    // Whole minutes when there are any: what a person would type after `--for`.
    let most = Duration::from_secs(if left >= 60 { left - left % 60 } else { left })
        .to_string()
        .replace(' ', "");
    Err(OpError::invalid(
        Input::TargetOutlivesGrant,
        format!(
            "a target may not outlive the grant that allows it: grant {grant_id} ends at {} \
             ({}); ask for at most {most} (--for {most}), or extend the grant first \
             (sluice access extend {grant_id})",
            expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            sluice_core::duration::relative(now, expires_at),
        ),
    ))
}

fn rollout_error(env: &str, key: &str, error: RolloutError) -> OpError {
    OpError::Rollout {
        environment: env.to_owned(),
        key: key.to_owned(),
        error,
    }
}

pub(crate) async fn load(tx: &mut WriteTx, env: &str, key: &str) -> Result<FlagLayers, OpError> {
    match tx.lock_flag_layers(env, key).await? {
        Some(v) => {
            serde_json::from_value(v).map_err(|e| OpError::Internal(format!("stored layers: {e}")))
        }
        None => Ok(FlagLayers::default()),
    }
}

async fn save(
    tx: &mut WriteTx,
    env: &str,
    key: &str,
    layers: &FlagLayers,
    now: DateTime<Utc>,
) -> Result<(), OpError> {
    let body = serde_json::to_value(layers).map_err(|e| OpError::Internal(e.to_string()))?;
    tx.put_flag_layers(env, key, &body, now).await?;
    Ok(())
}

impl App {
    /// Stores a flag's new layers with their audit entry, commits, and swaps in the new
    /// snapshot (which tells SSE subscribers).
    pub(crate) async fn commit_layers(
        &self,
        mut tx: WriteTx,
        env: &str,
        key: &str,
        layers: &FlagLayers,
        entry: NewEntry,
        now: DateTime<Utc>,
    ) -> Result<(), OpError> {
        save(&mut tx, env, key, layers, now).await?;
        tx.audit(now, entry.resource(format!("flag:{env}/{key}")))
            .await?;
        tx.commit().await?;
        self.refresh_flags().await
    }

    /// The flag's variants, or 404.
    async fn variants_of(
        &self,
        env: &str,
        key: &str,
    ) -> Result<serde_json::Map<String, Value>, OpError> {
        let set = self
            .store
            .flag_set(env)
            .await?
            .ok_or_else(|| Missing::Environment(env.to_owned()))?;
        let flag = set
            .flags
            .iter()
            .find(|f| f.key == key)
            .ok_or_else(|| Missing::Flag {
                env: env.to_owned(),
                key: key.to_owned(),
            })?;
        Ok(flag
            .definition
            .get("variants")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default())
    }

    /// Pins targeting keys to a variant for a while. With only `target-self`, a caller may pin
    /// nobody but themself.
    #[expect(
        clippy::too_many_arguments,
        reason = "each argument is one field of the target"
    )]
    pub async fn add_target(
        &self,
        caller: &Caller,
        env: &str,
        key: &str,
        variant: String,
        keys: Vec<String>,
        group: Option<String>,
        duration: Duration,
    ) -> Result<Target, OpError> {
        self.check_environment(env, false, caller.admin).await?;
        let now = self.now();
        let keys: Vec<String> = keys
            .into_iter()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect();
        if keys.is_empty() || keys.len() > 10_000 {
            return Err(OpError::invalid(
                Input::Keys,
                "give 1 to 10,000 targeting keys",
            ));
        }
        let authority =
            match self.authorize_flag(&caller.name, caller.admin, env, key, "target", now) {
                Ok(a) => a,
                Err(e) if keys == [caller.name.clone()] => self
                    .authorize_flag(&caller.name, caller.admin, env, key, "target-self", now)
                    .map_err(|_| e)?,
                Err(e) => return Err(e),
            };
        if let Authority::Grant {
            grant_id,
            expires_at,
        } = &authority
        {
            outlives_grant(grant_id, *expires_at, now, duration)?;
        }
        if !self.variants_of(env, key).await?.contains_key(&variant) {
            return Err(OpError::invalid(
                Input::Variant,
                format!("flag `{key}` has no variant `{variant}`"),
            ));
        }
        let target = Target {
            id: new_id("tgt"),
            variant,
            keys,
            group,
            expires_at_ms: (now + duration.delta()).timestamp_millis(),
            created_by: caller.name.clone(),
        };
        let mut tx = self.store.begin().await?;
        let mut layers = load(&mut tx, env, key).await?;
        layers.targets.push(target.clone());
        let entry = NewEntry::new(&caller.name, "flag.targeted")
            .subject_id(&target.id)
            .details(json!({"target": target, "authority": authority}));
        self.commit_layers(tx, env, key, &layers, entry, now)
            .await?;
        Ok(target)
    }

    /// The flag's targets still in force, soonest to expire first.
    pub async fn active_targets(&self, env: &str, key: &str) -> Result<Vec<Target>, OpError> {
        let ms = self.now().timestamp_millis();
        let Some(body) = self.store.flag_layers_of(env, key).await? else {
            return Ok(Vec::new());
        };
        let layers: FlagLayers = serde_json::from_value(body)
            .map_err(|e| OpError::Internal(format!("stored layers: {e}")))?;
        let mut targets: Vec<Target> = layers
            .targets
            .into_iter()
            .filter(|t| t.expires_at_ms > ms)
            .collect();
        targets.sort_by_key(|t| t.expires_at_ms);
        Ok(targets)
    }

    /// [`active_targets`](Self::active_targets) of a flag that must exist.
    pub async fn list_targets(&self, env: &str, key: &str) -> Result<Vec<Target>, OpError> {
        self.check_environment(env, false, false).await?;
        self.variants_of(env, key).await?;
        self.active_targets(env, key).await
    }

    /// Removes a target before its time.
    pub async fn remove_target(
        &self,
        caller: &Caller,
        env: &str,
        key: &str,
        id: &str,
    ) -> Result<Target, OpError> {
        self.check_environment(env, false, caller.admin).await?;
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let mut layers = load(&mut tx, env, key).await?;
        let pos = layers
            .targets
            .iter()
            .position(|t| t.id == id)
            .ok_or_else(|| Missing::Target {
                id: id.to_owned(),
                key: key.to_owned(),
            })?;
        let own = layers.targets[pos].keys == [caller.name.clone()];
        let action = if own { "target-self" } else { "target" };
        let authority = self.authorize_flag(&caller.name, caller.admin, env, key, action, now)?;
        let target = layers.targets.remove(pos);
        let entry = NewEntry::new(&caller.name, "flag.target-removed")
            .subject_id(id)
            .details(json!({"target": target, "authority": authority}));
        self.commit_layers(tx, env, key, &layers, entry, now)
            .await?;
        Ok(target)
    }

    /// Starts a staged rollout of `variant` (replacing any previous one).
    pub async fn start_rollout(
        &self,
        caller: &Caller,
        env: &str,
        key: &str,
        variant: String,
        steps: Vec<StepInput>,
        guards: Vec<GuardInput>,
    ) -> Result<RolloutStatus, OpError> {
        self.check_environment(env, false, caller.admin).await?;
        let now = self.now();
        let authority =
            self.authorize_flag(&caller.name, caller.admin, env, key, "edit-rollout", now)?;
        if !self.variants_of(env, key).await?.contains_key(&variant) {
            return Err(OpError::invalid(
                Input::Variant,
                format!("flag `{key}` has no variant `{variant}`"),
            ));
        }
        let specs: Vec<StepSpec<'_>> = steps
            .iter()
            .map(|s| StepSpec {
                percent: s.percent,
                hold: &s.hold,
            })
            .collect();
        let parse_hold = |h: &str| {
            Duration::parse(h)
                .map(|d| (d.as_secs() as i64) * 1000)
                .map_err(|e| e.to_string())
        };
        let mut rollout = Rollout::start(variant, &specs, parse_hold, now.timestamp_millis())
            .map_err(|e| rollout_error(env, key, e))?;
        rollout.guards = self
            .parse_guards(&guards)
            .map_err(|e| rollout_error(env, key, e))?;
        let mut tx = self.store.begin().await?;
        let mut layers = load(&mut tx, env, key).await?;
        let view = status(env, key, &rollout, now);
        let guarded = rollout.guarded();
        layers.rollout = Some(rollout);
        let entry = NewEntry::new(&caller.name, "rollout.started")
            .details(json!({"rollout": view, "authority": authority}));
        self.commit_layers(tx, env, key, &layers, entry, now)
            .await?;
        if guarded {
            self.guards.poke();
        }
        Ok(view)
    }

    /// Pause, resume or roll back. Paused time shifts the rest of the schedule.
    pub async fn control_rollout(
        &self,
        caller: &Caller,
        env: &str,
        key: &str,
        op: RolloutOp,
    ) -> Result<RolloutStatus, OpError> {
        self.check_environment(env, false, caller.admin).await?;
        let now = self.now();
        let authority =
            self.authorize_flag(&caller.name, caller.admin, env, key, "edit-rollout", now)?;
        let mut tx = self.store.begin().await?;
        let mut layers = load(&mut tx, env, key).await?;
        let r = layers
            .rollout
            .as_mut()
            .ok_or_else(|| Missing::Rollout(key.to_owned()))?;
        let ms = now.timestamp_millis();
        let done = match op {
            RolloutOp::Pause => r.pause(ms).map(|()| "rollout.paused"),
            RolloutOp::Resume => r.resume(ms).map(|()| "rollout.resumed"),
            RolloutOp::Rollback => r.roll_back().map(|()| "rollout.rolled-back"),
        };
        let action = done.map_err(|e| rollout_error(env, key, e))?;
        let view = status(env, key, r, now);
        let entry = NewEntry::new(&caller.name, action)
            .details(json!({"rollout": view, "authority": authority}));
        self.commit_layers(tx, env, key, &layers, entry, now)
            .await?;
        Ok(view)
    }

    pub async fn rollout_status(&self, env: &str, key: &str) -> Result<RolloutStatus, OpError> {
        let r = self
            .store
            .flag_layers_of(env, key)
            .await?
            .and_then(|b| serde_json::from_value::<FlagLayers>(b).ok())
            .and_then(|l| l.rollout)
            .ok_or_else(|| Missing::RolloutIn {
                env: env.to_owned(),
                key: key.to_owned(),
            })?;
        let readings = self.guards.readings(env, key, r.started_at_ms);
        Ok(status_read(env, key, &r, readings.as_ref(), self.now()))
    }

    /// Records what time has done to layers — expired targets (removed, audited once) and
    /// rollout steps reached (audited once each) — and tells SSE subscribers.
    pub async fn tick_layers(&self) -> Result<usize, OpError> {
        // The common case: no flag anywhere has layers, so there is nothing to record and no
        // reason to read the store every second. (The snapshot follows the store within one
        // sync interval, on every instance.)
        if self.flags.load().envs.values().all(|e| e.layers.is_empty()) {
            return Ok(0);
        }
        let now = self.now();
        let ms = now.timestamp_millis();
        let mut recorded = 0;
        for (env, key, body) in self.store.flag_layers().await? {
            let Ok(seen) = serde_json::from_value::<FlagLayers>(body) else {
                continue;
            };
            if !seen.has_lapsed(ms) {
                continue;
            }
            let mut tx = self.store.begin().await?;
            // Re-read under the lock: another instance may have recorded it already.
            let mut layers = load(&mut tx, &env, &key).await?;
            let mut n = 0;
            let lapsed = layers.record_time(ms);
            for t in lapsed.expired {
                let at = DateTime::from_timestamp_millis(t.expires_at_ms).unwrap_or(now);
                tx.audit(
                    now,
                    NewEntry::new("system:clock", "flag.target-expired")
                        .resource(format!("flag:{env}/{key}"))
                        .subject_id(&t.id)
                        .details(json!({"target": t, "expired_at": at})),
                )
                .await?;
                n += 1;
            }
            if let Some(r) = &layers.rollout {
                for s in lapsed.steps {
                    tx.audit(
                        now,
                        NewEntry::new("system:clock", "rollout.advanced")
                            .resource(format!("flag:{env}/{key}"))
                            .details(
                                // Numbered from 1, as `sluice rollout status` says "step 2 of 4".
                                json!({"step": s.step + 1, "of": s.of, "percent": s.percent, "variant": r.variant}),
                            ),
                    )
                    .await?;
                    n += 1;
                }
            }
            if layers
                .rollout
                .as_ref()
                .is_some_and(|r| r.due_to_complete(ms))
            {
                match self
                    .complete_rollout_in(&mut tx, &env, &key, &mut layers, now)
                    .await
                {
                    Ok(()) => n += 1,
                    Err(e) if e.is_failure() => return Err(e),
                    Err(e) => {
                        // Recorded as the API would answer it: its stable code and message.
                        // The transaction may hold part of the change: drop it, and record
                        // the failure once in a fresh one (the next pass records the rest).
                        drop(tx);
                        recorded += self.record_completion_failure(&env, &key, &e, now).await?;
                        continue;
                    }
                }
            }
            if n == 0 {
                continue;
            }
            save(&mut tx, &env, &key, &layers, now).await?;
            tx.commit().await?;
            recorded += n;
        }
        if recorded > 0 {
            self.refresh_flags().await?;
        }
        Ok(recorded)
    }

    /// Completes a rollout that reached 100% (see the module docs), inside the caller's
    /// transaction, which holds the flag's layers locked.
    async fn complete_rollout_in(
        &self,
        tx: &mut WriteTx,
        env: &str,
        key: &str,
        layers: &mut FlagLayers,
        now: DateTime<Utc>,
    ) -> Result<(), OpError> {
        let Some(r) = layers.rollout.as_mut() else {
            return Ok(());
        };
        // Through the transaction, which serialises flag writes: the revision read is current.
        let current = tx
            .flag_set(env)
            .await?
            .and_then(|s| s.flags.into_iter().find(|f| f.key == key));
        let mut definition_change = Value::Null;
        let revision = match current {
            None => None,
            Some(f) => {
                let (def, replaced) =
                    serve_variant(&f.definition, &r.variant).ok_or_else(|| {
                        OpError::Internal(format!("stored flag `{key}` is not an object"))
                    })?;
                definition_change = replaced;
                if def == f.definition {
                    Some(f.revision)
                } else {
                    let done = self
                        .change_flag_in(
                            tx,
                            CLOCK,
                            false,
                            None,
                            env,
                            key,
                            &FlagChange::Put { definition: def },
                            Some(f.revision),
                            Some(Authority::Rollout {
                                variant: r.variant.clone(),
                            }),
                        )
                        .await?;
                    Some(done.revision)
                }
            }
        };
        r.complete(revision, now.timestamp_millis());
        let view = status(env, key, r, now);
        tx.audit(
            now,
            NewEntry::new(CLOCK, "rollout.completed")
                .resource(format!("flag:{env}/{key}"))
                .details(json!({
                    "rollout": view,
                    "revision": revision,
                    "definition": definition_change,
                })),
        )
        .await?;
        tracing::info!(
            environment = env,
            flag = key,
            variant = %r.variant,
            "rollout of {} for {env}/{key} completed: it is the flag's default now",
            r.variant
        );
        Ok(())
    }

    /// Records, once, that a rollout at 100% could not complete (e.g. its variant is gone
    /// from the flag). Returns how many entries it recorded.
    async fn record_completion_failure(
        &self,
        env: &str,
        key: &str,
        e: &OpError,
        now: DateTime<Utc>,
    ) -> Result<usize, OpError> {
        let mut tx = self.store.begin().await?;
        let mut layers = load(&mut tx, env, key).await?;
        let Some(r) = layers
            .rollout
            .as_mut()
            .filter(|r| r.due_to_complete(now.timestamp_millis()))
        else {
            return Ok(0);
        };
        r.completion_error = Some(e.to_string());
        let view = status(env, key, r, now);
        tracing::warn!(
            environment = env,
            flag = key,
            error = %e,
            "rollout of {} for {env}/{key} reached 100% but could not complete: {e}",
            r.variant
        );
        let entry = NewEntry::new(CLOCK, "rollout.completion-failed")
            .details(json!({"rollout": view, "code": e.code(), "reason": e.to_string()}));
        self.commit_layers(tx, env, key, &layers, entry, now)
            .await?;
        Ok(1)
    }

    /// The next moment any layer answer changes, across environments.
    pub fn next_layer_boundary(&self) -> Option<i64> {
        let now = self.now();
        self.flags
            .load()
            .envs
            .values()
            .filter_map(|e| e.next_boundary(now))
            .min()
    }
}
