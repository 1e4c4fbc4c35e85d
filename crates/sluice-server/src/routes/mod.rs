//! The HTTP surface. Handlers are thin: extract, call an operation, map the error.

pub mod access;
pub mod admin;
pub mod audit;
pub mod authzen;
pub mod authzen_search;
pub mod change_requests;
pub mod edge;
pub mod flag_changes;
pub mod flags;
pub mod gateway;
pub mod http_gateway;
pub mod notifications;
pub mod ofrep;
pub mod sign_in;
pub mod trace;
pub mod views;

use crate::app::App;
use crate::json::{BodyLimit, ShapeLimits, MAX_BODY, MAX_IMPORT, MAX_LIST};
use crate::metrics::{RouteName, Timed};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt as _};
use utoipa_axum::routes;

/// What the document says beside its operations, which come from the routes below.
#[derive(OpenApi)]
#[openapi(
    info(title = "Sluice", description = "Temporary production access, feature flags and a tamper-evident audit trail."),
    security(("bearer" = [])),
)]
struct Base;

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

/// Declares the error answers every operation of a kind can give, so that no handler can
/// forget them: whatever takes a token answers 401 without a valid one, 403 to one that may
/// not (a client key on the API, an API token on OFREP, a principal without the right), 429
/// when its source or token prefix failed too often (see `auth_failures`) and 503
/// when the store cannot answer (a token not yet cached is looked up there); whatever takes
/// input (a body, a query or a path parameter) answers 400 to input it refuses (a NUL
/// character, a name too long, a malformed query); whatever names something in its path
/// answers 404 when it does not exist.
struct ErrorResponses;

impl utoipa::Modify for ErrorResponses {
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
                use utoipa::openapi::path::ParameterIn;
                let params = op.parameters.as_deref().unwrap_or_default();
                let takes_input = op.request_body.is_some() || !params.is_empty();
                let names_in_path = params
                    .iter()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Path));
                let responses = &mut op.responses.responses;
                if takes_input {
                    responses.entry("400".into()).or_insert_with(|| {
                        error("Refused input: the code says which part, the message why.").into()
                    });
                }
                if names_in_path {
                    responses
                        .entry("404".into())
                        .or_insert_with(|| error("What the path names does not exist.").into());
                }
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
                responses.entry("401".into()).or_insert_with(|| {
                    error("Missing, unknown or expired token (with `WWW-Authenticate: Bearer`).")
                        .into()
                });
                responses
                    .entry("403".into())
                    .or_insert_with(|| error("The token is valid but may not do this.").into());
                responses.entry("429".into()).or_insert_with(|| {
                    error("Too many failed authentications from this address or with this token prefix this minute (`too_many_failed_authentications`, with `Retry-After`).")
                        .into()
                });
                responses.entry("503".into()).or_insert_with(|| {
                    error("The store is unavailable, busy or full; try again shortly.").into()
                });
            }
        }
    }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", security(), responses((status = 200, body = Object)))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the store can be written now (see `Store::writable`); otherwise 503 with the
/// code a write would get (`unavailable`, `store_busy`, `store_full`).
#[utoipa::path(get, path = "/readyz", tag = "ops", security(), responses((status = 200, body = Object), (status = 503, body = Object)))]
pub async fn readyz(State(app): State<App>) -> Response {
    match app.store.writable().await {
        Ok(()) => Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(e) => {
            let e = crate::error::ApiError::from(e);
            tracing::warn!(code = e.code(), error = %e, "not ready: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "not ready", "code": e.code(), "message": e.to_string()})),
            )
                .into_response()
        }
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "ops", security(), responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics_text(State(app): State<App>) -> impl IntoResponse {
    let mut text = crate::metrics::render();
    // This instance's flag evaluation counts (see `insight`): per App, not per process.
    text.push_str(&app.insight.render());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", security(), responses((status = 200, body = Object)))]
pub async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(&DOCUMENT)
}

/// Built once, from the same declaration as the router.
static DOCUMENT: std::sync::LazyLock<utoipa::openapi::OpenApi> = std::sync::LazyLock::new(openapi);

/// The OpenAPI document of [`router`]: the operations its routes declare, with the bearer scheme
/// and the error answers every operation of its kind can give (see [`ErrorResponses`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::Modify as _;
    let mut doc = administrative().merge(evaluation_and_ops()).into_openapi();
    BearerAuth.modify(&mut doc);
    ErrorResponses.modify(&mut doc);
    doc
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
    type Future = crate::metrics::Timed<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // MatchedPath is an Arc<str> clone: no allocation per request.
        let route = req.extensions().get::<MatchedPath>().cloned();
        // The request's span was made before routing (see `router`): name the route on it.
        if trace::spanned(req.uri().path()) {
            tracing::Span::current().record(
                "route",
                tracing::field::display(route.as_ref().map_or("unmatched", MatchedPath::as_str)),
            );
        }
        Timed::new(self.0.call(req), route.map(RouteName::Matched))
    }
}

