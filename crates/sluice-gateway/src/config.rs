//! The gateway's settings: where it listens, its TLS certificate, and the databases it serves
//! (the `databases:` section of `sluice.yaml`).

use std::net::SocketAddr;
use std::path::PathBuf;

pub use sluice_server::gateway::spec::{
    DatabaseConfig, DatabaseConfigExt, LogMode, Password, RoleConfig, RoleConfigExt, UpstreamConfig,
};

/// Everything the gateway needs besides the [`sluice_server::App`].
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    pub databases: Vec<DatabaseConfig>,
    pub tls: TlsSource,
    /// Accept a password over plaintext from a loopback client. Off by default: the password
    /// is a Sluice token.
    pub allow_plaintext_loopback: bool,
}

/// Where the client-side TLS certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// A certificate chain and private key, both PEM.
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed certificate kept in this directory, generated on first start.
    SelfSigned { dir: PathBuf },
}
