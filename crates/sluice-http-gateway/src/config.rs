//! The HTTP gateway's settings: where it listens, the services its config file declares (the
//! `http_services:` section of `sluice.yaml`) and where credential files declared through the
//! API are read. The service type and its rules are shared with the API
//! (`sluice_server::gateway::http_spec`), which declares services at run time.

pub use sluice_server::gateway::http_spec::{
    AuditMode, CredentialConfig, CredentialSource, ServiceConfig, ServiceConfigExt,
};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything the HTTP gateway needs besides the [`sluice_server::App`].
#[derive(Debug, Clone)]
pub struct HttpGatewayConfig {
    pub listen: SocketAddr,
    /// The config file's services; those declared through the API are added as they come.
    pub services: Vec<ServiceConfig>,
    /// Where a credential file named by a declaration through the API is read (a bare file
    /// name there); without it such a credential cannot be read and its calls are refused.
    pub credentials_dir: Option<PathBuf>,
}
