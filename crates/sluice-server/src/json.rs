//! `ApiJson<T>`: a JSON body extractor with Sluice's limits and error shape.
//!
//! Bodies are capped at [`MAX_BODY`] ([`MAX_IMPORT`] for a flag import) by a layer (see `router`), which also records the cap as a [`BodyLimit`]
//! so that a body over it is `413 body_too_large` naming the limit; here nesting depth is
//! bounded before parsing, and every failure becomes an [`ApiError`] with a stable code
//! instead of axum's plain text.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

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
                    ApiError::bad_request("invalid_body", e.body_text())
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

/// Parses a JSON body, bounding depth first.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if depth(bytes) > MAX_DEPTH {
        return Err(ApiError::bad_request(
            "too_deep",
            format!("JSON is nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let msg = e.to_string();
        let code = if msg.starts_with("unknown field") {
            "unknown_field"
        } else {
            "invalid_json"
        };
        ApiError::bad_request(code, format!("invalid request body: {msg}"))
    })
}

/// The deepest nesting of arrays and objects, ignoring brackets inside strings.
pub fn depth(bytes: &[u8]) -> usize {
    let (mut d, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_str {
            match (esc, b) {
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
    max
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
