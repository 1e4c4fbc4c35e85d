//! The HTTP accept loop, with bounds no client can get past: a request header must arrive
//! within [`HttpOptions::header_timeout`] (which also closes an idle keep-alive connection),
//! at most [`HttpOptions::max_connections`] connections are served at once (the rest wait in
//! the listen backlog, and the log says so), and a shutdown lets requests in flight finish for
//! at most [`HttpOptions::drain_timeout`], then cuts what is left.
//!
//! `axum::serve` has none of these (its graceful shutdown waits for every request, however
//! long, and it sets no header timeout), so this is its loop with them: hyper's HTTP/1
//! connection with a timer, hyper-util's graceful-shutdown watcher, a semaphore.

use axum::body::HttpBody as Body;
use axum::http::{header, HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
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
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            header_timeout: Duration::from_secs(10),
            max_connections: 1000,
            drain_timeout: Duration::from_secs(5),
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
    let graceful = GracefulShutdown::new();
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
    drop(listener);
    let open = graceful.count();
    tracing::info!(
        open,
        "shutting down: accepting nothing more, letting {open} open connections finish for up to {:?}",
        options.drain_timeout
    );
    if tokio::time::timeout(options.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            cut = conns.len(),
            "requests still running after {:?}: cutting {} connections",
            options.drain_timeout,
            conns.len()
        );
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}
