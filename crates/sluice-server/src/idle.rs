//! When a connection has been idle: no request in progress (its answer's body still being
//! sent counts as in progress) for a while. hyper closes an idle HTTP/1.1 connection itself
//! (its header timeout), but its HTTP/2 server has no idle timeout: a client could open a
//! connection to the HTTP gateway, send nothing more, and hold one of the
//! `max_connections` places for ever. [`Counted`] counts a connection's requests from their
//! start to the end of their answer's body, and [`Streams::idle_for`] says when there have
//! been none for long enough (see `serve::serve`).
//!
//! Written by hand: neither hyper nor tower counts a connection's open streams.

use hyper::body::{Body, Frame, SizeHint};
use hyper_util::server::graceful::GracefulConnection;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::Service;

/// One connection's requests in progress, and when the last one ended.
#[derive(Debug)]
pub(crate) struct Streams {
    open: AtomicUsize,
    since: Mutex<Instant>,
}

impl Streams {
    pub(crate) fn new() -> Arc<Streams> {
        Arc::new(Streams {
            open: AtomicUsize::new(0),
            since: Mutex::new(Instant::now()),
        })
    }

    fn quiet_since(&self) -> Instant {
        *self
            .since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Resolves once no request has been in progress for `quiet`, counted from `from` at
    /// the earliest. It looks at the count only when its time is up (a request's start or
    /// end wakes nothing and sets no timer), so a connection busy at one look is looked at
    /// again `quiet` later: it closes between one and two `quiet`s after its last request.
    pub(crate) async fn idle_for(&self, quiet: Duration, from: Instant) {
        loop {
            let now = Instant::now();
            let deadline = if self.open.load(Ordering::SeqCst) > 0 {
                now + quiet
            } else {
                self.quiet_since().max(from) + quiet
            };
            if deadline <= now {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }

    fn start(self: &Arc<Self>) -> InProgress {
        self.open.fetch_add(1, Ordering::SeqCst);
        InProgress(self.clone())
    }
}

/// Serves an HTTP/2 connection (whose service is [`Counted`] in `streams`) until it ends. It
/// is shut down gracefully (GOAWAY, then the streams in progress end) once idle for
/// `quiet`, or when `draining` turns true. The graceful close waits for the client to answer
/// a PING: a client that never does is dropped once idle for as long again.
pub(crate) async fn serve_until_idle<C: GracefulConnection>(
    conn: C,
    streams: &Streams,
    quiet: Duration,
    mut draining: tokio::sync::watch::Receiver<bool>,
) {
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = streams.idle_for(quiet, Instant::now()) => {}
        () = async { drop(draining.wait_for(|d| *d).await) } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
            return;
        }
    }
    conn.as_mut().graceful_shutdown();
    let asked = Instant::now();
    tokio::select! {
        _ = conn.as_mut() => {}
        () = streams.idle_for(quiet, asked) => {}
    }
}

/// A request in progress, until dropped (with its answer's body).
#[derive(Debug)]
struct InProgress(Arc<Streams>);

impl Drop for InProgress {
    fn drop(&mut self) {
        *self
            .0
            .since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
        // The time is set first: whoever sees the count at 0 sees this end's time.
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A service whose requests are counted in `streams` until their answer's body ends.
#[derive(Debug, Clone)]
pub(crate) struct Counted<S> {
    pub(crate) inner: S,
    pub(crate) streams: Arc<Streams>,
}

impl<S, R, B> Service<R> for Counted<S>
where
    S: Service<R, Response = axum::http::Response<B>>,
    S::Future: Send + 'static,
{
    type Response = axum::http::Response<Tracked<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        // Counted from here: a request whose handler is still running is in progress too.
        let in_progress = self.streams.start();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let resp = answer.await?;
            Ok(resp.map(|body| Tracked {
                body,
                _in_progress: in_progress,
            }))
        })
    }
}

pin_project_lite::pin_project! {
    /// An answer's body, which keeps its request counted until it is dropped.
    pub(crate) struct Tracked<B> {
        #[pin]
        body: B,
        _in_progress: InProgress,
    }
}

impl<B: Body> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
