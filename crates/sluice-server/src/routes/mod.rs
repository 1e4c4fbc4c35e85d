//! The HTTP surface. Handlers are thin: extract, call an operation, map the error.

pub mod access;
pub mod admin;
pub mod audit;
pub mod authzen;
pub mod change_requests;
pub mod flag_changes;
pub mod flags;
pub mod gateway;
pub mod ofrep;
pub mod views;

use crate::app::App;
use crate::json::BodyLimit;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use tower_http::request_id::PropagateRequestIdLayer;
use utoipa::OpenApi;

/// Largest request body accepted on any endpoint but flag import.
pub const MAX_BODY: usize = 256 * 1024;
/// Largest flag document accepted by an import.
pub const MAX_IMPORT: usize = 8 * 1024 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(title = "Sluice", description = "Temporary production access, feature flags and a tamper-evident audit trail."),
    paths(
        access::create, access::list, access::show, access::approve, access::deny, access::cancel,
        access::revoke, access::relinquish, access::review, access::extend, access::grants, access::entitlements,
        admin::whoami, admin::apply, admin::current, admin::create_token, admin::list_tokens, admin::revoke_token,
        audit::query, audit::verify, audit::export, audit::stream,
        authzen::evaluation, authzen::evaluations, authzen::configuration,
        flags::environments, flags::import, flags::export, flags::flag,
        ofrep::evaluate, ofrep::evaluate_all, ofrep::events,
        flag_changes::change, flag_changes::add_target, flag_changes::list_targets, flag_changes::remove_target,
        flag_changes::start_rollout, flag_changes::rollout_status, flag_changes::control_rollout,
        flag_changes::scheduled, flag_changes::cancel_scheduled,
        change_requests::propose, change_requests::list, change_requests::show,
        change_requests::approve, change_requests::deny, change_requests::cancel,
        gateway::list, gateway::show, gateway::kill, gateway::password,
        gateway::databases, gateway::declare_database, gateway::remove_database,
        healthz, readyz, metrics_text, openapi_json,
    ),
    modifiers(&BearerAuth, &AuthResponses),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// Declares `401` and `403` on every operation that needs a token, so that no handler can
/// forget them: whatever takes a token answers 401 without a valid one and 403 to one that
/// may not (a client key on the API, an API token on OFREP, a principal without the right).
struct AuthResponses;

impl utoipa::Modify for AuthResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let global = openapi.security.clone();
        let error = |text: &str| {
            ResponseBuilder::new()
                .description(text)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                // The operation's own requirements, else the document's; `[]` or `[{}]` is open.
                let security = op.security.as_ref().or(global.as_ref());
                let needs_token = serde_json::to_value(security).is_ok_and(|v| {
                    v.as_array().is_some_and(|reqs| {
                        !reqs.is_empty()
                            && reqs
                                .iter()
                                .all(|r| r.as_object().is_some_and(|o| !o.is_empty()))
                    })
                });
                if !needs_token {
                    continue;
                }
                let responses = &mut op.responses.responses;
                responses.entry("401".into()).or_insert_with(|| {
                    error("Missing, unknown or expired token (with `WWW-Authenticate: Bearer`).")
                        .into()
                });
                responses
                    .entry("403".into())
                    .or_insert_with(|| error("The token is valid but may not do this.").into());
            }
        }
    }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", security(), responses((status = 200, body = Object)))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "ops", security(), responses((status = 200, body = Object), (status = 503, body = Object)))]
pub async fn readyz(State(app): State<App>) -> Response {
    if app.store.ping().await {
        Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "store unavailable"})),
        )
            .into_response()
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "ops", security(), responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics_text() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        crate::metrics::render(),
    )
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", security(), responses((status = 200, body = Object)))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Counts every request and times it, per route pattern and status class (see
/// [`crate::metrics::http`]). A plain tower layer rather than `middleware::from_fn`, which
/// clones the rest of the stack and boxes a future on every request.
#[derive(Clone, Copy)]
struct Track;

impl<S> tower::Layer<S> for Track {
    type Service = Tracked<S>;
    fn layer(&self, inner: S) -> Tracked<S> {
        Tracked(inner)
    }
}

#[derive(Clone)]
struct Tracked<S>(S);

impl<S> tower::Service<Request> for Tracked<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Timed<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // MatchedPath is an Arc<str> clone: no allocation per request.
        let route = req.extensions().get::<MatchedPath>().cloned();
        Timed {
            inner: self.0.call(req),
            route,
            start: std::time::Instant::now(),
        }
    }
}

pin_project_lite::pin_project! {
    struct Timed<F> {
        #[pin]
        inner: F,
        route: Option<MatchedPath>,
        start: std::time::Instant,
    }
}