async fn not_found() -> crate::error::ApiError {
    crate::error::ApiError::NotFound("no such endpoint; see /openapi.json".into())
}

// Every route is declared once, with its documentation: `routes!` takes the path and method from
// the handler's `#[utoipa::path]`, so what is served and what `/openapi.json` says cannot drift
// (the test `the_router_and_the_document_declare_the_same_routes` checks that no route was added
// around them).

/// The administrative API: refusals on it are audited (see [`router`]).
fn administrative() -> OpenApiRouter<App> {
    OpenApiRouter::with_openapi(Base::openapi())
        .routes(routes!(access::create, access::list))
        .routes(routes!(access::show))
        .routes(routes!(access::approve))
        .routes(routes!(access::deny))
        .routes(routes!(access::cancel))
        .routes(routes!(access::revoke))
        .routes(routes!(access::relinquish))
        .routes(routes!(access::review))
        .routes(routes!(access::extend))
        .routes(routes!(access::grants))
        .routes(routes!(access::entitlements))
        .routes(routes!(gateway::list))
        .routes(routes!(gateway::show))
        .routes(routes!(gateway::kill))
        .routes(routes!(gateway::password))
        .routes(routes!(gateway::databases))
        .routes(routes!(gateway::declare_database, gateway::remove_database))
        .routes(routes!(http_gateway::calls))
        .routes(routes!(http_gateway::services))
        .routes(routes!(
            http_gateway::declare_service,
            http_gateway::remove_service
        ))
        .routes(routes!(http_gateway::sessions))
        .routes(routes!(http_gateway::kill))
        .routes(routes!(notifications::list))
        .routes(routes!(notifications::show))
        .routes(routes!(notifications::retry))
        .routes(routes!(sign_in::refresh))
        .routes(routes!(sign_in::sign_out))
        .routes(routes!(admin::whoami))
        // A policy source is one string as long as the body allows.
        .routes(routes!(admin::apply, admin::current).map(|m| {
            m.layer(Extension(ShapeLimits {
                string: MAX_BODY,
                list: MAX_LIST,
            }))
        }))
        .routes(routes!(admin::create_token, admin::list_tokens))
        .routes(routes!(admin::revoke_token))
        .routes(routes!(audit::query))
        .routes(routes!(audit::verify))
        .routes(routes!(audit::export))
        .routes(routes!(audit::stream))
        .routes(routes!(flags::environments))
        .routes(routes!(flags::import, flags::export).map(|m| {
            m.layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(MAX_IMPORT))
                .layer::<_, std::convert::Infallible>(Extension(BodyLimit(MAX_IMPORT)))
                // A flag document's targeting lists may be as long as the body allows.
                .layer(Extension(ShapeLimits {
                    string: MAX_IMPORT,
                    list: MAX_IMPORT,
                }))
        }))
        .routes(routes!(flags::flag))
        .routes(routes!(flags::evaluations))
        .routes(routes!(flags::stale))
        .routes(routes!(flag_changes::change))
        .routes(routes!(
            flag_changes::add_target,
            flag_changes::list_targets
        ))
        .routes(routes!(flag_changes::remove_target))
        .routes(routes!(
            flag_changes::start_rollout,
            flag_changes::rollout_status
        ))
        .routes(routes!(flag_changes::control_rollout))
        .routes(routes!(change_requests::propose))
        .routes(routes!(change_requests::list))
        .routes(routes!(change_requests::show))
        .routes(routes!(change_requests::approve))
        .routes(routes!(change_requests::deny))
        .routes(routes!(change_requests::cancel))
        .routes(routes!(flag_changes::scheduled))
        .routes(routes!(flag_changes::cancel_scheduled))
}

