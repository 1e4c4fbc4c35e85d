//! Sluice's HTTP gateway: a reverse proxy in front of internal admin APIs. A call to
//! `/<service>/<path>` carries the caller's Sluice token; it is decided as `METHOD path` on
//! `http:<service>` from the same access snapshot as AuthZEN, recorded in the audit trail,
//! forwarded with the service's own credential, and its response (or WebSocket) is cut when
//! the grant ends or an administrator kills it.
//!
//! It runs beside the HTTP server over the same [`sluice_server::App`] — token cache,
//! snapshot, clock, store and refusal log — and shares the PostgreSQL gateway's seams in
//! `sluice_server::gateway`: the grant [`Hold`](sluice_server::gateway::Hold) and its expiry
//! watch, the registry of what runs (calls in progress, listed and killed through the API),
//! the services declared through the API, and credentials read per use and never stored.

pub mod config;
mod forward;
mod headers;
pub mod path;
mod proxy;
mod record;
mod refusal;
mod services;
mod upgrade;

pub use config::{AuditMode, CredentialConfig, HttpGatewayConfig, ServiceConfig};
pub use headers::TOKEN_HEADER;

use sluice_server::serve::HttpOptions;
use sluice_server::App;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

pub(crate) use services::Service;

/// What ends a call in progress (its grant's end, or a kill): resolves with why, for the
/// record, and what the caller is told.
pub(crate) type Watch =
    std::pin::Pin<Box<dyn std::future::Future<Output = (String, String)> + Send>>;

pub(crate) struct Shared {
    app: App,
    /// The services served now: rebuilt when one is declared or removed through the API; a
    /// call reads them without a lock or a store read.
    services: services::Served,
    client: reqwest::Client,
    log: record::CallLog,
}

/// The HTTP gateway bound to its address.
pub struct HttpGateway {
    shared: Arc<Shared>,
    listener: TcpListener,
}

impl HttpGateway {
    /// Checks the config file's services, loads those declared through the API, and binds
    /// the listener.
    pub async fn bind(app: App, config: HttpGatewayConfig) -> anyhow::Result<HttpGateway> {
        let catalog = services::Catalog::new(config.services, config.credentials_dir)
            .map_err(anyhow::Error::msg)?;
        let client = reqwest::Client::builder()
            // The gateway forwards exactly one request per call: a redirect goes back to the
            // caller, who must pass the gateway again to follow it.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()?;
        let services = services::Served::start(&app, catalog).await?;
        let listener = TcpListener::bind(config.listen).await?;
        let shared = Arc::new(Shared {
            log: record::CallLog::start(app.clone()),
            services,
            app,
            client,
        });
        Ok(HttpGateway { shared, listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves calls (HTTP/1.1 with upgrades, and HTTP/2 with prior knowledge) until
    /// `shutdown` resolves, under the API's bounds (`options`: header timeout, connection
    /// limit, drain on shutdown; see `sluice_server::serve`).
    pub async fn run(
        self,
        options: HttpOptions,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let log = self.shared.log.clone();
        let router = axum::Router::new()
            .fallback(proxy::handle)
            .with_state(self.shared);
        let options = HttpOptions {
            http2: true,
            ..options
        };
        sluice_server::serve::serve(self.listener, router, options, None, shutdown).await;
        // The records of the last calls, gathered but not yet written.
        if !log.flush().await {
            tracing::error!("the last http call records could not be written");
        }
    }
}
