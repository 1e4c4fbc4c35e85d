//! Every request runs in a span named `request` with its id, method, route (the matched path
//! pattern, or `unmatched`; absent when the request was refused before routing, e.g. a NUL in
//! its path), the principal once authenticated, and the status it was answered with; one line
//! is logged when it is answered.
//!
//! OFREP evaluation is the hot path (every flag lookup of every client): its spans and lines are
//! at DEBUG, so at the default INFO they cost one disabled-callsite check and nothing else.
//! Everything else is at INFO.

//!
//! One layer ([`Traced`]) does what tower-http's request-id pair and trace layer did together:
//! they inserted a request extension, wrapped the response body and read the clock twice on
//! every request, spans enabled or not (measured with callgrind on the OFREP path).

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;
use tracing::field::Empty;
use tracing::{Level, Span};

/// The header that carries a request's id, in and out.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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

impl RequestIds {
    fn make(&self) -> HeaderValue {
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
        // Hex digits and dashes are always a valid value.
        HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
}

/// Is this path on the hot path (its span and line at DEBUG)?
fn hot(path: &str) -> bool {
    path.starts_with("/ofrep/")
}

/// Would a request to `path` have an enabled span? (One atomic load: what the route layer
/// asks before it looks up the current span to name the route on it.)
pub fn spanned(path: &str) -> bool {
    let level = if hot(path) { Level::DEBUG } else { Level::INFO };
    tracing::level_filters::LevelFilter::current() >= level
}

/// Gives every request an id (the caller's `X-Request-ID`, else a new one) and echoes it on the
/// answer; runs the request in a span named `request`, which carries the id to everything
/// after, and logs its answer (see the module documentation). Outermost, before routing.
#[derive(Clone)]
pub struct Traced<S> {
    inner: S,
    ids: RequestIds,
}

impl<S> Traced<S> {
    pub fn new(inner: S) -> Self {
        Traced {
            inner,
            ids: RequestIds::new(),
        }
    }
}

impl<S> tower::Service<Request> for Traced<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Answered<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // Not written into the request's headers: nothing after reads it there (the span
        // has it), and the insert cost ~500 instructions per request (callgrind, OFREP).
        let id = match req.headers().get(&REQUEST_ID) {
            Some(id) => id.clone(),
            None => self.ids.make(),
        };
        let span = {
            // Made before routing: the route is recorded by the metrics layer once it is known.
            // Field values are read only when the span is enabled (the id's text is checked
            // then, not on every OFREP request).
            let method = req.method();
            if hot(req.uri().path()) {
                tracing::debug_span!("request", request_id = %id.to_str().unwrap_or("-"), %method, route = Empty, principal = Empty, status = Empty)
            } else {
                tracing::info_span!("request", request_id = %id.to_str().unwrap_or("-"), %method, route = Empty, principal = Empty, status = Empty)
            }
        };
        // A disabled span logs nothing: no clock read for it.
        let start = (!span.is_disabled()).then(Instant::now);
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        Answered {
            inner,
            span,
            id: Some(id),
            start,
        }
    }
}

pin_project_lite::pin_project! {
    /// [`Traced`]'s answer: the inner one with the id set on it, its status recorded on the
    /// span and logged.
    pub struct Answered<F> {
        #[pin]
        inner: F,
        span: Span,
        id: Option<HeaderValue>,
        start: Option<Instant>,
    }
}

impl<F, E> std::future::Future for Answered<F>
where
    F: std::future::Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = {
            let _entered = this.span.enter();
            ready!(this.inner.poll(cx))
        };
        let Ok(mut resp) = out else {
            return Poll::Ready(out);
        };
        if let Some(id) = this.id.take() {
            resp.headers_mut().insert(REQUEST_ID, id);
        }
        if let (Some(level), Some(start)) = (this.span.metadata().map(|m| *m.level()), this.start) {
            let status = resp.status().as_u16();
            this.span.record("status", status);
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            let span = &*this.span;
            if level == Level::INFO {
                tracing::info!(parent: span, status, latency_ms = ms, "answered {status} in {ms:.1} ms");
            } else {
                tracing::debug!(parent: span, status, latency_ms = ms, "answered {status} in {ms:.1} ms");
            }
        }
        Poll::Ready(Ok(resp))
    }
}
