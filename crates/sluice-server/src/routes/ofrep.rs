//! OpenFeature Remote Evaluation Protocol (OFREP): single and bulk evaluation with client keys
//! bound to one environment, `ETag`/`If-None-Match` over the configuration revision *and* the
//! request context, and an SSE stream that says `refetchEvaluation` when flags change.
//!
//! The answering itself is [`crate::answer`], shared with the edge; these handlers
//! authenticate the client key and hand over this server's flags and clock.

use crate::answer;
use crate::app::App;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::evaluations::Evaluator;
use crate::json::ApiBytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use sluice_core::token::TokenKind;

/// A client key: evaluates the flags of exactly one environment, nothing else. Extracted with
/// what an evaluation needs from the request's headers, so a handler takes no copy of them.
pub struct ClientKey {
    pub caller: std::sync::Arc<Caller>,
    /// The fixed context of an evaluation with this key, merged over the request's own: the
    /// environment's static context, the key's over it, then the environment's mapped request
    /// headers over both (flagd: request < `--context-value` < `--context-from-header`).
    /// `None` when there is nothing to add.
    pub fixed: Option<serde_json::Map<String, Value>>,
    /// The request's `If-None-Match` (the bulk answer's tag a client holds).
    pub if_none_match: Option<HeaderValue>,
    /// The request's moment: the key was checked at it, and the flags are evaluated at it.
    pub now: chrono::DateTime<chrono::Utc>,
}

impl ClientKey {
    /// The one environment the key evaluates.
    pub fn environment(&self) -> &str {
        environment_of(&self.caller)
    }

    /// Who asks, for the evaluation counters.
    pub fn asker(&self) -> answer::Asker<'_> {
        answer::Asker {
            token_id: &self.caller.token_id,
            environment: self.environment(),
        }
    }
}

fn environment_of(caller: &Caller) -> &str {
    caller.environment.as_deref().unwrap_or_default()
}

async fn client_key(
    app: &App,
    token: Option<&str>,
    source: Option<std::net::IpAddr>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<std::sync::Arc<Caller>, ApiError> {
    let caller = crate::auth::authenticate_at(app, token, source, now).await?;
    if caller.kind != TokenKind::Client || caller.environment.is_none() {
        return Err(ApiError::Forbidden(
            "OFREP needs a client key (`sluice tokens create --kind client --env ENV`)".into(),
        ));
    }
    app.limiter.check(&caller.token_id)?;
    Ok(caller)
}

impl FromRequestParts<App> for ClientKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let now = app.now();
        let caller = client_key(
            app,
            crate::auth::presented(&parts.headers),
            crate::auth::source_of(parts),
            now,
        )
        .await?;
        let fixed = {
            // Read through the snapshot in force, without holding on to its policy.
            let access = app.access.load();
            let policy = access.policy();
            let env = environment_of(&caller);
            answer::static_context(
                policy.static_context(env),
                caller.context.as_ref(),
                policy.context_from_headers(env),
                &parts.headers,
            )
        };
        Ok(ClientKey {
            fixed,
            if_none_match: parts.headers.get(header::IF_NONE_MATCH).cloned(),
            caller,
            now,
        })
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
    ApiBytes(body): ApiBytes,
) -> Response {
    app.single(&key_auth, &key, &body)
}

/// Evaluate every flag of the key's environment.
#[utoipa::path(post, path = "/ofrep/v1/evaluate/flags", tag = "ofrep", request_body = Object,
    responses((status = 200, body = Object), (status = 304), (status = 400, body = Object), (status = 401), (status = 403), (status = 429)))]
pub async fn evaluate_all(
    State(app): State<App>,
    key_auth: ClientKey,
    ApiBytes(body): ApiBytes,
) -> Response {
    app.bulk(&key_auth, &body)
}

impl Evaluator for App {
    type Key = ClientKey;

    fn single(&self, key_auth: &ClientKey, key: &str, body: &[u8]) -> Response {
        answer::single(
            &self.insight,
            self.env_flags(key_auth.environment()),
            key_auth.asker(),
            key,
            body,
            key_auth.fixed.as_ref(),
            key_auth.now,
        )
    }

    fn bulk(&self, key_auth: &ClientKey, body: &[u8]) -> Response {
        answer::bulk(
            &self.insight,
            self.env_flags(key_auth.environment()),
            key_auth.asker(),
            key_auth.if_none_match.as_ref(),
            body,
            key_auth.fixed.as_ref(),
            key_auth.now,
            self.public_url(),
        )
    }
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
    let token = crate::auth::presented(&headers).or_else(|| q.key.as_deref().map(str::trim));
    let caller = client_key(&app, token, peer.map(|p| p.0 .0.ip()), app.now()).await?;
    let env = environment_of(&caller).to_owned();
    let stream = answer::events(app.flag_events.subscribe(), env);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
