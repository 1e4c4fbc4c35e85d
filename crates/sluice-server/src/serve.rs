//! The HTTP accept loop, with bounds no client can get past: a request header must arrive
//! within [`HttpOptions::header_timeout`] (which also closes an idle keep-alive connection),
//! at most [`HttpOptions::max_connections`] connections are served at once (the rest wait in
//! the listen backlog, and the log says so), and a shutdown lets requests in flight finish for
//! at most [`HttpOptions::drain_timeout`], then cuts what is left.
//!
//! `axum::serve` has none of these (its graceful shutdown waits for every request, however
//! long, and it sets no header timeout), so this is its loop with them: hyper's HTTP/1
//! connection with a timer, hyper-util's graceful-shutdown watcher, a semaphore. With
//! [`HttpOptions::http2`] (the HTTP gateway) a plain-TCP connection may also speak HTTP/2 or
//! be upgraded, under the same bounds: its first bytes must arrive within the header timeout
//! too. Over TLS it is HTTP/1.1 alone.

use axum::body::HttpBody as Body;
use axum::http::{header, HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tower::Service;
use tower_http::set_header::SetResponseHeader;

/// Bounds on connections; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpOptions {
    /// The longest a client may take to send a request's header, counted from the moment the
    /// server is ready to read one: a new connection, or a keep-alive one after its last
    /// answer (so it is also the idle timeout). Then the connection is closed.
    pub header_timeout: Duration,
    /// Connections served at once; beyond it new ones wait to be accepted.
    pub max_connections: usize,
    /// On shutdown, how long requests in flight may run before they are cut.
    pub drain_timeout: Duration,
    /// Also serve HTTP/2 (with prior knowledge, on plain TCP) and let HTTP/1.1 connections be
    /// upgraded (WebSocket): the HTTP gateway's setting. The API serves HTTP/1.1 alone.
    pub http2: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            header_timeout: Duration::from_secs(10),
            max_connections: 1000,
            drain_timeout: Duration::from_secs(5),
            http2: false,
        }
    }
}

