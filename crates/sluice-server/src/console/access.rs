//! My access: the request form, my pending requests, my live grants with their countdown.

use super::page::{self, Chrome, ConsoleError, NoticeQuery, RequestRow};
use super::session::Signed;
use super::Console;
use crate::error::ApiError;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use sluice_core::access::{RequestInput, RequestStatus};
use sluice_core::duration::Duration;
use sluice_core::policy::ReasonRule;
use sluice_store::RequestFilter;

/// An entitlement the signed-in person may request, as the form offers it.
pub struct Offer {
    pub name: String,
    pub description: String,
    pub max_duration: String,
    /// Durations to pick from, each within the entitlement's cap (the operation checks the
    /// cap again; this only spares people a refusal).
    pub durations: Vec<String>,
    pub reason_required: bool,
    pub ticket_pattern: String,
    pub auto_approve: String,
}

#[derive(Template)]
#[template(path = "console/access.html")]
pub struct AccessPage {
    pub chrome: Chrome,
    pub notice: Option<&'static str>,
    pub error: Option<String>,
    pub csrf: String,
    pub offers: Vec<Offer>,
    /// The part the script re-fetches when access moves.
    pub live: AccessLive,
}

#[derive(Template)]
#[template(path = "console/access_live.html")]
pub struct AccessLive {
    pub csrf: String,
    pub pending: Vec<RequestRow>,
    pub grants: Vec<RequestRow>,
}

const CHOICES: [u64; 8] = [
    15 * 60,
    30 * 60,
    3600,
    2 * 3600,
    4 * 3600,
    8 * 3600,
    24 * 3600,
    7 * 24 * 3600,
];

fn offers(c: &Console, signed: &Signed) -> Vec<Offer> {
    let policy = c.app.policy();
    policy
        .doc
        .entitlements
        .iter()
        .filter(|e| policy.is_in(&signed.caller.name, &e.requesters))
        .map(|e| {
            let cap = e.max_duration.as_secs();
            let mut durations: Vec<String> = CHOICES
                .iter()
                .filter(|s| **s < cap)
                .map(|s| Duration::from_secs(*s).to_string())
                .collect();
            durations.push(e.max_duration.to_string());
            Offer {
                name: e.name.clone(),
                description: e.description.clone(),
                max_duration: e.max_duration.to_string(),
                durations,
                reason_required: e.reason == ReasonRule::Required,
                ticket_pattern: e.ticket_pattern.clone().unwrap_or_default(),
                auto_approve: e
                    .auto_approve
                    .as_ref()
                    .map(|a| {
                        format!(
                            "approved at once for {} up to {}",
                            a.requester_in.join(", "),
                            a.max_duration
                        )
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// My newest 50 pending requests and my live grants (soonest to end first).
async fn live(c: &Console, signed: &Signed) -> Result<AccessLive, ConsoleError> {
    let me = &signed.caller.name;
    let policy = c.app.policy();
    let now = c.app.now();
    let filter = RequestFilter {
        requester: Some(me.clone()),
        status: Some(RequestStatus::Pending),
        needs_review: None,
        limit: Some(50),
        visible_to: None,
    };
    let pending = c
        .app
        .visible_requests(&signed.caller, filter)
        .await?
        .iter()
        .filter(|r| r.status_at(now) == RequestStatus::Pending)
        .map(|r| page::row(r, &policy, now))
        .collect();
    let mut active: Vec<_> = c
        .app
        .store
        .active_requests()
        .await?
        .into_iter()
        .filter(|r| &r.requester == me && r.is_live(now))
        .collect();
    active.sort_by_key(|r| r.expires_at);
    let grants = active.iter().map(|r| page::row(r, &policy, now)).collect();
    Ok(AccessLive {
        csrf: signed.csrf.clone(),
        pending,
        grants,
    })
}

async fn render_page(
    c: &Console,
    signed: &Signed,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Result<Response, ConsoleError> {
    Ok(page::render(
        status,
        &AccessPage {
            chrome: signed.chrome("access"),
            notice,
            error,
            csrf: signed.csrf.clone(),
            offers: offers(c, signed),
            live: live(c, signed).await?,
        },
    ))
}

pub async fn page(
    State(c): State<Console>,
    signed: Signed,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, ConsoleError> {
    render_page(
        &c,
        &signed,
        StatusCode::OK,
        page::notice(q.notice.as_deref()),
        None,
    )
    .await
}

pub async fn fragment(State(c): State<Console>, signed: Signed) -> Result<Response, ConsoleError> {
    Ok(page::render(StatusCode::OK, &live(&c, &signed).await?))
}

#[derive(Deserialize)]
pub struct RequestForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    entitlement: String,
    #[serde(default)]
    duration: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    ticket: String,
}

/// The same operation as `POST /v1/requests`; a refusal is shown above the form.
pub async fn request(
    State(c): State<Console>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<RequestForm>,
) -> Result<Response, ConsoleError> {
    signed.check_form(&headers, &form.csrf)?;
    let opened: Result<_, ApiError> = async {
        let input = RequestInput {
            entitlement: form.entitlement,
            scopes: None,
            duration: duration(&form.duration)?,
            reason: form.reason,
            ticket: Some(form.ticket.trim().to_owned()).filter(|t| !t.is_empty()),
            break_glass: false,
        };
        Ok(c.app.open_request(&signed.caller, input, None).await?)
    }
    .await;
    answer(&c, &signed, opened, "requested").await
}

/// A duration from a form: empty for the entitlement's default.
fn duration(text: &str) -> Result<Option<Duration>, ApiError> {
    match text.trim() {
        "" => Ok(None),
        d => Duration::parse(d)
            .map(Some)
            .map_err(|e| ApiError::bad_request(crate::ops::Input::Duration, e.to_string())),
    }
}

/// After a form that opens a request: back to the page with `notice`, or the page again
/// with the refusal above the form.
async fn answer(
    c: &Console,
    signed: &Signed,
    opened: Result<sluice_core::access::AccessRequest, ApiError>,
    notice: &str,
) -> Result<Response, ConsoleError> {
    match opened {
        Ok(_) => Ok(Redirect::to(&format!("/ui/access?notice={notice}")).into_response()),
        Err(e) => render_page(c, signed, e.status(), None, Some(e.to_string())).await,
    }
}

#[derive(Deserialize)]
pub struct ExtendForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    duration: String,
    #[serde(default)]
    reason: String,
}

/// More time on a live grant: the same operation as `POST /v1/requests/{id}/extend` — a new
/// request linked to the grant, approved under the same rules.
pub async fn extend(
    State(c): State<Console>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ExtendForm>,
) -> Result<Response, ConsoleError> {
    signed.check_form(&headers, &form.csrf)?;
    let opened: Result<_, ApiError> = async {
        let duration = duration(&form.duration)?;
        Ok(c.app
            .extend_request(&signed.caller, &id, duration, form.reason, None)
            .await?)
    }
    .await;
    answer(&c, &signed, opened, "extension").await
}
