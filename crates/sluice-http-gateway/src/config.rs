//! The HTTP gateway's settings: where it listens and the services it fronts (the
//! `http_services:` section of `sluice.yaml`).

use serde::Deserialize;
use sluice_server::gateway::spec::{read_credential, Password};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the HTTP gateway needs besides the [`sluice_server::App`].
#[derive(Debug, Clone)]
pub struct HttpGatewayConfig {
    pub listen: SocketAddr,
    pub services: Vec<ServiceConfig>,
}

/// One service reached as `/<name>/…` and decided as the resource `http:<name>`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: String,
    /// Base URL of the upstream (`http://10.0.0.7:8080`, or with a path prefix).
    pub upstream: String,
    /// The credential Sluice adds upstream; callers never hold it.
    #[serde(default)]
    pub credential: Option<CredentialConfig>,
    /// `before` (default): a call is forwarded only once its `http.call.admitted` entry is
    /// committed. `after`: one `http.call.ended` entry once the response is over, best effort.
    #[serde(default)]
    pub audit: AuditMode,
    /// Longest wait for the upstream's response headers (`30s` by default).
    #[serde(default = "default_timeout")]
    pub timeout: sluice_core::duration::Duration,
    /// Largest request body forwarded, in bytes (1 MiB by default).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
}

fn default_timeout() -> sluice_core::duration::Duration {
    sluice_core::duration::Duration::from_secs(30)
}

fn default_max_body() -> u64 {
    1024 * 1024
}

/// A header whose whole value (`Bearer …`, `Basic …`, an API key) is read from an
/// environment variable or a file at each call, never stored nor shown.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    #[serde(default = "default_header")]
    pub header: String,
    #[serde(default)]
    pub value_env: Option<String>,
    #[serde(default)]
    pub value_file: Option<PathBuf>,
}

fn default_header() -> String {
    "authorization".into()
}

impl CredentialConfig {
    pub fn value(&self) -> Result<Password, String> {
        read_credential(self.value_env.as_deref(), self.value_file.as_deref())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditMode {
    #[default]
    Before,
    After,
}

impl AuditMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditMode::Before => "before",
            AuditMode::After => "after",
        }
    }
}

impl ServiceConfig {
    /// Checks what serde cannot: a name, an http(s) upstream URL without query, a valid
    /// credential header with one source.
    pub fn validate(&self) -> Result<(), String> {
        sluice_core::policy::check_name("http_services[].name", &self.name)
            .map_err(|e| e.to_string())?;
        let url = self.upstream_url()?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "http service {}: the upstream URL takes no query or fragment",
                self.name
            ));
        }
        if let Some(c) = &self.credential {
            if reqwest::header::HeaderName::from_bytes(c.header.as_bytes()).is_err() {
                return Err(format!(
                    "http service {}: `{}` is not a header name",
                    self.name, c.header
                ));
            }
            if c.value_env.is_some() == c.value_file.is_some() {
                return Err(format!(
                    "http service {}: give the credential's value_env or value_file (one of them)",
                    self.name
                ));
            }
        }
        Ok(())
    }

    pub fn upstream_url(&self) -> Result<url::Url, String> {
        let url = url::Url::parse(&self.upstream)
            .map_err(|e| format!("http service {}: upstream: {e}", self.name))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "http service {}: put the upstream's credential in `credential:`, not in its URL",
                self.name
            ));
        }
        match url.scheme() {
            "http" | "https" if url.host().is_some() => Ok(url),
            _ => Err(format!(
                "http service {}: the upstream must be an http:// or https:// URL with a host",
                self.name
            )),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.as_secs())
    }
}
