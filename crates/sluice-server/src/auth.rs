//! Authentication: `Authorization: Bearer <token>` → [`Caller`]. Default deny. Callers are
//! cached in [`crate::token_cache::TokenCache`].

use crate::app::App;
use crate::auth_failures::Key;
use crate::caller::Caller;
use crate::error::ApiError;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use sluice_core::token::{SecretToken, TokenKind};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// A client key's header (a constant: looking up by a `&str` parses the name every time).
const X_API_KEY: axum::http::HeaderName = axum::http::HeaderName::from_static("x-api-key");

/// Reads the presented token from `Authorization: Bearer` or `X-API-Key`.
pub fn presented_token(headers: &axum::http::HeaderMap) -> Option<SecretToken> {
    presented(headers).map(SecretToken::from_presented)
}

/// The presented token's text, trimmed as [`SecretToken::from_presented`] trims it, borrowed
/// from the headers (see [`authenticate_at`]).
pub fn presented(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, rest) = v.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim());
    }
    headers
        .get(X_API_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The caller behind a presented token; names it on the request's span. Failures are counted
/// per token prefix only (the gateways; see [`authenticate_from`]).
pub async fn authenticate(app: &App, token: Option<SecretToken>) -> Result<Arc<Caller>, ApiError> {
    authenticate_from(app, token, None).await
}

/// The peer address of an HTTP request (set per connection by `serve`).
pub fn source_of(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// [`authenticate`], counting a failure against `source` too: a source or token prefix that
/// failed too often this minute is slowed, then refused (see [`crate::auth_failures`]).
///
/// A token this instance verified recently (in the token cache) is let through even then: the
/// refusal is for guessers, and a guesser who presents a cached token has already guessed a
/// live 256-bit secret; without this, an operator on the same host as a misconfigured script
/// would be locked out with it. The cache answers from memory, so the store's load stays bounded.
pub async fn authenticate_from(
    app: &App,
    token: Option<SecretToken>,
    source: Option<IpAddr>,
) -> Result<Arc<Caller>, ApiError> {
    authenticate_at(
        app,
        token.as_ref().map(SecretToken::expose),
        source,
        app.now(),
    )
    .await
}

/// [`authenticate_from`] of a token's text as presented (see [`presented`]), at `now`, the
/// request's moment, which the caller reads once and uses again (OFREP evaluates at it: one
/// clock read per request, not two). A token in the cache is found without a copy of it.
pub async fn authenticate_at(
    app: &App,
    token: Option<&str>,
    source: Option<IpAddr>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Arc<Caller>, ApiError> {
    if let Some(hit) = token.and_then(|t| cached(app, t, now)) {
        hit.record_on_span();
        return Ok(hit);
    }
    // A request without a token guesses nothing: it is not counted.
    let keys: Vec<Key> = match token {
        None => Vec::new(),
        Some(t) => source
            .map(Key::Source)
            .into_iter()
            .chain(std::iter::once(Key::prefix(t)))
            .collect(),
    };
    app.auth_failures
        .check(&keys)
        .map_err(|t| ApiError::TooManyFailures {
            retry_after: t.retry_after,
        })?;
    match identify(app, token.map(SecretToken::from_presented)).await {
        Ok(caller) => {
            caller.record_on_span();
            Ok(caller)
        }
        Err(e @ (ApiError::Unauthenticated | ApiError::TokenExpired)) => {
            let wait = app.auth_failures.fail(&keys);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// The caller of a token this instance verified and still holds in its cache.
fn cached(app: &App, token: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Arc<Caller>> {
    if !SecretToken::well_formed(token) {
        return None;
    }
    app.tokens.get(app.tokens.key_of(token), now)
}

async fn identify(app: &App, token: Option<SecretToken>) -> Result<Arc<Caller>, ApiError> {
    let token = token
        .filter(SecretToken::is_well_formed)
        .ok_or(ApiError::Unauthenticated)?;
    let now = app.now();
    let cache_key = app.tokens.key(&token);
    if let Some(hit) = app.tokens.get(cache_key, now) {
        return Ok(hit);
    }
    let hash = token.hash();
    let Some((row, principal)) = app.store.token_by_hash(&hash, now).await? else {
        // Only the holder of a real secret that ran out hears "expired"; anything else is
        // the same answer as no token at all.
        return Err(if app.store.token_expired(&hash, now).await? {
            ApiError::TokenExpired
        } else {
            ApiError::Unauthenticated
        });
    };
    let kind = TokenKind::parse(&row.kind).ok_or(ApiError::Unauthenticated)?;
    let policy = app.policy();
    // Default deny: a principal the policy no longer declares cannot use its tokens. People
    // signed in through the identity provider need no declaration; their session tokens are
    // short-lived and renewed only through it (see `crate::oidc`).
    let known = principal.source == "bootstrap"
        || (principal.source == "oidc" && kind == TokenKind::Session)
        || policy.principals().any(|(n, _)| n == principal.name);
    if !known {
        return Err(ApiError::Unauthenticated);
    }
    let admin = principal.admin || policy.is_admin(&principal.name);
    let caller = Caller {
        name: principal.name,
        admin,
        token_id: row.id,
        kind,
        environment: row.environment,
        context: row.context,
        database: row.database,
    };
    let caller = Arc::new(caller);
    app.tokens.put(cache_key, caller.clone(), row.expires_at);
    Ok(caller)
}

/// An API-token caller (client keys may only evaluate flags, edge keys only sync).
pub struct ApiCaller(pub Arc<Caller>);

impl FromRequestParts<App> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let caller =
            authenticate_from(app, presented_token(&parts.headers), source_of(parts)).await?;
        if let Some(slot) = parts.extensions.get::<crate::refusals::CallerSlot>() {
            let _ = slot.0.set(caller.name.clone());
        }
        match caller.kind {
            TokenKind::Api | TokenKind::Session => {}
            TokenKind::Client => {
                return Err(ApiError::Forbidden(
                    "a client key may only evaluate flags".into(),
                ))
            }
            TokenKind::Db => {
                return Err(ApiError::Forbidden(
                    "a connection password only opens sessions through the PostgreSQL gateway"
                        .into(),
                ))
            }
            TokenKind::Edge => {
                return Err(ApiError::Forbidden(
                    "an edge key may only sync its environments (/v1/edge/…)".into(),
                ))
            }
        }
        Ok(ApiCaller(caller))
    }
}

/// Counts one sign-in request (device start or poll, console start or callback) from `source`
/// against [`App::sign_in_limiter`]; over it, `429 rate_limited` with `Retry-After`, and the
/// refusal is counted for the minute's `sign_in.throttled` audit entry of that source.
/// Requests without a known source share one key.
pub fn throttle_sign_in(app: &App, source: Option<IpAddr>) -> Result<(), ApiError> {
    let key = source.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    app.sign_in_limiter().check(&key).inspect_err(|_| {
        if let Some(ip) = source {
            app.auth_failures.throttled(Key::SignIn(ip));
        }
    })
}
