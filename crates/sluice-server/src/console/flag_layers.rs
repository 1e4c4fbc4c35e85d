//! What the flags page shows beside a flag's definition: its expiring targets (counting down),
//! its staged rollout as a step chart with pause, resume and roll back, the proposals waiting
//! for approval and the changes scheduled on it. Read from the store, a query per kind for the
//! whole environment; the buttons call the operation the API calls.

use super::chart::{self, Chart};
use super::page::{self, ChangeRow, ConsoleError};
use super::session::Signed;
use super::Console;
use crate::caller::Caller;
use crate::ops::flag_changes::Authority;
use crate::ops::layers::RolloutOp;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, SecondsFormat, Utc};
use sluice_core::duration::relative;
use sluice_eval::layers::{FlagLayers, Rollout, RolloutState};
use sluice_store::AuditQuery;
use std::collections::HashMap;

pub struct TargetRow {
    /// The group's name, else the keys.
    pub who: String,
    pub variant: String,
    pub created_by: String,
    pub expires_at: String,
    pub expires_in: String,
}

/// A rollout guard and its last reading on this instance.
pub struct GuardRow {
    /// `QUERY < 0.01`.
    pub condition: String,
    pub on_breach: &'static str,
    /// `unread`, `passing`, `breached`, `unknown`.
    pub state: &'static str,
    pub value: String,
    pub min_sample: Option<String>,
    pub read: String,
    pub reason: Option<String>,
}

pub struct RolloutView {
    pub variant: String,
    pub guards: Vec<GuardRow>,
    /// Why the rollout holds its step past the scheduled change, if it does.
    pub held: Option<String>,
    /// `running`, `paused`, `rolled back`, `completed`.
    pub state: &'static str,
    pub chart: Chart,
    /// The buttons this state offers: (`pause`, `Pause`), …
    pub ops: Vec<(&'static str, &'static str)>,
    /// What allows the buttons, or the refusal they would meet.
    pub allowed_by: Option<String>,
    pub refusal: String,
}

pub struct ScheduledRow {
    pub id: String,
    pub change: String,
    pub created_by: String,
    pub apply_at: String,
    pub apply_in: String,
}

