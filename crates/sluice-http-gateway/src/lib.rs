//! Sluice's HTTP gateway: a reverse proxy in front of internal admin APIs. A call to
//! `/<service>/<path>` carries the caller's Sluice token; it is decided as `METHOD path` on
//! `http:<service>` from the same access snapshot as AuthZEN, recorded in the audit trail,
//! forwarded with the service's own credential, and its response is cut when the grant ends.
//!
//! It runs beside the HTTP server over the same [`sluice_server::App`] — token cache,
//! snapshot, clock, store and refusal log — and shares the PostgreSQL gateway's seams in
//! `sluice_server::gateway`: the grant [`Hold`](sluice_server::gateway::Hold) and its expiry
//! watch, and credentials read per use and never stored.

pub mod config;
mod forward;
mod headers;
pub mod path;
mod proxy;
mod record;
mod refusal;

pub use config::{AuditMode, CredentialConfig, HttpGatewayConfig, ServiceConfig};
pub use headers::TOKEN_HEADER;

use axum::http::HeaderName;
use sluice_server::App;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A declared service, ready to forward to.
pub(crate) struct Service {
    config: ServiceConfig,
    /// The upstream URL; `base_path` is its path without a trailing `/`.
    base: url::Url,
    base_path: String,
    credential_header: HeaderName,
}

pub(crate) struct Shared {
    app: App,
    services: HashMap<String, Service>,
    client: reqwest::Client,
    log: record::CallLog,
}

/// The HTTP gateway bound to its address.
pub struct HttpGateway {
    shared: Arc<Shared>,
    listener: TcpListener,
}

impl HttpGateway {
    /// Checks the services and binds the listener.
    pub async fn bind(app: App, config: HttpGatewayConfig) -> anyhow::Result<HttpGateway> {
        let mut services = HashMap::new();
        for s in config.services {
            s.validate().map_err(anyhow::Error::msg)?;
            let base = s.upstream_url().map_err(anyhow::Error::msg)?;
            let base_path = base.path().trim_end_matches('/').to_owned();
            let credential_header = match &s.credential {
                Some(c) => {
                    // Read at each call (so it can be rotated in place); one that cannot be
                    // read now is said at once, not at the first refused call.
                    if let Err(e) = c.value() {
                        tracing::warn!(service = %s.name, "http:{}: the upstream credential cannot be read: {e}; calls are refused until it can", s.name);
                    }
                    HeaderName::from_bytes(c.header.as_bytes())?
                }
                None => HeaderName::from_static("authorization"),
            };
            if services.contains_key(&s.name) {
                anyhow::bail!("http service {} is declared twice", s.name);
            }
            services.insert(
                s.name.clone(),
                Service {
                    config: s,
                    base,
                    base_path,
                    credential_header,
                },
            );
        }
        let client = reqwest::Client::builder()
            // The gateway forwards exactly one request per call: a redirect goes back to the
            // caller, who must pass the gateway again to follow it.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()?;
        let listener = TcpListener::bind(config.listen).await?;
        Ok(HttpGateway {
            shared: Arc::new(Shared {
                log: record::CallLog::start(app.clone()),
                app,
                services,
                client,
            }),
            listener,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves calls (HTTP/1.1 and HTTP/2) until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let log = self.shared.log.clone();
        let router = axum::Router::new()
            .fallback(proxy::handle)
            .with_state(self.shared);
        let served = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        // The records of the last calls, gathered but not yet written.
        if !log.flush().await {
            tracing::error!("the last http call records could not be written");
        }
        served
    }
}
