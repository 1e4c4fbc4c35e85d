//! `/v1/edge/*`: what edges (`sluice edge`) sync from the central server, with an edge key —
//! which may do nothing else (see [`crate::auth::ApiCaller`]) — and what they report back.

use crate::app::App;
use crate::auth::presented_token;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use sluice_api::edge::{EdgeChange, EdgeEvaluations, EdgeSnapshot};
use sluice_core::token::TokenKind;
use std::convert::Infallible;
use std::sync::Arc;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;
use utoipa::IntoParams;

/// An edge key: syncs the flags of its environments, nothing else.
pub struct EdgeKey {
    pub caller: Arc<Caller>,
}

impl EdgeKey {
    /// The environments the key syncs.
    pub fn environments(&self) -> Vec<&str> {
        self.caller
            .environment
            .as_deref()
            .map(|e| e.split(',').collect())
            .unwrap_or_default()
    }
}

impl FromRequestParts<App> for EdgeKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let caller = crate::auth::authenticate_from(
            app,
            presented_token(&parts.headers),
            crate::auth::source_of(parts),
        )
        .await?;
        if caller.kind != TokenKind::Edge || caller.environment.is_none() {
            return Err(ApiError::Forbidden(
                "edge routes need an edge key (`sluice tokens create --kind edge --env ENV`)"
                    .into(),
            ));
        }
        Ok(EdgeKey { caller })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SnapshotParams {
    /// Only this one of the key's environments (default: all of them).
    pub environment: Option<String>,
}

/// The snapshot of the edge key's environments: stored flags and layers, static context, and
/// the client keys live now (by hash).
#[utoipa::path(get, operation_id = "edge_snapshot", path = "/v1/edge/snapshot", params(SnapshotParams), tag = "edge",
    responses((status = 200, body = EdgeSnapshot), (status = 403, body = ErrorBody)))]
pub async fn snapshot(
    State(app): State<App>,
    key: EdgeKey,
    crate::json::ApiQuery(p): crate::json::ApiQuery<SnapshotParams>,
) -> Result<Json<EdgeSnapshot>, ApiError> {
    let mine = key.environments();
    let wanted: Vec<&str> = match p.environment.as_deref() {
        None => mine,
        Some(env) if mine.contains(&env) => vec![env],
        Some(env) => {
            return Err(ApiError::Forbidden(format!(
                "this edge key does not sync environment `{env}`"
            )))
        }
    };
    Ok(Json(app.edge_snapshot(&wanted).await?))
}

/// Server-sent events: an `EdgeChange` whenever one of the key's environments changes (and one
/// without an environment when some may have been missed).
#[utoipa::path(get, operation_id = "edge_events", path = "/v1/edge/events", tag = "edge",
    responses((status = 200, content_type = "text/event-stream", body = EdgeChange), (status = 403, body = ErrorBody)))]
pub async fn events(State(app): State<App>, key: EdgeKey) -> impl IntoResponse {
    let envs: Vec<String> = key.environments().into_iter().map(str::to_owned).collect();
    let rx = app.flag_events.subscribe();
    let stream = BroadcastStream::new(rx).filter_map(move |msg| {
        let change = match msg {
            Ok(ev) if envs.contains(&ev.environment) => EdgeChange {
                environment: Some(ev.environment),
                revision: ev.revision,
            },
            Ok(_) => return None,
            // Lagged: something may have been missed; the edge fetches everything again.
            Err(_) => EdgeChange {
                environment: None,
                revision: 0,
            },
        };
        let data = serde_json::to_string(&change).unwrap_or_default();
        Some(Ok::<_, Infallible>(Event::default().data(data)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// An edge's evaluation counts since its last report, added to this server's (the same
/// tables, summed).
#[utoipa::path(post, operation_id = "edge_evaluations", path = "/v1/edge/evaluations", request_body = EdgeEvaluations, tag = "edge",
    responses((status = 204), (status = 403, body = ErrorBody)))]
pub async fn evaluations(
    State(app): State<App>,
    key: EdgeKey,
    ApiJson(body): ApiJson<EdgeEvaluations>,
) -> Result<StatusCode, ApiError> {
    app.edge_report(&key.environments(), body).await?;
    Ok(StatusCode::NO_CONTENT)
}
