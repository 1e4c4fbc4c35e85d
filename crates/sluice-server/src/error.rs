//! One error type for the HTTP layer, turned into a response in exactly one place.
//!
//! Every error body is `{"code": "...", "message": "..."}`: `code` is stable and meant for
//! programs, `message` is for people and says what to do next.

use crate::oidc::SignInError;
use crate::ops::{Clash, Input, OpError};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
pub use sluice_api::error::ErrorBody;
use sluice_core::access::AccessError;
use sluice_core::approvals::ApprovalError;
use sluice_core::change_request::ChangeRequestError;
use sluice_eval::layers::RolloutError;
use sluice_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid token; pass `Authorization: Bearer <token>`")]
    Unauthenticated,
    #[error("token expired; ask for a new one (`sluice tokens create`)")]
    TokenExpired,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The path is served, not with this method (the `Allow` header lists those it is).
    #[error("{0} is not served on this path; the Allow header lists the methods that are")]
    MethodNotAllowed(String),
    /// A flag write named an environment that neither the policy declares nor holds flags.
    #[error("{0}")]
    UnknownEnvironment(String),
    /// A write collided with another; trying again may succeed.
    #[error("{0}")]
    Conflict(String),
    /// This instance's signing key is not the one the trail's checkpoints are signed with.
    #[error("{0}")]
    SigningKeyMismatch(String),
    /// An operation's refusal; its status and code are decided below, and only here.
    #[error(transparent)]
    Op(OpError),
    /// Over a request rate; the next request passes in `retry_after` seconds.
    #[error("too many requests; slow down and retry after {retry_after} s (Retry-After)")]
    RateLimited { retry_after: u64 },
    /// Too many failed authentications from this source or with this token prefix this minute.
    #[error("too many failed authentications from this address or with this token prefix; retry after {retry_after} s (Retry-After)")]
    TooManyFailures { retry_after: u64 },
    /// The body is larger than the route accepts; `limit` is that size in bytes.
    #[error("request body is larger than the limit of {} on this endpoint", human_bytes(*limit))]
    PayloadTooLarge { limit: usize },
    /// The request's header section is over a limit; the message names it.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// The request target (path and query) is longer than the limit; the message names it.
    #[error("{0}")]
    UriTooLong(String),
    #[error("the store is unavailable; try again shortly")]
    Unavailable(String),
    /// A lock held elsewhere or a statement outlasted its timeout.
    #[error("the store is busy (a lock held elsewhere or a slow statement outlasted its timeout); try again shortly")]
    StoreBusy(String),
    /// The disk or database is full.
    #[error("the store is full: nothing can be written until an operator frees space")]
    StoreFull(String),
    #[error("internal error; the server log has details")]
    Internal(String),
}

/// The routers' answer to a served path asked with another method (axum adds `Allow`).
pub async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

