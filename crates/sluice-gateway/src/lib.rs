//! Sluice's PostgreSQL gateway: clients connect with any PostgreSQL client, their Sluice
//! token as the password; the principal's live grant on `db:<name>` picks the upstream role
//! (PostgreSQL's own privileges enforce it); statements are logged; the session is cut when
//! the grant ends.
//!
//! It runs beside the HTTP server over the same [`sluice_server::App`]: the same decision
//! snapshot, token cache, clock and audit store.

pub mod config;
mod log;
mod scan;
mod session;
mod stream;
pub mod tls;
mod upstream;
mod wire;

pub use config::{DatabaseConfig, GatewayConfig, LogMode, RoleConfig, TlsSource, UpstreamConfig};

use sluice_server::App;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// Where a client's cancellation key leads: the upstream backend of its session.
#[derive(Debug, Clone)]
struct CancelTarget {
    host: String,
    port: u16,
    pid: i32,
    secret: i32,
}

struct Shared {
    app: App,
    config: GatewayConfig,
    tls: tokio_rustls::TlsAcceptor,
    log: log::LogSink,
    /// The keys handed to clients (`BackendKeyData`) → the upstream's.
    cancel_keys: Mutex<HashMap<(i32, i32), CancelTarget>>,
}

/// A gateway bound to its address.
pub struct Gateway {
    shared: Arc<Shared>,
    listener: TcpListener,
    /// SHA-256 fingerprint of the client-side certificate.
    pub fingerprint: String,
    /// True when this start generated a self-signed certificate.
    pub generated_certificate: bool,
}

impl Gateway {
    /// Loads (or generates) the certificate and binds the listener.
    pub async fn bind(app: App, config: GatewayConfig) -> anyhow::Result<Gateway> {
        for db in &config.databases {
            db.validate().map_err(anyhow::Error::msg)?;
        }
        let tls = tls::load(&config.tls)?;
        let listener = TcpListener::bind(config.listen).await?;
        let log = log::LogSink::start(app.clone());
        Ok(Gateway {
            shared: Arc::new(Shared {
                app,
                config,
                tls: tls.acceptor,
                log,
                cancel_keys: Mutex::new(HashMap::new()),
            }),
            listener,
            fingerprint: tls.fingerprint,
            generated_certificate: tls.generated,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until `shutdown` resolves; each runs in a task of its own.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let shared = self.shared.clone();
                        tokio::spawn(async move {
                            if let Err(e) = session::handle(shared, tcp, peer).await {
                                tracing::debug!(%peer, error = %e, "gateway connection from {peer} ended: {e}");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "gateway accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }
}
