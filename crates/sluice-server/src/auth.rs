//! Authentication: `Authorization: Bearer <token>` → [`Caller`]. Default deny.

use crate::app::App;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sluice_core::access::Actor;
use sluice_core::token::{SecretToken, TokenKind};
use std::sync::Arc;

/// The authenticated principal behind a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub admin: bool,
    pub token_id: String,
    pub kind: TokenKind,
    /// For client keys: the one environment they may evaluate.
    pub environment: Option<String>,
    /// For client keys: static evaluation context merged into every evaluation.
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    /// For connection passwords: the one gateway database they open sessions on.
    pub database: Option<String>,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor {
            name: self.name.clone(),
            admin: self.admin,
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this needs an administrator".into()))
        }
    }
}

/// Reads the presented token from `Authorization: Bearer` or `X-API-Key`.
pub fn presented_token(headers: &axum::http::HeaderMap) -> Option<SecretToken> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, rest) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| SecretToken::from_presented(rest));
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(SecretToken::from_presented)
}

/// The caller behind a presented token; names it on the request's span.
pub async fn authenticate(app: &App, token: Option<SecretToken>) -> Result<Arc<Caller>, ApiError> {
    let caller = identify(app, token).await?;
    crate::routes::trace::record_principal(&caller.name);
    Ok(caller)
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
    // Default deny: a principal the policy no longer declares cannot use its tokens.
    let known =
        principal.source == "bootstrap" || policy.principals().any(|(n, _)| n == principal.name);
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

type Expiry = Option<chrono::DateTime<chrono::Utc>>;

/// Authenticated tokens, so the hot paths (decisions, flag evaluation) do not read the store
/// per request. Emptied whenever tokens, principals or policy change (here or, through the
/// change counter, on another instance); an entry is never used at or after its token's expiry.
///
/// Keyed by a 128-bit keyed hash of the presented token ([`crate::keyed::KeyedHash`]): a fraction of the cost of the SHA-256 the store is looked up by, and neither the
/// token nor its stored hash is kept in memory. A hit needs a token whose keyed hash equals
/// that of one the store verified: with unknown keys, a 2^-128 chance per guess.
#[derive(Debug, Default)]
pub struct TokenCache {
    keys: crate::keyed::KeyedHash,
    /// Keys are already keyed hashes: a fast hash of them is safe.
    map: std::sync::RwLock<rustc_hash::FxHashMap<u128, (Arc<Caller>, Expiry)>>,
}

impl TokenCache {
    pub fn key(&self, token: &SecretToken) -> u128 {
        self.keys.of(token.expose().as_bytes())
    }

    pub fn get(&self, key: u128, now: chrono::DateTime<chrono::Utc>) -> Option<Arc<Caller>> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let (caller, expires) = map.get(&key)?;
        if expires.is_some_and(|e| now >= e) {
            return None;
        }
        Some(caller.clone())
    }

    pub fn put(&self, key: u128, caller: Arc<Caller>, expires: Expiry) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.clear();
        }
        map.insert(key, (caller, expires));
    }

    pub fn clear(&self) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// An API-token caller (client keys may only evaluate flags).
pub struct ApiCaller(pub Arc<Caller>);

impl FromRequestParts<App> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let caller = authenticate(app, presented_token(&parts.headers)).await?;
        if let Some(slot) = parts.extensions.get::<crate::refusals::CallerSlot>() {
            let _ = slot.0.set(caller.name.clone());
        }
        match caller.kind {
            TokenKind::Api => {}
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
        }
        Ok(ApiCaller(caller))
    }
}