impl ApiError {
    /// Refused input: `input` names which part (and so the stable code), `message` why.
    pub fn bad_request(input: Input, message: impl Into<String>) -> Self {
        ApiError::Op(OpError::invalid(input, message))
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::TokenExpired => "token_expired",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::UnknownEnvironment(_) => "unknown_environment",
            ApiError::Conflict(_) => "conflict",
            ApiError::SigningKeyMismatch(_) => "signing_key_mismatch",
            ApiError::Op(e) => op_code(e),
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::TooManyFailures { .. } => "too_many_failed_authentications",
            ApiError::PayloadTooLarge { .. } => "body_too_large",
            ApiError::HeadersTooLarge(_) => "headers_too_large",
            ApiError::UriTooLong(_) => "uri_too_long",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::StoreBusy(_) => "store_busy",
            ApiError::StoreFull(_) => "store_full",
            ApiError::Internal(_) => "internal",
        }
    }

    /// Is this a refusal by policy (someone tried what they may not), worth an audit entry?
    pub fn is_refusal(&self) -> bool {
        match self {
            ApiError::Forbidden(_) | ApiError::Op(OpError::Forbidden(_)) => true,
            ApiError::Op(OpError::Access(e)) => {
                e.is_forbidden()
                    || matches!(
                        e,
                        AccessError::DurationOverCap { .. }
                            | AccessError::ScopeTooWide { .. }
                            | AccessError::BreakGlassNotAllowed(_)
                    )
            }
            ApiError::Op(OpError::ChangeRequest(e)) => change_request_forbidden(e),
            _ => false,
        }
    }

    /// The `Retry-After` (seconds) this answer carries: when a throttled caller may try again,
    /// and 1 s for an unavailable store.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooManyFailures { retry_after } | ApiError::RateLimited { retry_after } => {
                Some(*retry_after)
            }
            _ if self.status() == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated | ApiError::TokenExpired => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::UnknownEnvironment(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) | ApiError::SigningKeyMismatch(_) => StatusCode::CONFLICT,
            ApiError::Op(e) => op_status(e),
            ApiError::RateLimited { .. } | ApiError::TooManyFailures { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::Unavailable(_) | ApiError::StoreBusy(_) | ApiError::StoreFull(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl OpError {
    /// The stable code this is answered with, as audit entries record it.
    pub fn code(&self) -> &'static str {
        op_code(self)
    }
}

fn op_code(e: &OpError) -> &'static str {
    match e {
        OpError::Access(e) => e.code(),
        OpError::ChangeRequest(e) => change_request_code(e),
        OpError::Policy(e) => e.code(),
        OpError::Rollout { error, .. } => match error {
            RolloutError::InvalidSteps(_) => "invalid_steps",
            RolloutError::InvalidGuard(_) => "invalid_guard",
            RolloutError::Completed { .. } | RolloutError::WrongState { .. } => "wrong_state",
        },
        OpError::StaleRevision { .. } => "stale_revision",
        OpError::NotFound(_) => "not_found",
        OpError::UnknownEnvironment { .. } => "unknown_environment",
        OpError::Forbidden(_) => "forbidden",
        OpError::Invalid { input, .. } => input_code(*input),
        OpError::Conflict(c) => match c {
            Clash::NotPending(_) => "not_pending",
            Clash::PolicyChanged { .. } => "policy_changed",
            Clash::AlreadyRevoked(_) => "already_revoked",
            Clash::DeclaredInConfig { .. } | Clash::ServiceInConfig { .. } => "declared_in_config",
        },
        OpError::SignIn(e) => e.code(),
        OpError::Store(StoreError::Unavailable(_)) => "unavailable",
        OpError::Store(StoreError::Busy(_)) => "store_busy",
        OpError::Store(StoreError::Full(_)) => "store_full",
        OpError::Store(StoreError::Conflict(_) | StoreError::Stale(_)) => "conflict",
        OpError::Store(_) | OpError::Internal(_) => "internal",
    }
}

/// The stable code of refused input, by which part of it.
fn input_code(input: Input) -> &'static str {
    match input {
        Input::AdminToken => "invalid_admin_token",
        Input::Body => "invalid_body",
        Input::BatchSize => "too_many_evaluations",
        Input::Change => "invalid_change",
        Input::Context => "invalid_context",
        Input::Database => "invalid_database",
        Input::Depth => "too_deep",
        Input::Duration => "invalid_duration",
        Input::Environment => "invalid_environment",
        Input::Flag => "invalid_flag",
        Input::Flags => "invalid_flags",
        Input::ImportMode => "invalid_mode",
        Input::Json => "invalid_json",
        Input::Keys => "invalid_keys",
        Input::ListLength => "list_too_long",
        Input::MissingEnvironment => "environment_required",
        Input::NameLength => "name_too_long",
        Input::Nul => "nul_character",
        Input::Op => "invalid_op",
        Input::PageToken => "invalid_page_token",
        Input::Query => "invalid_query",
        Input::Request => "invalid_request",
        Input::Scope => "invalid_scope",
        Input::Service => "invalid_service",
        Input::Status => "invalid_status",
        Input::StringLength => "string_too_long",
        Input::TargetOutlivesGrant => "target_outlives_grant",
        Input::Time => "invalid_time",
        Input::TokenKind => "invalid_kind",
        Input::UnknownField => "unknown_field",
        Input::Variant => "unknown_variant",
    }
}