/// Evaluation (AuthZEN, OFREP) and operations (health, metrics, this document).
fn evaluation_and_ops() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(authzen::evaluation))
        .routes(routes!(authzen::evaluations))
        .routes(routes!(authzen_search::search_subject))
        .routes(routes!(authzen_search::search_resource))
        .routes(routes!(authzen_search::search_action))
        .routes(routes!(authzen::configuration))
        .routes(routes!(ofrep::evaluate))
        .routes(routes!(ofrep::evaluate_all))
        .routes(routes!(ofrep::events))
        .routes(routes!(edge::snapshot))
        .routes(routes!(edge::events))
        .routes(routes!(edge::evaluations))
        .routes(routes!(sign_in::device))
        .routes(routes!(sign_in::device_token))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics_text))
        .routes(routes!(openapi_json))
}

/// The whole API, as the one service the accept loop ([`crate::serve`]) hands each connection.
///
/// The layers every request passes through are stacked once, around the router, as one
/// concrete service, and served as it is. Added with `Router::layer`, each would wrap every
/// route in a boxed, cloneable service of its own: seven boxes cloned and dropped per request,
/// which cost more than evaluating a flag (measured with callgrind on the OFREP single-flag
/// path); wrapped in an outer `Router` as its fallback, the stack is boxed, cloned and routed
/// once more per request. Only [`Track`] stays inside, where the matched route is known. The
/// two OFREP evaluation routes are answered before the router (see [`crate::evaluations`]).
pub fn router(
    app: App,
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
        // hyper's body as axum's (what a `Router` does first).
        .map_request(|req: hyper::Request<hyper::body::Incoming>| req.map(axum::body::Body::new))
        // OFREP from web pages on the configured origins: preflights answered here, the
        // answers marked for the browser (see `cors`).
        .layer(crate::cors::Layer(cors.clone()))
        // Every answer carries an X-Request-ID: the caller's (as AuthZEN asks), else a new
        // one; each request runs in a span with its id, route, principal and status (see
        // `trace`).
        .layer_fn(trace::Traced::new)
        // An overlong target, too many or too large headers, and a `%00` in a path or query
        // are refused before routing, naming the limit (see `json::RequestChecks`).
        .layer(crate::json::RequestChecks)
        // Enforced by the body extractors, so an oversized body gets the JSON error shape
        // (413 naming the limit: `MAX_BODY`, or the `BodyLimit` a route with another limit
        // sets beside its own `DefaultBodyLimit`, inside; the innermost wins).
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // OFREP evaluation, the hot path, without the router.
        .layer(crate::evaluations::Layer(app.clone()))
        .service(routed(app))
}

/// Every route of [`router`], without the layers around them: what routing sees (the test
/// that holds the router and the document equal walks this).
pub fn routed(app: App) -> Router {
    let (admin, _) = administrative().split_for_parts();
    let (rest, _) = evaluation_and_ops().split_for_parts();
    admin
        // Refusals on the administrative API are audited. Not on the evaluation paths: AuthZEN
        // records its own decisions, and OFREP refuses only bad keys.
        .route_layer(axum::middleware::from_fn_with_state(
            app.refusals.clone(),
            crate::refusals::record,
        ))
        .merge(rest)
        // The web console: HTML pages, not API, so outside the document (see `console`).
        .nest("/ui", crate::console::router(&app))
        // `/ui/` as well as `/ui` (a nested router's `/` answers only the latter).
        .route(
            "/ui/",
            axum::routing::get(|| async { axum::response::Redirect::to("/ui/inbox") }),
        )
        // A path served with other methods: the JSON error shape, beside axum's `Allow`.
        .method_not_allowed_fallback(crate::error::method_not_allowed)
        .fallback(not_found)
        // Metrics per route pattern, and the route named on the request's span.
        .layer(Track)
        .with_state(app)
}
