//! Guarded rollouts: read every running guarded rollout's guards, then act on what
//! `Rollout::decide` makes of them — pause or roll back on a breach, start the next step when
//! it is due and every guard passed, hold otherwise. Each action re-reads the rollout under its
//! row lock and acts only if it is still the rollout that was read and still running, so
//! several instances reading the same guards record each breach and each step once.

use crate::app::App;
use crate::guards::{wire_breach, GuardConfig, Prometheus, Reading, RolloutReadings};
use crate::ops::layers::{load, status};
use crate::ops::OpError;
use serde_json::{json, Value};
use sluice_api::flags::{GuardInput, OnBreach as WireBreach};
use sluice_audit::NewEntry;
use sluice_eval::layers::{
    Decision, FlagLayers, Guard, OnBreach, Rollout, RolloutError, RolloutState, Verdict, MAX_GUARDS,
};
use std::collections::HashSet;
use std::time::Duration;

/// The actor of what guards do.
pub const GUARD: &str = "system:guard";

/// The guard and its reading, for the audit entry of what it did.
fn guard_detail(g: &Guard, reading: Option<&Reading>) -> Value {
    json!({
        "condition": g.condition.to_string(),
        "query": g.condition.query,
        "comparison": g.condition.comparison.as_str(),
        "threshold": g.condition.threshold,
        "min_sample": g.min_sample.as_ref().map(ToString::to_string),
        "on_breach": wire_breach(g.on_breach),
        "value": reading.and_then(|r| r.value.as_ref().ok().copied()),
        "sample": reading.and_then(|r| r.sample.as_ref()?.as_ref().ok().copied()),
        "read_at": reading.and_then(|r| chrono::DateTime::from_timestamp_millis(r.at_ms)),
    })
}

