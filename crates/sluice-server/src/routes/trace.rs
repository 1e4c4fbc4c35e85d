//! Every request runs in a span named `request` with its id, method, route (the matched path
//! pattern, or `unmatched`; absent when the request was refused before routing, e.g. a NUL in
//! its path), the principal once authenticated, and the status it was answered with; one line
//! is logged when it is answered.
//!
//! OFREP evaluation is the hot path (every flag lookup of every client): its spans and lines are
//! at DEBUG, so at the default INFO they cost one disabled-callsite check and nothing else.
//! Everything else is at INFO.

use axum::http::{HeaderValue, Request, Response};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing::field::Empty;
use tracing::{Level, Span};

/// The header that carries a request's id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// Ids for requests that came without one: a random per-process prefix and a counter, so that
/// making one is an atomic increment and one small copy, not a random draw per request.
#[derive(Clone)]
pub struct RequestIds {
    prefix: u32,
    next: Arc<AtomicU64>,
}

impl RequestIds {
    pub fn new() -> Self {
        use rand::RngCore;
        RequestIds {
            prefix: rand::rngs::OsRng.next_u32(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // `{prefix:08x}-{n:016x}`, written without a formatter.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [b'-'; 25];
        for (i, b) in buf[..8].iter_mut().enumerate() {
            *b = HEX[((self.prefix >> (28 - 4 * i)) & 0xf) as usize];
        }
        for (i, b) in buf[9..].iter_mut().enumerate() {
            *b = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
        }
        HeaderValue::from_bytes(&buf).ok().map(RequestId::new)
    }
}

/// Is this path on the hot path (its span and line at DEBUG)?
fn hot(path: &str) -> bool {
    path.starts_with("/ofrep/")
}

/// Opens the request's span. `principal` and `status` are filled in later: by
/// [`crate::caller::Caller::record_on_span`] (when [`crate::auth::authenticate`] identifies
/// the caller) and by [`RequestEnd`].
#[derive(Clone, Copy)]
pub struct RequestSpan;

impl<B> tower_http::trace::MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &Request<B>) -> Span {
        // Made before routing: the route is recorded by the metrics layer once it is known.
        let path = req.uri().path();
        let id = req
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let method = req.method();
        if hot(path) {
            tracing::debug_span!("request", request_id = %id, %method, route = Empty, principal = Empty, status = Empty)
        } else {
            tracing::info_span!("request", request_id = %id, %method, route = Empty, principal = Empty, status = Empty)
        }
    }
}

/// Records the status on the span and logs the answer, at the span's level.
#[derive(Clone, Copy)]
pub struct RequestEnd;

impl<B> tower_http::trace::OnResponse<B> for RequestEnd {
    fn on_response(self, resp: &Response<B>, latency: Duration, span: &Span) {
        // A disabled span has no metadata: nothing to record, nothing to log.
        let Some(level) = span.metadata().map(|m| *m.level()) else {
            return;
        };
        let status = resp.status().as_u16();
        span.record("status", status);
        let ms = latency.as_secs_f64() * 1000.0;
        if level == Level::INFO {
            tracing::info!(parent: span, status, latency_ms = ms, "answered {status} in {ms:.1} ms");
        } else {
            tracing::debug!(parent: span, status, latency_ms = ms, "answered {status} in {ms:.1} ms");
        }
    }
}
