//! OpenFeature Remote Evaluation Protocol (OFREP): single and bulk evaluation with client keys
//! bound to one environment, `ETag`/`If-None-Match` over the configuration revision *and* the
//! request context, and an SSE stream that says `refetchEvaluation` when flags change.
//!
//! The answering itself is [`crate::answer`], shared with the edge; these handlers
//! authenticate the client key and hand over this server's flags and clock.

use crate::answer;
use crate::app::App;
use crate::auth::presented_token;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::json::ApiBytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use sluice_core::token::{SecretToken, TokenKind};

/// A client key: evaluates the flags of exactly one environment, nothing else.
pub struct ClientKey {
    pub caller: std::sync::Arc<Caller>,
}

impl ClientKey {
    /// The one environment the key evaluates.
    pub fn environment(&self) -> &str {
        self.caller.environment.as_deref().unwrap_or_default()
    }

    /// The fixed context of an evaluation with this key, merged over the request's own: the
    /// environment's static context, the key's over it, then the environment's mapped request
    /// headers over both (flagd: request < `--context-value` < `--context-from-header`).
    /// `None` when there is nothing to add.
    pub fn static_context(
        &self,
        app: &App,
        headers: &HeaderMap,
    ) -> Option<serde_json::Map<String, Value>> {
        let policy = app.policy();
        let env = self.environment();
        answer::static_context(
            policy.static_context(env),
            self.caller.context.as_ref(),
            policy.context_from_headers(env),
            headers,
        )
    }

    /// Who asks, for the evaluation counters.
    pub fn asker(&self) -> answer::Asker<'_> {
        answer::Asker {
            token_id: &self.caller.token_id,
            environment: self.environment(),
        }
    }
}

async fn client_key(
    app: &App,
    token: Option<SecretToken>,
    source: Option<std::net::IpAddr>,
) -> Result<ClientKey, ApiError> {
    let caller = crate::auth::authenticate_from(app, token, source).await?;
    if caller.kind != TokenKind::Client || caller.environment.is_none() {
        return Err(ApiError::Forbidden(
            "OFREP needs a client key (`sluice tokens create --kind client --env ENV`)".into(),
        ));
    }
    app.limiter.check(&caller.token_id)?;
    Ok(ClientKey { caller })
}

impl FromRequestParts<App> for ClientKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        client_key(
            app,
            presented_token(&parts.headers),
            crate::auth::source_of(parts),
        )
        .await
    }
}

/// How a request body becomes OFREP's context (see [`crate::answer`]), under the path the
/// fuzz targets and tests name.
pub use crate::answer::{context_digest, context_of};

/// Evaluate one flag.
#[utoipa::path(post, path = "/ofrep/v1/evaluate/flags/{key}", tag = "ofrep", request_body = Object,
    responses((status = 200, body = Object), (status = 400, body = Object), (status = 401), (status = 403), (status = 404, body = Object), (status = 429)))]
pub async fn evaluate(
    State(app): State<App>,
    key_auth: ClientKey,
    Path(key): Path<String>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Response {
    let fixed = key_auth.static_context(&app, &headers);
    answer::single(
        &app.insight,
        app.env_flags(key_auth.environment()),
        key_auth.asker(),
        &key,
        &body,
        fixed.as_ref(),
        app.now(),
    )
}

/// Evaluate every flag of the key's environment.
#[utoipa::path(post, path = "/ofrep/v1/evaluate/flags", tag = "ofrep", request_body = Object,
    responses((status = 200, body = Object), (status = 304), (status = 400, body = Object), (status = 401), (status = 403), (status = 429)))]
pub async fn evaluate_all(
    State(app): State<App>,
    key_auth: ClientKey,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Response {
    answer::bulk(
        &app.insight,
        app.env_flags(key_auth.environment()),
        key_auth.asker(),
        &headers,
        &body,
        key_auth.static_context(&app, &headers),
        app.now(),
        app.public_url(),
    )
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// The client key, for clients that cannot set headers (browsers' EventSource).
    pub key: Option<String>,
}

/// Server-sent events: `refetchEvaluation` whenever the key's environment changes.
#[utoipa::path(get, path = "/ofrep/v1/events", tag = "ofrep", responses((status = 200, content_type = "text/event-stream", body = String), (status = 401), (status = 403)))]
pub async fn events(
    State(app): State<App>,
    headers: HeaderMap,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    crate::json::ApiQuery(q): crate::json::ApiQuery<EventsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let token =
        presented_token(&headers).or_else(|| q.key.as_deref().map(SecretToken::from_presented));
    let key_auth = client_key(&app, token, peer.map(|p| p.0 .0.ip())).await?;
    let env = key_auth.environment().to_owned();
    let stream = answer::events(app.flag_events.subscribe(), env);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
