//! `ApiJson<T>`: a JSON body extractor with Sluice's limits and error shape.
//!
//! Bodies are capped at [`MAX_BODY`] ([`MAX_IMPORT`] for a flag import) by a layer (see `router`), which also records the cap as a [`BodyLimit`]
//! so that a body over it is `413 body_too_large` naming the limit; here nesting depth is
//! bounded before parsing, and every failure becomes an [`ApiError`] with a stable code
//! instead of axum's plain text.
//!
//! A NUL character (U+0000) is refused at the edge, `400 nul_character`: PostgreSQL cannot
//! store it in text and SQLite would, after which `store copy` to PostgreSQL fails. Bodies are
//! checked in [`parse`] (every JSON body of the API: AuthZEN ids, token names, reasons, flag
//! documents), paths and query strings by [`RefuseNul`] (a `%00` anywhere in the URI), so no
//! field can forget it. OFREP contexts are never stored and are not checked.

use crate::error::ApiError;
use crate::ops::Input;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// `axum::extract::Query` with the JSON error shape: a query string that does not read as the
/// route's parameters is `400 invalid_query`, naming the parameter, not axum's plain text.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::bad_request(Input::Query, e.body_text()))
    }
}

/// Largest request body accepted on any endpoint but flag import.
pub const MAX_BODY: usize = 256 * 1024;
/// Largest flag document accepted by an import.
pub const MAX_IMPORT: usize = 8 * 1024 * 1024;

/// Deepest JSON nesting accepted on any endpoint.
pub const MAX_DEPTH: usize = 32;

/// The body size limit in force on a route, in bytes: set (as a request extension) beside
/// every `DefaultBodyLimit`, so that the error can name it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The raw body, with a body over the route's limit answered `413` in the JSON error shape.
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().copied();
        Bytes::from_request(req, state)
            .await
            .map(ApiBytes)
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge {
                        limit: limit.map_or(MAX_BODY, |l| l.0),
                    }
                } else {
                    ApiError::bad_request(Input::Body, e.body_text())
                }
            })
    }
}

pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ApiBytes(bytes) = ApiBytes::from_request(req, state).await?;
        parse(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body, bounding depth and refusing NUL characters first.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let shape = scan(bytes);
    if shape.depth > MAX_DEPTH {
        return Err(ApiError::bad_request(
            Input::Depth,
            format!("JSON is nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    if shape.nul {
        return Err(nul_error("the request body"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let msg = e.to_string();
        let input = if msg.starts_with("unknown field") {
            Input::UnknownField
        } else {
            Input::Json
        };
        ApiError::bad_request(input, format!("invalid request body: {msg}"))
    })
}

/// `400 nul_character`, naming where the NUL was.
fn nul_error(place: &str) -> ApiError {
    ApiError::bad_request(
        Input::Nul,
        format!(
            "{place} contains a NUL character (U+0000), which Sluice does not accept in any string"
        ),
    )
}

/// What [`scan`] learns of a JSON text in one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The deepest nesting of arrays and objects.
    pub depth: usize,
    /// Whether a string holds the escape `\u0000`. (A raw NUL byte is not valid JSON: the
    /// parser refuses it.)
    pub nul: bool,
}

/// The deepest nesting of arrays and objects, ignoring brackets inside strings.
pub fn depth(bytes: &[u8]) -> usize {
    scan(bytes).depth
}

/// Depth and NUL escapes, in one pass that ignores brackets inside strings.
pub fn scan(bytes: &[u8]) -> Shape {
    let (mut d, mut max, mut in_str, mut esc, mut nul) = (0usize, 0usize, false, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_str {
            match (esc, b) {
                (true, b'u') => {
                    esc = false;
                    nul |= bytes.get(i + 1..i + 5) == Some(b"0000");
                }
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                d += 1;
                max = max.max(d);
            }
            b']' | b'}' => d = d.saturating_sub(1),
            _ => {}
        }
    }
    Shape { depth: max, nul }
}

/// Refuses a request whose path or query holds a percent-encoded NUL (`%00`) with
/// `400 nul_character`, before any extractor decodes it: one check for every `Path` and
/// `Query` of the API. A raw NUL cannot reach here (the HTTP parser refuses it).
#[derive(Clone, Copy)]
pub struct RefuseNul;

impl<S> tower::Layer<S> for RefuseNul {
    type Service = NulGuard<S>;
    fn layer(&self, inner: S) -> NulGuard<S> {
        NulGuard(inner)
    }
}

#[derive(Clone)]
pub struct NulGuard<S>(S);

impl<S> tower::Service<Request> for NulGuard<S>
where
    S: tower::Service<Request, Response = axum::response::Response>,
{
    type Response = axum::response::Response;
    type Error = S::Error;
    type Future = futures_util::future::Either<
        std::future::Ready<Result<axum::response::Response, S::Error>>,
        S::Future,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        use axum::response::IntoResponse as _;
        let uri = req.uri();
        let place = if has_nul(uri.path()) {
            Some("the URL path")
        } else if uri.query().is_some_and(has_nul) {
            Some("the query string")
        } else {
            None
        };
        match place {
            Some(p) => futures_util::future::Either::Left(std::future::ready(Ok(
                nul_error(p).into_response()
            ))),
            None => futures_util::future::Either::Right(self.0.call(req)),
        }
    }
}

/// Whether percent-decoding `s` would yield a NUL.
fn has_nul(s: &str) -> bool {
    s.as_bytes().windows(3).any(|w| w == b"%00")
}

/// Like [`ApiJson`], but an empty body means `T::default()` (for optional comments and reasons).
pub struct ApiJsonOrDefault<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for ApiJsonOrDefault<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ApiBytes(bytes) = ApiBytes::from_request(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(ApiJsonOrDefault(T::default()));
        }
        parse(&bytes).map(ApiJsonOrDefault)
    }
}
