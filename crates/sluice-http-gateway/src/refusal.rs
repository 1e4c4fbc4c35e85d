//! Every answer the gateway gives instead of the upstream's, turned into a response in this
//! one place: JSON `{code, message, …}`, `code` stable for programs, `message` saying what to
//! do next.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;
use sluice_core::decision::GrantHint;
use sluice_server::gateway::stamp;

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("missing or invalid Sluice token; pass `Authorization: Bearer <token>` or `X-Sluice-Token: <token>`")]
    Unauthenticated,
    #[error("the Sluice token expired; ask for a new one (`sluice tokens create`)")]
    TokenExpired,
    #[error("{principal} has no live grant for `{action}` on {resource}{hint}")]
    NoGrant {
        principal: String,
        action: String,
        resource: String,
        hint: GrantHint,
    },
    #[error("grant {grant_id} for `{action}` on {resource} expired at {}; request access again", stamp(*expired_at))]
    GrantExpired {
        action: String,
        resource: String,
        grant_id: String,
        expired_at: DateTime<Utc>,
    },
    #[error("{resource} is not a service of this gateway")]
    UnknownService { resource: String },
    #[error("{0}; send the path in one unambiguous form")]
    AmbiguousPath(#[from] crate::path::PathError),
    #[error("method `{0}` is not upper case; HTTP methods are case-sensitive and this gateway decides on upper-case ones only")]
    AmbiguousMethod(String),
    #[error("request body is larger than {resource}'s limit of {limit} bytes")]
    BodyTooLarge { resource: String, limit: u64 },
    #[error("{resource} is not reachable right now: {detail}")]
    UpstreamUnavailable { resource: String, detail: String },
    #[error("{resource} did not answer within {seconds}s")]
    UpstreamTimeout { resource: String, seconds: u64 },
    #[error("the gateway cannot read {resource}'s upstream credential; an administrator must fix its configuration")]
    CredentialUnavailable { resource: String },
    #[error("the call could not be recorded in the audit trail, so it was not forwarded; try again shortly")]
    AuditUnavailable,
    #[error("the gateway cannot check tokens right now; try again shortly")]
    Unavailable,
    /// Too many failed authentications from this address or with this token prefix (the
    /// server's own count, shared with the API).
    #[error("too many failed authentications from this address or with this token prefix; retry after {retry_after} s (Retry-After)")]
    TooManyFailures { retry_after: u64 },
    /// The grant ended (or an administrator ended the call) before the upstream answered.
    #[error("{0}")]
    AccessEnded(String),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::TokenExpired => "token_expired",
            Refusal::NoGrant { .. } => "no_grant",
            Refusal::GrantExpired { .. } => "grant_expired",
            Refusal::UnknownService { .. } => "unknown_service",
            Refusal::AmbiguousPath(_) => "ambiguous_path",
            Refusal::AmbiguousMethod(_) => "ambiguous_method",
            Refusal::BodyTooLarge { .. } => "body_too_large",
            Refusal::UpstreamUnavailable { .. } => "upstream_unavailable",
            Refusal::UpstreamTimeout { .. } => "upstream_timeout",
            Refusal::CredentialUnavailable { .. } => "credential_unavailable",
            Refusal::AuditUnavailable => "audit_unavailable",
            Refusal::Unavailable => "unavailable",
            Refusal::TooManyFailures { .. } => "too_many_failed_authentications",
            Refusal::AccessEnded(_) => "access_ended",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Unauthenticated | Refusal::TokenExpired => StatusCode::UNAUTHORIZED,
            Refusal::NoGrant { .. } | Refusal::GrantExpired { .. } | Refusal::AccessEnded(_) => {
                StatusCode::FORBIDDEN
            }
            Refusal::UnknownService { .. } => StatusCode::NOT_FOUND,
            Refusal::TooManyFailures { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::AmbiguousPath(_) | Refusal::AmbiguousMethod(_) => StatusCode::BAD_REQUEST,
            Refusal::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::UpstreamUnavailable { .. } => StatusCode::BAD_GATEWAY,
            Refusal::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Refusal::CredentialUnavailable { .. }
            | Refusal::AuditUnavailable
            | Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A refusal by policy, which goes to the refusal log.
    pub fn by_policy(&self) -> bool {
        matches!(self, Refusal::NoGrant { .. } | Refusal::GrantExpired { .. })
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut body = json!({"code": self.code(), "message": self.to_string()});
        match &self {
            Refusal::NoGrant { hint, .. } => match hint {
                GrantHint::Request {
                    entitlement,
                    command,
                } => {
                    body["entitlement"] = json!(entitlement);
                    body["request"] = json!(command);
                }
                GrantHint::NotRequestable { entitlement } => {
                    body["entitlement"] = json!(entitlement);
                }
                GrantHint::NoEntitlement => {}
            },
            Refusal::GrantExpired {
                grant_id,
                expired_at,
                ..
            } => {
                body["grant_id"] = json!(grant_id);
                body["expired_at"] = json!(stamp(*expired_at));
            }
            _ => {}
        }
        let mut resp = (self.status(), axum::Json(body)).into_response();
        if self.status() == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Refusal::TooManyFailures { retry_after } = self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        resp
    }
}
