//! Flags: environments, each flag's state and default, the protected badge, and the toggle —
//! offered with what allows it, or with the refusal that says what to request — and beside
//! each flag its targets, rollout, proposals and scheduled changes (see `flag_layers`).

use super::flag_layers::{self, authority, back_to, Extras};
use super::page::{self, Chrome, ConsoleError};
use super::session::Signed;
use super::Console;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use sluice_api::flags::FlagChange;

pub struct EnvTab {
    pub name: String,
    pub protected: bool,
    pub current: bool,
}

pub struct FlagRow {
    pub key: String,
    pub enabled: bool,
    pub default_variant: String,
    pub variants: String,
    pub targeting: bool,
    pub revision: i64,
    /// How often and when last it was evaluated, as stored (see `insight`): "never", or
    /// "1,204 times, last 2026-12-03 18:04 UTC".
    pub evaluated: String,
    /// What allows a toggle now, if anything does.
    pub allowed_by: Option<String>,
    /// Otherwise, the refusal a toggle would meet (it names what to request).
    pub refusal: String,
    pub extras: Extras,
}

#[derive(Template)]
#[template(path = "console/flags.html")]
pub struct FlagsPage {
    pub chrome: Chrome,
    pub csrf: String,
    pub notice: Option<&'static str>,
    pub envs: Vec<EnvTab>,
    pub env: String,
    pub protected: bool,
    pub flags: Vec<FlagRow>,
}

#[derive(Deserialize)]
pub struct FlagsQuery {
    env: Option<String>,
    notice: Option<String>,
}

pub async fn page(
    State(c): State<Console>,
    signed: Signed,
    Query(q): Query<FlagsQuery>,
) -> Result<Response, ConsoleError> {
    let app = &c.app;
    let policy = app.policy();
    let sets = app.store.flag_sets().await?;
    let mut names: Vec<String> = sets.iter().map(|s| s.environment.clone()).collect();
    names.extend(policy.doc.environments.keys().cloned());
    names.sort();
    names.dedup();
    let env = q
        .env
        .filter(|e| names.contains(e))
        .or_else(|| names.first().cloned())
        .unwrap_or_default();
    let now = app.now();
    let who = &signed.caller;
    let mut extras = flag_layers::extras(&c, who, &env).await?;
    // Stored counts only: a page view does not flush (they are at most one flush behind).
    let mut evaluated: std::collections::HashMap<String, (i64, chrono::DateTime<chrono::Utc>)> =
        std::collections::HashMap::new();
    for t in app.store.evaluation_totals(&env, i64::MIN).await? {
        let e = evaluated.entry(t.flag_key).or_insert((0, t.last_at));
        e.0 += t.count;
        e.1 = e.1.max(t.last_at);
    }
    let flags = sets
        .into_iter()
        .find(|s| s.environment == env)
        .map(|s| s.flags)
        .unwrap_or_default()
        .into_iter()
        .map(|f| {
            let d = &f.definition;
            let (allowed_by, refusal) = authority(&c, who, &env, &f.key, "toggle", now);
            FlagRow {
                enabled: d["state"].as_str() != Some("DISABLED"),
                default_variant: d["defaultVariant"].as_str().unwrap_or("").to_owned(),
                variants: d["variants"]
                    .as_object()
                    .map(|v| v.keys().cloned().collect::<Vec<_>>().join(", "))
                    .unwrap_or_default(),
                targeting: d.get("targeting").is_some_and(|t| !t.is_null()),
                revision: f.revision,
                evaluated: match evaluated.get(&f.key) {
                    Some((n, last)) => format!(
                        "{n} time{}, last {} UTC",
                        if *n == 1 { "" } else { "s" },
                        last.format("%Y-%m-%d %H:%M")
                    ),
                    None => "never".to_owned(),
                },
                extras: extras.remove(&f.key).unwrap_or_default(),
                key: f.key,
                allowed_by,
                refusal,
            }
        })
        .collect();
    let envs = names
        .iter()
        .map(|n| EnvTab {
            name: n.clone(),
            protected: policy.is_protected(n),
            current: *n == env,
        })
        .collect();
    Ok(page::render(
        StatusCode::OK,
        &FlagsPage {
            chrome: signed.chrome("flags"),
            csrf: signed.csrf.clone(),
            notice: page::notice(q.notice.as_deref()),
            protected: policy.is_protected(&env),
            envs,
            env,
            flags,
        },
    ))
}

#[derive(Deserialize)]
pub struct ToggleForm {
    #[serde(default)]
    csrf: String,
    /// `on` or `off`.
    #[serde(default)]
    state: String,
    /// The revision the page showed: a flag changed since is refused as stale.
    revision: Option<i64>,
}

/// The same operation as `POST /v1/environments/{env}/flags/{key}/changes` with `set-state`.
pub async fn toggle(
    State(c): State<Console>,
    signed: Signed,
    headers: HeaderMap,
    Path((env, key)): Path<(String, String)>,
    Form(form): Form<ToggleForm>,
) -> Result<Response, ConsoleError> {
    signed.check_form(&headers, &form.csrf)?;
    let change = FlagChange::SetState {
        enabled: form.state == "on",
    };
    let who = &signed.caller;
    c.app
        .change_flag(
            &who.name,
            who.admin,
            None,
            &env,
            &key,
            &change,
            form.revision,
            false,
        )
        .await?;
    Ok(Redirect::to(&back_to(&env, "toggled", Some(&key))).into_response())
}