/// Serves `service` (an `axum::Router`, or [`crate::routes::router`]'s stack) on `listener`
/// until `shutdown` resolves, then drains (see the module documentation). Over TLS (when `tls`
/// is given) the handshake must finish within the header timeout, answers carry
/// `Strict-Transport-Security`, and the certificate is reloaded when its files change (see
/// [`crate::tls`]).
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    options: HttpOptions,
    tls: Option<Arc<crate::tls::ReloadingTls>>,
    shutdown: impl std::future::Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let reload = tls.clone().map(|t| tokio::spawn(t.watch()));
    // Browsers that reached the console over TLS keep to it for a year.
    let hsts = tls.is_some();
    let service = SetResponseHeader::overriding(
        service,
        header::STRICT_TRANSPORT_SECURITY,
        move |_: &Response<B>| hsts.then(|| HeaderValue::from_static("max-age=31536000")),
    );
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout);
    // Both protocols: the first bytes tell which (see `opens_in_time`).
    let auto = options.http2.then(|| {
        let mut auto = Builder::new(TokioExecutor::new());
        auto.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_timeout);
        auto.http2().timer(TokioTimer::new());
        auto
    });
    let graceful = GracefulShutdown::new();
    // HTTP/2 connections are closed by hand (see `idle`): this tells them the server is
    // shutting down.
    let draining = tokio::sync::watch::Sender::new(false);
    let permits = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while conns.try_join_next().is_some() {}
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                tracing::warn!(
                    limit = options.max_connections,
                    "connection limit reached: {} connections are open, new ones wait until one closes (max_connections; keep it below the open-file limit)",
                    options.max_connections
                );
                tokio::select! {
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Each request knows its peer (failed authentications are counted per source).
        let service = tower::Layer::layer(
            &axum::Extension(axum::extract::ConnectInfo(peer)),
            service.clone(),
        );
        if let Some(tls) = &tls {
            let (acceptor, http) = (tls.acceptor(), http.clone());
            let watcher = graceful.watcher();
            conns.spawn(async move {
                // A client that does not finish the handshake in time is dropped, as one that
                // does not send its header.
                let handshake =
                    tokio::time::timeout(options.header_timeout, acceptor.accept(stream));
                if let Ok(Ok(stream)) = handshake.await {
                    let conn = http
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                    let _ = watcher.watch(conn).await;
                }
                drop(permit);
            });
            continue;
        }
        if let Some(auto) = &auto {
            let (auto, watcher) = (auto.clone(), graceful.watcher());
            let draining = draining.subscribe();
            conns.spawn(async move {
                match opens_in_time(&stream, options.header_timeout).await {
                    Opening::None => {}
                    // HTTP/1.1 (and its upgrades): hyper's header timer closes it when idle.
                    Opening::Http1 => {
                        let conn = auto.serve_connection_with_upgrades(
                            TokioIo::new(stream),
                            TowerToHyperService::new(service),
                        );
                        let _ = watcher.watch(conn).await;
                    }
                    // HTTP/2: hyper has no idle timeout for it (see `idle`).
                    Opening::Http2 => {
                        drop(watcher);
                        let streams = crate::idle::Streams::new();
                        let service = crate::idle::Counted {
                            inner: service,
                            streams: streams.clone(),
                        };
                        let conn = auto.serve_connection(
                            TokioIo::new(stream),
                            TowerToHyperService::new(service),
                        );
                        crate::idle::serve_until_idle(
                            conn,
                            &streams,
                            options.header_timeout,
                            draining,
                        )
                        .await;
                    }
                }
                drop(permit);
            });
            continue;
        }
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watcher().watch(conn);
        conns.spawn(async move {
            // An error here is the client's (gone, too slow, not HTTP): nothing to answer.
            let _ = conn.await;
            drop(permit);
        });
    }
    if let Some(reload) = reload {
        reload.abort();
    }
    // The API and the HTTP gateway each run this loop: the log says which.
    let at = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    drop(listener);
    let open = conns.len();
    tracing::info!(
        open,
        %at,
        "shutting down {at}: accepting nothing more, letting {open} open connections finish for up to {:?}",
        options.drain_timeout
    );
    draining.send_replace(true);
    let drained = async {
        graceful.shutdown().await;
        while conns.join_next().await.is_some() {}
    };
    if tokio::time::timeout(options.drain_timeout, drained)
        .await
        .is_err()
    {
        tracing::warn!(
            cut = conns.len(),
            %at,
            "{at}: requests still running after {:?}: cutting {} connections",
            options.drain_timeout,
            conns.len()
        );
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

/// How a connection opened (see [`opens_in_time`]).
enum Opening {
    /// Not in time, or the client left.
    None,
    Http1,
    /// HTTP/2's connection preface.
    Http2,
}

/// Waits until a new connection's first bytes say which protocol it speaks: HTTP/2's
/// connection preface in full, or a byte that departs from it (HTTP/1.1). `None` if that
/// takes longer than `within` or the client leaves.
///
/// hyper-util's version detection waits for those bytes without a deadline, and hyper's own
/// header timeout starts only after it, so a client that sends `P` and nothing more would
/// hold its connection (and a permit) for ever. The bytes are peeked, not read: the
/// connection then reads them as usual.
async fn opens_in_time(stream: &TcpStream, within: Duration) -> Opening {
    const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let deadline = tokio::time::Instant::now() + within;
    let mut first = [0u8; 24];
    loop {
        let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut first)).await;
        let n = match peeked {
            Ok(Ok(n)) if n > 0 => n,
            // Gone, failed, or silent for too long.
            _ => return Opening::None,
        };
        if first[..n] != PREFACE[..n] {
            return Opening::Http1;
        }
        if n == PREFACE.len() {
            return Opening::Http2;
        }
        // A part of the preface so far: `peek` answers at once while those bytes wait, so
        // look again a little later.
        if tokio::time::Instant::now() >= deadline {
            return Opening::None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
