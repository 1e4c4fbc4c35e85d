//! `/v1/whoami`, `/v1/policy`, `/v1/tokens`.

use super::views::{token_view, TokenView};
use crate::app::App;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::ops::Input;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
pub use sluice_api::admin::WhoAmI;
use sluice_api::admin::{CreatedToken, NewToken};
pub use sluice_api::policy::{ApplyPolicy, CurrentPolicy, PolicyApplied};
use sluice_core::duration::Duration;
use sluice_core::token::TokenKind;
use utoipa::IntoParams;

/// Who the presented token belongs to.
#[utoipa::path(get, path = "/v1/whoami", tag = "admin", responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
pub async fn whoami(State(app): State<App>, ApiCaller(caller): ApiCaller) -> Json<WhoAmI> {
    let groups = app.policy().groups_of(&caller.name);
    Json(WhoAmI {
        name: caller.name.clone(),
        admin: caller.admin,
        groups,
        token_id: caller.token_id.clone(),
    })
}

/// Validate a policy completely, show the diff, and apply it (administrators).
#[utoipa::path(post, path = "/v1/policy", request_body = ApplyPolicy, tag = "admin",
    responses((status = 200, body = PolicyApplied), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn apply(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    ApiJson(body): ApiJson<ApplyPolicy>,
) -> Result<Json<PolicyApplied>, ApiError> {
    let a = app
        .apply_policy(
            &caller,
            &body.source,
            body.dry_run,
            body.base_hash.as_deref(),
        )
        .await?;
    Ok(Json(PolicyApplied {
        applied: a.version.is_some(),
        version: a.version,
        hash: a.hash,
        diff: a.diff,
        removals: a.removals,
        base_hash: a.base_hash,
    }))
}

/// The policy in force (administrators and auditors).
#[utoipa::path(get, path = "/v1/policy", tag = "admin", responses((status = 200, body = CurrentPolicy)))]
pub async fn current(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<CurrentPolicy>, ApiError> {
    let cur = app.policy_source(&caller).await?;
    Ok(Json(CurrentPolicy {
        version: cur.as_ref().map(|c| c.0),
        hash: app.policy().hash.clone(),
        source: cur.map(|c| c.1),
    }))
}

/// Create a token; the secret is in the response and nowhere else.
#[utoipa::path(post, path = "/v1/tokens", request_body = NewToken, tag = "admin",
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "no such principal, or a client key's environment does not exist (`unknown_environment`)")))]
pub async fn create_token(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let kind = match body.kind.as_deref() {
        None => TokenKind::Api,
        Some(k) => TokenKind::parse(k).ok_or_else(|| {
            ApiError::bad_request(
                Input::TokenKind,
                format!("unknown token kind `{k}`; use `api`, `client` or `edge`"),
            )
        })?,
    };
    let expires_in = body
        .expires_in
        .map(|d| {
            Duration::parse(&d).map_err(|e| ApiError::bad_request(Input::Duration, e.to_string()))
        })
        .transpose()?;
    let t = app
        .create_token(
            &caller,
            crate::ops::admin::TokenSpec {
                principal: body.principal,
                name: body.name,
                kind,
                environment: body.environment,
                expires_in,
                context: body.context,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: t.secret.expose().to_owned(),
            info: token_view(t.row)?,
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    /// Whose tokens (administrators and auditors); default the caller's.
    pub principal: Option<String>,
    /// Administrators and auditors: every principal's tokens.
    #[serde(default)]
    pub all: bool,
}

/// List tokens (never their secrets).
#[utoipa::path(get, path = "/v1/tokens", params(TokenQuery), tag = "admin", responses((status = 200, body = [TokenView])))]
pub async fn list_tokens(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    crate::json::ApiQuery(q): crate::json::ApiQuery<TokenQuery>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let principal = if q.all {
        None
    } else {
        Some(q.principal.unwrap_or_else(|| caller.name.clone()))
    };
    let rows = app.visible_tokens(&caller, principal.as_deref()).await?;
    Ok(Json(
        rows.into_iter().map(token_view).collect::<Result<_, _>>()?,
    ))
}

/// Revoke a token (your own, or any for administrators).
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "admin", responses((status = 200, body = TokenView), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    Ok(Json(token_view(app.revoke_token(&caller, &id).await?)?))
}
