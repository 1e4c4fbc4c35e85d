//! The console's templates (checked at compile time by `askama`) and the error page.

use crate::error::ApiError;
use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use sluice_core::access::AccessRequest;
use sluice_core::duration::relative;
use sluice_core::policy::Policy;

/// The navigation bar of a signed-in page.
pub struct Chrome {
    pub who: String,
    pub csrf: String,
    /// Which tab is current: `inbox`, `access`, `flags`, `search`, `sessions`, `audit`.
    pub active: &'static str,
}

/// `?notice=…` after a form (see [`notice`]).
#[derive(serde::Deserialize)]
pub struct NoticeQuery {
    pub notice: Option<String>,
}

/// Renders `t` as HTML with `status`; a template that fails to render is a 500.
pub fn render<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
pub struct SignIn {
    pub error: Option<String>,
    /// The identity provider's name, when sign-in through one is configured.
    pub provider: Option<String>,
}

#[derive(Template)]
#[template(path = "console/error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// What a console request can end in, besides a page.
#[derive(Debug)]
pub enum ConsoleError {
    /// No live session: a page goes to the sign-in form, anything else gets 401.
    NoSession { page: bool },
    /// A form without this session's CSRF token, or from another site.
    Refused(String),
    /// An operation's refusal or failure, with the API's status, code and message.
    Api(ApiError),
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        ConsoleError::Api(e)
    }
}

impl From<crate::ops::OpError> for ConsoleError {
    fn from(e: crate::ops::OpError) -> Self {
        ConsoleError::Api(ApiError::from(e))
    }
}

impl From<sluice_store::StoreError> for ConsoleError {
    fn from(e: sluice_store::StoreError) -> Self {
        ConsoleError::Api(ApiError::from(e))
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ConsoleError::NoSession { page: true } => {
                return Redirect::to("/ui/sign-in").into_response()
            }
            ConsoleError::NoSession { page: false } => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated".to_owned(),
                "sign in first".to_owned(),
            ),
            ConsoleError::Refused(m) => (StatusCode::FORBIDDEN, "csrf".to_owned(), m),
            ConsoleError::Api(e) => {
                let status = e.status();
                if status.is_server_error() {
                    tracing::error!(code = e.code(), error = %e, "console: {e}");
                }
                (status, e.code().to_owned(), e.to_string())
            }
        };
        render(
            status,
            &ErrorPage {
                status: status.as_u16(),
                code,
                message,
            },
        )
    }
}

pub fn not_found() -> Response {
    render(
        StatusCode::NOT_FOUND,
        &ErrorPage {
            status: 404,
            code: "not_found".into(),
            message: "no such page".into(),
        },
    )
}

/// An access request as the console lists it.
pub struct RequestRow {
    pub id: String,
    pub requester: String,
    pub entitlement: String,
    /// `read on db:orders; toggle on flag:production/**`
    pub scopes: String,
    pub duration: String,
    pub reason: String,
    pub ticket: String,
    pub status: &'static str,
    /// `3m ago`
    pub waited: String,
    pub created_at: String,
    /// RFC 3339 (for the countdown), and in words as of rendering.
    pub expires_at: String,
    pub expires_in: String,
    pub approvals: String,
    pub next_step: String,
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn row(r: &AccessRequest, policy: &Policy, now: DateTime<Utc>) -> RequestRow {
    let view = crate::routes::views::request_view(r, policy, now);
    RequestRow {
        id: view.id,
        requester: view.requester,
        entitlement: view.entitlement,
        scopes: view
            .scopes
            .iter()
            .map(|s| format!("{} on {}", s.actions.join(", "), s.resource))
            .collect::<Vec<_>>()
            .join("; "),
        duration: view.duration,
        reason: view.reason,
        ticket: view.ticket.unwrap_or_default(),
        status: r.status_at(now).as_str(),
        waited: relative(now, r.created_at),
        created_at: iso(r.created_at),
        expires_at: r.expires_at.map(iso).unwrap_or_default(),
        expires_in: r.expires_at.map(|t| relative(now, t)).unwrap_or_default(),
        approvals: format!("{} of {}", view.approvals, view.required_approvals),
        next_step: view.next_step.unwrap_or_default(),
    }
}

/// A notice after a form, chosen from a fixed list (never text from the query string).
pub fn notice(key: Option<&str>) -> Option<&'static str> {
    match key? {
        "approved" => Some("Approved."),
        "denied" => Some("Denied."),
        "requested" => Some("Requested."),
        "cancelled" => Some("Request withdrawn."),
        "relinquished" => Some("Access given back."),
        "toggled" => Some("Flag changed."),
        "extension" => Some("More time requested."),
        "reviewed" => Some("Marked as reviewed."),
        "paused" => Some("Rollout paused."),
        "resumed" => Some("Rollout resumed."),
        "rolled-back" => Some("Rollout rolled back."),
        _ => None,
    }
}

/// A change request (four eyes) as the inbox lists it.
pub struct ChangeRow {
    pub id: String,
    pub proposer: String,
    pub environment: String,
    pub key: String,
    /// `turn OFF`, `set the default to `on``, …
    pub change: String,
    pub reason: String,
    pub waited: String,
    pub created_at: String,
    pub approvals: String,
}

/// A flag change in words.
pub fn describe(c: &sluice_api::flags::FlagChange) -> String {
    use sluice_api::flags::FlagChange as C;
    match c {
        C::Put { .. } => "replace the whole definition".into(),
        C::SetState { enabled: true } => "turn ON".into(),
        C::SetState { enabled: false } => "turn OFF".into(),
        C::SetDefault { variant } => format!("set the default variant to `{variant}`"),
        C::SetTargeting { targeting: None } => "remove the targeting rule".into(),
        C::SetTargeting { .. } => "replace the targeting rule".into(),
        C::SetMetadata { .. } => "replace the metadata".into(),
        C::Delete => "delete the flag".into(),
    }
}

pub fn change_row(v: sluice_api::flags::ChangeRequestView, now: DateTime<Utc>) -> ChangeRow {
    ChangeRow {
        change: describe(&v.change),
        waited: relative(now, v.created_at),
        created_at: iso(v.created_at),
        approvals: format!("{} of {}", v.approvals, v.required.unwrap_or(1)),
        id: v.id,
        proposer: v.proposer,
        environment: v.environment,
        key: v.key,
        reason: v.reason,
    }
}