impl App {
    /// Guards as written, checked. A guarded rollout needs a Prometheus on this server.
    pub(crate) fn parse_guards(&self, input: &[GuardInput]) -> Result<Vec<Guard>, RolloutError> {
        if input.is_empty() {
            return Ok(Vec::new());
        }
        if input.len() > MAX_GUARDS {
            return Err(RolloutError::InvalidGuard(format!(
                "give at most {MAX_GUARDS} guards"
            )));
        }
        if self.guards.config().is_none() {
            return Err(RolloutError::InvalidGuard(
                "this server has no Prometheus to read guards from: start it with --prometheus-url"
                    .into(),
            ));
        }
        input
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let on_breach = match g.on_breach {
                    WireBreach::Pause => OnBreach::Pause,
                    WireBreach::Rollback => OnBreach::Rollback,
                };
                Guard::parse(&g.condition, g.min_sample.as_deref(), on_breach)
                    .map_err(|e| RolloutError::InvalidGuard(format!("guard {}: {e}", i + 1)))
            })
            .collect()
    }

    /// One pass over every running guarded rollout: read its guards, record the readings,
    /// act on them. Returns the earliest moment a step is next due, for the caller to read
    /// again then.
    pub async fn check_guards(&self, prom: &Prometheus) -> Result<Option<i64>, OpError> {
        let mut live = HashSet::new();
        let mut next_due: Option<i64> = None;
        if self.flags.load().envs.values().all(|e| e.layers.is_empty()) {
            self.guards.retain(&live);
            return Ok(None);
        }
        for (env, key, body) in self.store.flag_layers().await? {
            let Ok(layers) = serde_json::from_value::<FlagLayers>(body) else {
                continue;
            };
            let Some(r) = layers
                .rollout
                .filter(|r| r.state == RolloutState::Running && r.guarded())
            else {
                continue;
            };
            live.insert((env.clone(), key.clone()));
            let mut readings = Vec::with_capacity(r.guards.len());
            for g in &r.guards {
                let value = prom.query(&g.condition.query).await;
                let sample = match &g.min_sample {
                    Some(m) => Some(prom.query(&m.query).await),
                    None => None,
                };
                let verdict = g.judge(&value, sample.as_ref());
                readings.push(Reading {
                    value,
                    sample,
                    verdict,
                    at_ms: self.now().timestamp_millis(),
                });
            }
            let verdicts: Vec<Verdict> = readings.iter().map(|x| x.verdict.clone()).collect();
            let ms = self.now().timestamp_millis();
            let decision = r.decide(&verdicts, ms);
            let held = match &decision {
                Decision::Hold {
                    guard,
                    reason,
                    due: true,
                } => Some(format!(
                    "guard {} cannot be evaluated ({reason}): the rollout holds its step until it can",
                    guard + 1
                )),
                _ => None,
            };
            self.guards.record(
                &env,
                &key,
                RolloutReadings {
                    started_at_ms: r.started_at_ms,
                    guards: readings.clone(),
                    held,
                },
            );
            match decision {
                Decision::Pause { guard } | Decision::RollBack { guard } => {
                    self.guard_breached(&env, &key, &r, guard, readings.get(guard))
                        .await?;
                    continue;
                }
                Decision::Proceed { advance: Some(_) } => {
                    self.guard_advance(&env, &key, &r, &readings).await?;
                }
                Decision::Hold { due: true, .. } => {
                    crate::metrics::guard_held();
                }
                _ => {}
            }
            if let Some(at) = r.next_due_ms() {
                next_due = Some(next_due.map_or(at, |n| n.min(at)));
            }
        }
        self.guards.retain(&live);
        Ok(next_due)
    }

    /// Pauses or rolls back the rollout `seen` as guard `index` says, if it is still that
    /// rollout and still running (re-read under the lock).
    async fn guard_breached(
        &self,
        env: &str,
        key: &str,
        seen: &Rollout,
        index: usize,
        reading: Option<&Reading>,
    ) -> Result<bool, OpError> {
        let Some(g) = seen.guards.get(index) else {
            return Ok(false);
        };
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let mut layers = load(&mut tx, env, key).await?;
        let Some(r) = layers
            .rollout
            .as_mut()
            .filter(|r| r.started_at_ms == seen.started_at_ms && r.state == RolloutState::Running)
        else {
            return Ok(false);
        };
        let action = match g.on_breach {
            OnBreach::Pause => r.pause(now.timestamp_millis()).map(|()| "rollout.paused"),
            OnBreach::Rollback => r.roll_back().map(|()| "rollout.rolled-back"),
        };
        let Ok(action) = action else {
            return Ok(false);
        };
        let view = status(env, key, r, now);
        let detail = guard_detail(g, reading);
        tracing::warn!(
            environment = env,
            flag = key,
            guard = %g.condition,
            value = ?reading.map(|x| &x.value),
            "guard `{}` breached on {env}/{key}: {action}",
            g.condition
        );
        let entry = NewEntry::new(GUARD, action)
            .details(json!({"rollout": view, "guard": detail, "reason": "guard breached"}));
        self.commit_layers(tx, env, key, &layers, entry, now)
            .await?;
        crate::metrics::guard_breached(g.on_breach == OnBreach::Rollback);
        Ok(true)
    }

    /// Starts the step due (every guard passed), if it is still due (re-read under the lock).
    async fn guard_advance(
        &self,
        env: &str,
        key: &str,
        seen: &Rollout,
        readings: &[Reading],
    ) -> Result<bool, OpError> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let mut layers = load(&mut tx, env, key).await?;
        let Some(r) = layers
            .rollout
            .as_mut()
            .filter(|r| r.started_at_ms == seen.started_at_ms && r.guards == seen.guards)
        else {
            return Ok(false);
        };
        let Some((s, waited_ms)) = r.advance_guarded(now.timestamp_millis()) else {
            return Ok(false);
        };
        let guards: Vec<Value> = r
            .guards
            .iter()
            .zip(readings)
            .map(|(g, x)| guard_detail(g, Some(x)))
            .collect();
        let entry = NewEntry::new(GUARD, "rollout.advanced").details(json!({
            // Numbered from 1, as `sluice rollout status` says "step 2 of 4".
            "step": s.step + 1, "of": s.of, "percent": s.percent, "variant": r.variant,
            "guards": guards,
            // How long the step waited past its scheduled start for its guards (the console's
            // chart lays the schedule out with it).
            "waited_ms": waited_ms,
        }));
        self.commit_layers(tx, env, key, &layers, entry, now)
            .await?;
        // At 100% the rollout completes on the due loop's next pass: wake it.
        self.due.poke();
        Ok(true)
    }
}

/// Reads every running guarded rollout's guards every `interval`, at the moment a step is
/// due, and when a guarded rollout starts; acts on what they say (see `App::check_guards`).
pub async fn run(app: App, config: GuardConfig) {
    let timeout = config
        .interval
        .clamp(Duration::from_millis(500), Duration::from_secs(10));
    let prom = match Prometheus::new(&config.prometheus_url, timeout) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "guards cannot run: {e}");
            return;
        }
    };
    app.guards.configure(config.clone());
    loop {
        let next_due = match app.check_guards(&prom).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "reading rollout guards failed: {e}");
                None
            }
        };
        let now = app.now().timestamp_millis();
        let wait = match next_due {
            Some(at) if at > now => {
                Duration::from_millis(u64::try_from(at - now).unwrap_or(0)).min(config.interval)
            }
            _ => config.interval,
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {},
            () = app.guards.poked() => {},
        }
    }
}
