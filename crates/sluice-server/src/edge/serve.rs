//! The edge's HTTP surface: OFREP as the central server serves it (the answering is
//! [`crate::answer`]'s), client keys checked against the synced hashes, health and metrics.

use super::{EdgeClient, Replica};
use crate::answer;
use crate::auth::presented_token;
use crate::error::ApiError;
use crate::evaluations::{Evaluator, BULK_ROUTE, SINGLE_ROUTE};
use crate::json::MAX_BODY;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sluice_core::token::{SecretToken, TokenKind};
use std::sync::Arc;

/// The edge's service: its routes, with the central server's body limits and request checks
/// around them (stacked once, outside the router, as the central server's are), and OFREP
/// evaluation answered before routing (see [`crate::evaluations`]).
pub fn router(
    replica: Replica,
    cors: &crate::cors::BrowserOrigins,
) -> impl tower::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Send + 'static,
> + Clone
       + Send
       + 'static {
    tower::ServiceBuilder::new()
        .map_request(|req: hyper::Request<hyper::body::Incoming>| req.map(axum::body::Body::new))
        .layer(crate::cors::Layer(cors.clone()))
        .layer(crate::json::RequestChecks)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(crate::evaluations::Layer(replica.clone()))
        .service(routes(replica))
}

fn routes(replica: Replica) -> Router {
    Router::new()
        .route(SINGLE_ROUTE, post(crate::evaluations::single::<Replica>))
        .route(BULK_ROUTE, post(crate::evaluations::bulk::<Replica>))
        .route("/ofrep/v1/events", get(events))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .method_not_allowed_fallback(crate::error::method_not_allowed)
        .fallback(not_found)
        .with_state(replica)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("an edge serves OFREP only (/ofrep/v1/…)".into())
}

/// A client key this edge knows, live now, with what an evaluation needs from the request's
/// headers (so a handler takes no copy of them).
pub struct ClientKey {
    client: Arc<EdgeClient>,
    /// The fixed context: the environment's static context, the key's, the mapped headers.
    fixed: Option<serde_json::Map<String, serde_json::Value>>,
    /// The request's `If-None-Match`.
    if_none_match: Option<HeaderValue>,
    /// The request's moment: the key's expiry is checked at it, the flags evaluated at it.
    now: chrono::DateTime<chrono::Utc>,
}

fn client_key(
    replica: &Replica,
    token: Option<SecretToken>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Arc<EdgeClient>, ApiError> {
    let token = token
        .filter(SecretToken::is_well_formed)
        .ok_or(ApiError::Unauthenticated)?;
    if token.kind() != Some(TokenKind::Client) {
        return Err(ApiError::Forbidden(
            "OFREP needs a client key (`sluice tokens create --kind client --env ENV`)".into(),
        ));
    }
    let client = replica.client(&token).ok_or(ApiError::Unauthenticated)?;
    // INVARIANT: expiry against the edge's own clock, as the central server checks it.
    if client.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::TokenExpired);
    }
    Ok(client)
}

impl FromRequestParts<Replica> for ClientKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, r: &Replica) -> Result<Self, Self::Rejection> {
        let now = r.now();
        let client = client_key(r, presented_token(&parts.headers), now)?;
        let fixed = {
            let held = r.held.load();
            let env = held.envs.get(&client.environment);
            answer::static_context(
                env.and_then(|e| e.context.as_ref()),
                client.context.as_ref(),
                env.map_or(&EMPTY, |e| &e.context_from_headers),
                &parts.headers,
            )
        };
        Ok(ClientKey {
            fixed,
            if_none_match: parts.headers.get(header::IF_NONE_MATCH).cloned(),
            client,
            now,
        })
    }
}

impl ClientKey {
    fn asker(&self) -> answer::Asker<'_> {
        answer::Asker {
            token_id: &self.client.id,
            environment: &self.client.environment,
        }
    }
}

static EMPTY: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();

impl Evaluator for Replica {
    type Key = ClientKey;

    fn single(&self, key: &ClientKey, flag: &str, body: &[u8]) -> Response {
        answer::single(
            &self.insight,
            self.env_flags(&key.client.environment),
            key.asker(),
            flag,
            body,
            key.fixed.as_ref(),
            key.now,
        )
    }

    fn bulk(&self, key: &ClientKey, body: &[u8]) -> Response {
        let public = self.public_url.get().map_or("", String::as_str);
        answer::bulk(
            &self.insight,
            self.env_flags(&key.client.environment),
            key.asker(),
            key.if_none_match.as_ref(),
            body,
            key.fixed.as_ref(),
            key.now,
            public,
        )
    }
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    key: Option<String>,
}

async fn events(
    State(r): State<Replica>,
    headers: HeaderMap,
    crate::json::ApiQuery(q): crate::json::ApiQuery<EventsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let token =
        presented_token(&headers).or_else(|| q.key.as_deref().map(SecretToken::from_presented));
    let client = client_key(&r, token, r.now())?;
    let stream = answer::events(r.flag_events.subscribe(), client.environment.clone());
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Ready once a snapshot is held (synced, or loaded from disk while the upstream is away).
async fn readyz(State(r): State<Replica>) -> Response {
    if r.is_ready() {
        Json(serde_json::json!({"status": "ready", "revisions": r.revisions()})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "not ready", "code": "unavailable", "message": "no snapshot yet: the upstream has not answered and none was saved"})),
        )
            .into_response()
    }
}

async fn metrics(State(r): State<Replica>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        r.insight.render(),
    )
}