fn op_status(e: &OpError) -> StatusCode {
    match e {
        OpError::Access(e) if e.is_forbidden() => StatusCode::FORBIDDEN,
        OpError::Access(e) if e.is_conflict() => StatusCode::CONFLICT,
        OpError::Access(AccessError::UnknownEntitlement(_)) => StatusCode::NOT_FOUND,
        OpError::Access(_) => StatusCode::UNPROCESSABLE_ENTITY,
        OpError::ChangeRequest(e) if change_request_forbidden(e) => StatusCode::FORBIDDEN,
        OpError::ChangeRequest(
            ChangeRequestError::WrongStatus { .. }
            | ChangeRequestError::Approval(ApprovalError::AlreadyVoted(_)),
        ) => StatusCode::CONFLICT,
        OpError::ChangeRequest(_) | OpError::Policy(_) => StatusCode::BAD_REQUEST,
        OpError::Rollout {
            error: RolloutError::InvalidSteps(_) | RolloutError::InvalidGuard(_),
            ..
        } => StatusCode::BAD_REQUEST,
        OpError::Rollout { .. } | OpError::StaleRevision { .. } => StatusCode::CONFLICT,
        OpError::NotFound(_) | OpError::UnknownEnvironment { .. } => StatusCode::NOT_FOUND,
        OpError::Forbidden(_) => StatusCode::FORBIDDEN,
        OpError::Invalid { .. } => StatusCode::BAD_REQUEST,
        OpError::Conflict(_) => StatusCode::CONFLICT,
        OpError::SignIn(e) => sign_in_status(e),
        OpError::Store(StoreError::Unavailable(_) | StoreError::Busy(_) | StoreError::Full(_)) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        OpError::Store(StoreError::Conflict(_) | StoreError::Stale(_)) => StatusCode::CONFLICT,
        OpError::Store(_) | OpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn sign_in_status(e: &SignInError) -> StatusCode {
    match e {
        SignInError::NotConfigured => StatusCode::NOT_FOUND,
        SignInError::Provider(_) => StatusCode::BAD_GATEWAY,
        SignInError::Refused(_) | SignInError::IdToken(_) | SignInError::SessionEnded(_) => {
            StatusCode::UNAUTHORIZED
        }
        SignInError::PrincipalClaim(_) | SignInError::Reserved(_) => StatusCode::FORBIDDEN,
        // As RFC 8628 answers a poll that comes too early.
        SignInError::UnknownLogin | SignInError::Pending { .. } => StatusCode::BAD_REQUEST,
    }
}

impl From<SignInError> for ApiError {
    fn from(e: SignInError) -> Self {
        ApiError::Op(e.into())
    }
}

impl From<OpError> for ApiError {
    /// A store failure or an internal error becomes the HTTP layer's own, which logs its
    /// detail; everything else keeps its operation's meaning.
    fn from(e: OpError) -> Self {
        match e {
            OpError::Store(e) => e.into(),
            OpError::Internal(detail) => ApiError::Internal(detail),
            e => ApiError::Op(e),
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        ApiError::Op(e.into())
    }
}

impl From<ChangeRequestError> for ApiError {
    fn from(e: ChangeRequestError) -> Self {
        ApiError::Op(e.into())
    }
}

fn change_request_code(e: &ChangeRequestError) -> &'static str {
    match e {
        ChangeRequestError::NoApprovalRule(_) => "no_approval_rule",
        ChangeRequestError::ReasonRequired => "reason_required",
        ChangeRequestError::TooLong { .. } => "invalid_request",
        ChangeRequestError::ApplyAtPast => "invalid_time",
        ChangeRequestError::UnknownStatus(_) => "invalid_status",
        ChangeRequestError::WrongStatus { .. } => "wrong_status",
        ChangeRequestError::NotProposer(_) => "forbidden",
        ChangeRequestError::Approval(e) => e.code(),
    }
}

fn change_request_forbidden(e: &ChangeRequestError) -> bool {
    match e {
        ChangeRequestError::NotProposer(_) => true,
        ChangeRequestError::Approval(e) => e.is_forbidden(),
        _ => false,
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::Busy(m) => ApiError::StoreBusy(m),
            StoreError::Full(m) => ApiError::StoreFull(m),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            e @ StoreError::Stale(_) => ApiError::Conflict(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(detail)
            | ApiError::Unavailable(detail)
            | ApiError::StoreBusy(detail)
            | ApiError::StoreFull(detail) => {
                tracing::error!(code = self.code(), detail = %detail, "request failed: {detail}");
            }
            _ => {}
        }
        let body = ErrorBody {
            code: self.code().to_owned(),
            message: self.to_string(),
        };
        let refused = self.is_refusal().then(|| crate::refusals::Refused {
            code: self.code(),
            message: body.message.clone(),
        });
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(r) = refused {
            resp.extensions_mut().insert(r);
        }
        if let Some(secs) = self.retry_after() {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: a 401 names the scheme the client must use.
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// `262144` as `256 KiB`, `8388608` as `8 MiB`; other sizes in bytes.
pub(crate) fn human_bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}
