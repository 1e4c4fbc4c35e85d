//! OFREP evaluation answered before the router, on the central server and on an edge.
//!
//! Evaluation is every flag lookup of every client. Routing it (matching the path, the
//! route's parameters, the boxed route and the metrics layer's second box around it) cost
//! more than evaluating the flag: 34,385 instructions per single-flag request against 28,478
//! without it (callgrind, see BENCHMARKS). So a `POST` to one of the two evaluation routes is
//! recognised by its method and path ([`evaluation_route`]) and answered by the server's
//! [`Evaluator`], with the same extractors in the same order as its routed handlers (so the
//! same refusals), counted and timed under the route's pattern. Everything else, including
//! what the router reads otherwise on those paths, goes on to the router.

use crate::error::ApiError;
use crate::json::ApiBytes;
use crate::metrics::{RouteName, Timed};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use std::convert::Infallible;
use std::task::{Context, Poll};

/// The route patterns of bulk and single-flag evaluation, as the routers name them.
pub const BULK_ROUTE: &str = "/ofrep/v1/evaluate/flags";
pub const SINGLE_ROUTE: &str = "/ofrep/v1/evaluate/flags/{key}";

/// An answer being made by [`Evaluations`].
pub type Dispatched =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Infallible>> + Send>>;

/// What answers evaluation requests: the central server's [`crate::app::App`], an edge's
/// replica. Its routed handlers and [`Evaluations`] both answer through it.
pub trait Evaluator: Clone + Send + Sync + 'static {
    /// The client key, with what an evaluation needs from the request's headers.
    type Key: FromRequestParts<Self, Rejection = ApiError> + Send;

    /// One flag, `flag`, for the context in `body`.
    fn single(&self, key: &Self::Key, flag: &str, body: &[u8]) -> Response;

    /// Every flag of the key's environment, for the context in `body`.
    fn bulk(&self, key: &Self::Key, body: &[u8]) -> Response;
}

/// The routed handler of one flag, for a router that needs no handler of its own for the
/// document (the edge's; the central server's are in `routes::ofrep`).
pub async fn single<E: Evaluator>(
    axum::extract::State(e): axum::extract::State<E>,
    key: E::Key,
    axum::extract::Path(flag): axum::extract::Path<String>,
    ApiBytes(body): ApiBytes,
) -> Response {
    e.single(&key, &flag, &body)
}

/// The routed handler of every flag, as [`single`].
pub async fn bulk<E: Evaluator>(
    axum::extract::State(e): axum::extract::State<E>,
    key: E::Key,
    ApiBytes(body): ApiBytes,
) -> Response {
    e.bulk(&key, &body)
}

/// Answers `req`, a request [`evaluation_route`] found (`flag`: its key, for one flag), as
/// the routed handlers answer it: the client key first, then the body.
async fn answer<E: Evaluator>(evaluator: E, req: Request, flag: Option<String>) -> Response {
    let (mut parts, body) = req.into_parts();
    let key = match E::Key::from_request_parts(&mut parts, &evaluator).await {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    let body = match ApiBytes::from_request(Request::from_parts(parts, body), &evaluator).await {
        Ok(ApiBytes(body)) => body,
        Err(e) => return e.into_response(),
    };
    match flag {
        Some(flag) => evaluator.single(&key, &flag, &body),
        None => evaluator.bulk(&key, &body),
    }
}

/// `POST` to one of the two evaluation routes: its pattern and, for one flag, its key,
/// percent-decoded as axum's `Path` decodes it. `None` for any other request, and for one the
/// router reads otherwise (a key that is empty, holds a `/`, or is not UTF-8 once decoded).
pub fn evaluation_route(req: &Request) -> Option<(&'static str, Option<String>)> {
    if req.method() != axum::http::Method::POST {
        return None;
    }
    match req.uri().path().strip_prefix(BULK_ROUTE)? {
        "" => Some((BULK_ROUTE, None)),
        rest => {
            let raw = rest
                .strip_prefix('/')
                .filter(|k| !k.is_empty() && !k.contains('/'))?;
            let key = percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .ok()?;
            Some((SINGLE_ROUTE, Some(key.into_owned())))
        }
    }
}

/// Puts [`Evaluations`] in front of a router.
#[derive(Clone)]
pub struct Layer<E>(pub E);

impl<S, E: Clone> tower::Layer<S> for Layer<E> {
    type Service = Evaluations<S, E>;
    fn layer(&self, inner: S) -> Self::Service {
        Evaluations {
            inner,
            evaluator: self.0.clone(),
        }
    }
}

/// Answers the evaluation routes with `E`, the rest with the router `S`.
#[derive(Clone)]
pub struct Evaluations<S, E> {
    inner: S,
    evaluator: E,
}

impl<S, E> tower::Service<Request> for Evaluations<S, E>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
    E: Evaluator,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Timed<Dispatched>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let Some((route, key)) = evaluation_route(&req) else {
            return Either::Right(self.inner.call(req));
        };
        // As the metrics layer inside the router names it.
        if crate::routes::trace::spanned(route) {
            tracing::Span::current().record("route", route);
        }
        let evaluator = self.evaluator.clone();
        let answer: Dispatched = Box::pin(async move { Ok(answer(evaluator, req, key).await) });
        Either::Left(Timed::new(answer, Some(RouteName::Fixed(route))))
    }
}
