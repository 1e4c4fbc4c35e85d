//! `/v1/sign-in/…`: the CLI's sign-in through the identity provider (see [`crate::oidc`]).

use crate::app::App;
use crate::auth::{throttle_sign_in, ApiCaller};
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::ops::sign_in::{NewSession, Via};
use axum::extract::{ConnectInfo, State};
use axum::{Extension, Json};
use std::net::SocketAddr;

pub use sluice_api::sign_in::{DevicePoll, DeviceSignIn, SessionIssued, SignedOut};

fn issued(s: NewSession) -> SessionIssued {
    SessionIssued {
        token: s.token.expose().to_owned(),
        token_id: s.token_id,
        principal: s.principal,
        expires_at: s.expires_at,
        groups: s.groups,
    }
}

/// Start a sign-in through the identity provider on a device without a browser (RFC 8628):
/// the person opens `verification_uri` and enters `user_code`; the caller polls
/// `/v1/sign-in/device/token`.
#[utoipa::path(post, operation_id = "start_device_sign_in", path = "/v1/sign-in/device", tag = "sign-in", security(), responses((status = 200, body = DeviceSignIn), (status = 404, body = ErrorBody, description = "no identity provider is configured (`sign_in_not_configured`)"), (status = 429, body = ErrorBody, description = "`rate_limited`: too many sign-in requests from this address; retry after `Retry-After` seconds"), (status = 502, body = ErrorBody, description = "the identity provider is unavailable")))]
pub async fn device(
    State(app): State<App>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Result<Json<DeviceSignIn>, ApiError> {
    throttle_sign_in(&app, peer.map(|p| p.0 .0.ip()))?;
    let d = app.oidc()?.device_start().await?;
    Ok(Json(DeviceSignIn {
        device_code: d.device_code,
        user_code: d.user_code,
        verification_uri: d.verification_uri,
        verification_uri_complete: d.verification_uri_complete,
        expires_in: d.expires_in,
        interval: d.interval,
    }))
}

/// Poll a device sign-in: `authorization_pending` (400) until the person approved it, then a
/// session token (audited as `principal.signed_in`).
#[utoipa::path(post, operation_id = "poll_device_sign_in", path = "/v1/sign-in/device/token", tag = "sign-in", security(), request_body = DevicePoll, responses((status = 200, body = SessionIssued), (status = 400, body = ErrorBody, description = "`authorization_pending`: not approved yet, poll again after the interval"), (status = 401, body = ErrorBody, description = "the provider refused, or its ID token failed verification (`id_token_…`)"), (status = 403, body = ErrorBody, description = "the principal claim is unusable or reserved"), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody, description = "`rate_limited`: too many sign-in requests from this address; retry after `Retry-After` seconds"), (status = 502, body = ErrorBody)))]
pub async fn device_token(
    State(app): State<App>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    ApiJson(poll): ApiJson<DevicePoll>,
) -> Result<Json<SessionIssued>, ApiError> {
    throttle_sign_in(&app, peer.map(|p| p.0 .0.ip()))?;
    let oidc = app.oidc()?;
    let signed = match oidc.device_token(&poll.device_code, app.now()).await {
        Ok(s) => s,
        Err(e) => {
            app.record_refused_sign_in(&e).await;
            return Err(e.into());
        }
    };
    Ok(Json(issued(app.open_idp_session(signed, Via::Cli).await?)))
}

/// Renew the session token this request carries: the server refreshes at the identity
/// provider, reads the groups again, and answers a new token (the old one is revoked). A
/// refusal ends every session of the person (`session_ended`, audited as
/// `principal.refresh_failed`).
#[utoipa::path(post, operation_id = "refresh_session", path = "/v1/sign-in/refresh", tag = "sign-in", responses((status = 200, body = SessionIssued), (status = 400, body = ErrorBody, description = "not a session token"), (status = 401, body = ErrorBody, description = "`session_ended`: sign in again"), (status = 404, body = ErrorBody, description = "no identity provider is configured (`sign_in_not_configured`)"), (status = 502, body = ErrorBody)))]
pub async fn refresh(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<SessionIssued>, ApiError> {
    Ok(Json(issued(app.refresh_idp_session(&caller).await?)))
}

/// End the session this request's token carries (audited as `principal.signed_out`).
#[utoipa::path(post, operation_id = "sign_out", path = "/v1/sign-in/sign-out", tag = "sign-in", responses((status = 200, body = SignedOut), (status = 400, body = ErrorBody, description = "not a session token")))]
pub async fn sign_out(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<SignedOut>, ApiError> {
    app.sign_out(&caller).await?;
    Ok(Json(SignedOut {
        principal: caller.name.clone(),
        token_id: caller.token_id.clone(),
    }))
}
