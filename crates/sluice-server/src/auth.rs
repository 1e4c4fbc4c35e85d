//! Authentication: `Authorization: Bearer <token>` → [`Caller`]. Default deny.

use crate::app::App;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sluice_core::access::Actor;
use sluice_core::token::{SecretToken, TokenKind};

/// The authenticated principal behind a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub admin: bool,
    pub token_id: String,
    pub kind: TokenKind,
    /// For client keys: the one environment they may evaluate.
    pub environment: Option<String>,
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
pub fn presented_token(parts: &Parts) -> Option<SecretToken> {
    if let Some(v) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, rest) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| SecretToken::from_presented(rest));
    }
    parts
        .headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(SecretToken::from_presented)
}

pub async fn authenticate(app: &App, token: Option<SecretToken>) -> Result<Caller, ApiError> {
    let token = token
        .filter(SecretToken::is_well_formed)
        .ok_or(ApiError::Unauthenticated)?;
    let (row, principal) = app
        .store
        .token_by_hash(&token.hash(), app.now())
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let kind = TokenKind::parse(&row.kind).ok_or(ApiError::Unauthenticated)?;
    let admin = principal.admin || app.policy().is_admin(&principal.name);
    Ok(Caller {
        name: principal.name,
        admin,
        token_id: row.id,
        kind,
        environment: row.environment,
    })
}

/// An API-token caller (client keys may only evaluate flags).
pub struct ApiCaller(pub Caller);

impl FromRequestParts<App> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let caller = authenticate(app, presented_token(parts)).await?;
        if caller.kind != TokenKind::Api {
            return Err(ApiError::Forbidden(
                "a client key may only evaluate flags".into(),
            ));
        }
        Ok(ApiCaller(caller))
    }
}