impl<F, E> std::future::Future for Timed<F>
where
    F: std::future::Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let Ok(resp) = &out {
            crate::metrics::http(
                this.route.as_ref().map_or("unmatched", MatchedPath::as_str),
                resp.status().as_u16(),
                this.start.elapsed().as_secs_f64(),
            );
        }
        std::task::Poll::Ready(out)
    }
}

async fn not_found() -> crate::error::ApiError {
    crate::error::ApiError::NotFound("no such endpoint; see /openapi.json".into())
}

/// The whole API.
pub fn router(app: App) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/v1/requests", post(access::create).get(access::list))
        .route("/v1/requests/{id}", get(access::show))
        .route("/v1/requests/{id}/approve", post(access::approve))
        .route("/v1/requests/{id}/deny", post(access::deny))
        .route("/v1/requests/{id}/cancel", post(access::cancel))
        .route("/v1/requests/{id}/revoke", post(access::revoke))
        .route("/v1/requests/{id}/relinquish", post(access::relinquish))
        .route("/v1/requests/{id}/review", post(access::review))
        .route("/v1/requests/{id}/extend", post(access::extend))
        .route("/v1/grants", get(access::grants))
        .route("/v1/entitlements", get(access::entitlements))
        .route("/v1/db/sessions", get(gateway::list))
        .route("/v1/db/sessions/{id}", get(gateway::show))
        .route("/v1/db/sessions/{id}/kill", post(gateway::kill))
        .route("/v1/db/{name}/password", post(gateway::password))
        .route("/v1/db/databases", get(gateway::databases))
        .route(
            "/v1/db/databases/{name}",
            axum::routing::put(gateway::declare_database).delete(gateway::remove_database),
        )
        .route("/v1/whoami", get(admin::whoami))
        .route("/v1/policy", post(admin::apply).get(admin::current))
        .route(
            "/v1/tokens",
            post(admin::create_token).get(admin::list_tokens),
        )
        .route("/v1/tokens/{id}", delete(admin::revoke_token))
        .route("/v1/audit", get(audit::query))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/audit/export", get(audit::export))
        .route("/v1/audit/stream", get(audit::stream))
        .route("/v1/environments", get(flags::environments))
        .route(
            "/v1/environments/{env}/flags",
            axum::routing::put(flags::import)
                .get(flags::export)
                .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(MAX_IMPORT))
                .layer(Extension(BodyLimit(MAX_IMPORT))),
        )
        .route("/v1/environments/{env}/flags/{key}", get(flags::flag))
        .route(
            "/v1/environments/{env}/flags/{key}/changes",
            post(flag_changes::change),
        )
        .route(
            "/v1/environments/{env}/flags/{key}/targets",
            post(flag_changes::add_target).get(flag_changes::list_targets),
        )
        .route(
            "/v1/environments/{env}/flags/{key}/targets/{id}",
            delete(flag_changes::remove_target),
        )
        .route(
            "/v1/environments/{env}/flags/{key}/rollout",
            axum::routing::put(flag_changes::start_rollout).get(flag_changes::rollout_status),
        )
        .route(
            "/v1/environments/{env}/flags/{key}/rollout/{op}",
            post(flag_changes::control_rollout),
        )
        .route(
            "/v1/environments/{env}/flags/{key}/proposals",
            post(change_requests::propose),
        )
        .route("/v1/proposals", get(change_requests::list))
        .route("/v1/proposals/{id}", get(change_requests::show))
        .route("/v1/proposals/{id}/approve", post(change_requests::approve))
        .route("/v1/proposals/{id}/deny", post(change_requests::deny))
        .route("/v1/proposals/{id}/cancel", post(change_requests::cancel))
        .route("/v1/scheduled", get(flag_changes::scheduled))
        .route("/v1/scheduled/{id}", delete(flag_changes::cancel_scheduled))
        // Refusals on the administrative API above are audited. Not on the evaluation paths
        // below: AuthZEN records its own decisions, and OFREP refuses only bad keys.
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::refusals::record,
        ))
        .route("/access/v1/evaluation", post(authzen::evaluation))
        .route("/access/v1/evaluations", post(authzen::evaluations))
        .route(
            "/.well-known/authzen-configuration",
            get(authzen::configuration),
        )
        .route("/ofrep/v1/evaluate/flags/{key}", post(ofrep::evaluate))
        .route("/ofrep/v1/evaluate/flags", post(ofrep::evaluate_all))
        .route("/ofrep/v1/events", get(ofrep::events))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi_json))
        .fallback(not_found)
        .layer(Track)
        // Enforced by the body extractors, so an oversized body gets the JSON error shape
        // (413 naming the limit, which `BodyLimit` tells them; routes with another limit set
        // both again, and the innermost wins).
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(Extension(BodyLimit(MAX_BODY)))
        // Echo a caller's X-Request-ID (as AuthZEN asks); none is invented for the others.
        .layer(PropagateRequestIdLayer::new(request_id))
        .with_state(app)
}