/// A flag's layers, proposals and scheduled changes, as the page shows them.
#[derive(Default)]
pub struct Extras {
    pub targets: Vec<TargetRow>,
    pub rollout: Option<RolloutView>,
    pub proposals: Vec<ChangeRow>,
    pub scheduled: Vec<ScheduledRow>,
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Where the rollout's past pauses fell and when it was rolled back: only the audit trail
/// keeps those moments.
async fn history(
    c: &Console,
    env: &str,
    key: &str,
    r: &Rollout,
) -> Result<(Vec<(i64, i64)>, Option<i64>), ConsoleError> {
    let entries = c
        .app
        .store
        .audit_entries(&AuditQuery {
            resource: Some(format!("flag:{env}/{key}")),
            action: Some("rollout.".into()),
            since: Some(at(r.started_at_ms)),
            limit: 1000,
            ..AuditQuery::default()
        })
        .await?;
    let mut pauses = Vec::new();
    let mut open = None;
    let mut ended = None;
    for e in entries {
        let ms = e.at.timestamp_millis();
        match e.action.as_str() {
            "rollout.paused" => open = Some(ms),
            // A step that waited for its guards shifted the schedule as a pause does.
            "rollout.advanced" => {
                if let Some(w) = e.details["waited_ms"].as_i64().filter(|w| *w > 0) {
                    pauses.push((ms - w, ms));
                }
            }
            "rollout.resumed" => {
                if let Some(p) = open.take() {
                    pauses.push((p, ms));
                }
            }
            "rollout.rolled-back" => {
                if let Some(p) = open.take() {
                    pauses.push((p, ms));
                }
                ended = Some(ms);
            }
            // A new rollout on the same flag: what came before was another one's.
            "rollout.started" => {
                pauses.clear();
                open = None;
                ended = None;
            }
            _ => {}
        }
    }
    Ok((pauses, ended))
}

async fn rollout_view(
    c: &Console,
    who: &Caller,
    env: &str,
    key: &str,
    r: &Rollout,
    index: usize,
    now: DateTime<Utc>,
) -> Result<RolloutView, ConsoleError> {
    let (mut pauses, ended) = history(c, env, key, r).await?;
    // A step due now that waits for its guards: held since its scheduled start.
    if let (Some(_), Some(since)) = (r.due_step(now.timestamp_millis()), r.next_due_ms()) {
        pauses.push((since, now.timestamp_millis().max(since)));
    }
    pauses.sort_unstable();
    let chart = chart::chart(&format!("ro{index}"), r, &pauses, ended, now);
    let readings = c.app.guards.readings(env, key, r.started_at_ms);
    let status = crate::ops::layers::status_read(env, key, r, readings.as_ref(), now);
    let guards = status
        .guards
        .iter()
        .zip(&r.guards)
        .map(|(g, guard)| GuardRow {
            condition: guard.condition.to_string(),
            on_breach: g.on_breach.as_str(),
            state: g.state.as_str(),
            value: g.value.map_or_else(|| "-".to_owned(), |v| format!("{v}")),
            min_sample: g.min_sample.clone(),
            read: g
                .read_at
                .map_or_else(|| "not read yet".to_owned(), |t| relative(now, t)),
            reason: g.reason.clone(),
        })
        .collect();
    let (state, ops): (_, Vec<(&'static str, &'static str)>) = match r.state {
        RolloutState::Running => (
            "running",
            vec![("pause", "Pause"), ("rollback", "Roll back")],
        ),
        RolloutState::Paused => (
            "paused",
            vec![("resume", "Resume"), ("rollback", "Roll back")],
        ),
        RolloutState::RolledBack => ("rolled back", vec![]),
        RolloutState::Completed => ("completed", vec![]),
    };
    // The same check the control itself makes (`control_rollout` → `authorize_flag`).
    let (allowed_by, refusal) = authority(c, who, env, key, "edit-rollout", now);
    Ok(RolloutView {
        variant: r.variant.clone(),
        guards,
        held: status.held,
        state,
        chart,
        ops,
        allowed_by,
        refusal,
    })
}

/// Every flag's extras in `env`, by key.
pub async fn extras(
    c: &Console,
    who: &Caller,
    env: &str,
) -> Result<HashMap<String, Extras>, ConsoleError> {
    let now = c.app.now();
    let now_ms = now.timestamp_millis();
    let mut out: HashMap<String, Extras> = HashMap::new();
    for (e, key, body) in c.app.store.flag_layers().await? {
        if e != env {
            continue;
        }
        let Ok(layers) = serde_json::from_value::<FlagLayers>(body) else {
            continue;
        };
        let x = out.entry(key.clone()).or_default();
        let mut targets: Vec<_> = layers
            .targets
            .into_iter()
            .filter(|t| t.expires_at_ms > now_ms)
            .collect();
        targets.sort_by_key(|t| t.expires_at_ms);
        x.targets = targets
            .into_iter()
            .map(|t| TargetRow {
                who: t.group.unwrap_or_else(|| t.keys.join(", ")),
                variant: t.variant,
                created_by: t.created_by,
                expires_at: iso(at(t.expires_at_ms)),
                expires_in: relative(now, at(t.expires_at_ms)),
            })
            .collect();
        if let Some(r) = &layers.rollout {
            let index = out.len();
            let view = rollout_view(c, who, env, &key, r, index, now).await?;
            if let Some(x) = out.get_mut(&key) {
                x.rollout = Some(view);
            }
        }
    }
    for cr in c
        .app
        .change_requests(who, Some(env), Some("pending"))
        .await?
    {
        out.entry(cr.key.clone())
            .or_default()
            .proposals
            .push(page::change_row(cr, now));
    }
    for s in c.app.store.scheduled_changes(Some(env)).await? {
        let s = crate::ops::schedule::scheduled_view(s)?;
        if s.status != sluice_api::flags::ScheduledStatus::Pending {
            continue;
        }
        out.entry(s.key.clone())
            .or_default()
            .scheduled
            .push(ScheduledRow {
                change: page::describe(&s.change.change),
                created_by: s.created_by,
                apply_at: iso(s.apply_at),
                apply_in: relative(now, s.apply_at),
                id: s.id,
            });
    }
    Ok(out)
}

/// `POST /ui/flags/{env}/{key}/rollout/{op}`: pause, resume or roll back, as
/// `POST /v1/environments/{env}/flags/{key}/rollout/{op}`.
pub async fn control(
    State(c): State<Console>,
    signed: Signed,
    headers: HeaderMap,
    Path((env, key, op)): Path<(String, String, String)>,
    Form(form): Form<super::session::CsrfForm>,
) -> Result<Response, ConsoleError> {
    let (op, notice) = match op.as_str() {
        "pause" => (RolloutOp::Pause, "paused"),
        "resume" => (RolloutOp::Resume, "resumed"),
        "rollback" => (RolloutOp::Rollback, "rolled-back"),
        _ => return Ok(page::not_found()),
    };
    signed.check_form(&headers, &form.csrf)?;
    c.app
        .control_rollout(&signed.caller, &env, &key, op)
        .await?;
    Ok(Redirect::to(&back_to(&env, notice, Some(&key))).into_response())
}

/// What allows `action` on the flag now, or the refusal it would meet: the same check the
/// change itself makes (`change_flag` → `authorize_flag`).
pub fn authority(
    c: &Console,
    who: &Caller,
    env: &str,
    key: &str,
    action: &str,
    now: DateTime<Utc>,
) -> (Option<String>, String) {
    match c
        .app
        .authorize_flag(&who.name, who.admin, env, key, action, now)
    {
        Ok(Authority::Grant {
            grant_id,
            expires_at,
        }) => (
            Some(format!(
                "your grant {grant_id} (ends {})",
                relative(now, expires_at)
            )),
            String::new(),
        ),
        Ok(Authority::Admin) => (Some("you are an administrator".into()), String::new()),
        Ok(_) => (Some("your standing permission".into()), String::new()),
        Err(e) => (None, e.to_string()),
    }
}

/// The flags page of `env` after a form, with `notice`, at the flag's card.
pub fn back_to(env: &str, notice: &str, key: Option<&str>) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let anchor = key.map(|k| format!("#flag-{}", enc(k))).unwrap_or_default();
    format!("/ui/flags?env={}&notice={notice}{anchor}", enc(env))
}
