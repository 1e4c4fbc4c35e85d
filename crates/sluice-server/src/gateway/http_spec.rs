//! What an HTTP gateway service is: an upstream URL, limits, an audit mode, and the header
//! Sluice adds upstream with its value named (an environment variable or a file), never held.
//! Declared in the config file's `http_services:` or through the API
//! (`PUT /v1/http/services/{name}`); the HTTP gateway (`sluice-http-gateway`) serves both.

pub use sluice_api::http_gateway::{AuditMode, CredentialConfig, ServiceConfig};

use super::spec::{read_credential, Password};
use std::path::{Path, PathBuf};

/// Environment variables an API declaration may name for a credential start with this (as
/// [`super::spec::API_CREDENTIAL_PREFIX`] for databases): no other variable of the server
/// (its admin token, its database URL) can be sent to an upstream of the caller's choosing.
pub const API_HTTP_CREDENTIAL_PREFIX: &str = "SLUICE_HTTP_";

/// What the server does with a [`ServiceConfig`] (the type itself is plain wire data).
pub trait ServiceConfigExt {
    /// Checks what serde cannot: a name, an http(s) upstream URL without query or
    /// credentials, a valid credential header with one source.
    fn validate(&self) -> Result<(), String>;
    /// What a declaration through the API must also satisfy: the credential is an
    /// environment variable under [`API_HTTP_CREDENTIAL_PREFIX`], or a bare file name, read
    /// in the gateway's credentials directory (any other file the server can read could be
    /// sent upstream).
    fn validate_declared(&self) -> Result<(), String>;
    /// The upstream base URL, parsed and checked.
    fn upstream_url(&self) -> Result<url::Url, String>;
    /// The wait for the upstream's response headers.
    fn timeout_std(&self) -> std::time::Duration;
}

impl ServiceConfigExt for ServiceConfig {
    fn validate(&self) -> Result<(), String> {
        sluice_core::policy::check_name("http_services[].name", &self.name)
            .map_err(|e| e.to_string())?;
        let url = self.upstream_url()?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "http service {}: the upstream URL takes no query or fragment",
                self.name
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(format!(
                "http service {}: max_body_bytes must be at least 1",
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

    fn validate_declared(&self) -> Result<(), String> {
        self.validate()?;
        let Some(c) = &self.credential else {
            return Ok(());
        };
        if let Some(var) = &c.value_env {
            if !(var.starts_with(API_HTTP_CREDENTIAL_PREFIX)
                && var.len() > API_HTTP_CREDENTIAL_PREFIX.len())
            {
                return Err(format!(
                    "http service {}: `{var}` is not a credential variable; through the API, value_env must start with `{API_HTTP_CREDENTIAL_PREFIX}` (export it to the servers)",
                    self.name
                ));
            }
        }
        if let Some(file) = &c.value_file {
            if bare_file_name(file).is_none() {
                return Err(format!(
                    "http service {}: through the API, value_file is a file name (no directory) in the gateway's http_credentials_dir, not `{}`",
                    self.name,
                    file.display()
                ));
            }
        }
        Ok(())
    }

    fn upstream_url(&self) -> Result<url::Url, String> {
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

    fn timeout_std(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout.as_secs())
    }
}

/// `name` when it is one plain file name (no directory, not `.` or `..`).
fn bare_file_name(p: &Path) -> Option<&str> {
    let s = p.to_str()?;
    let plain = !s.is_empty()
        && s != "."
        && s != ".."
        && !s.contains(['/', '\\', '\0'])
        && p.file_name().and_then(|n| n.to_str()) == Some(s);
    plain.then_some(s)
}

/// Where a service's credential is read from, once resolved: a declaration through the API
/// names its file inside the credentials directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    Env(String),
    File(PathBuf),
    /// A file name declared through the API while the gateway has no credentials directory.
    NoDirectory(String),
}

impl CredentialSource {
    /// `c`'s source: a config file's path as written; an API declaration's file name inside
    /// `dir`.
    pub fn resolve(c: &CredentialConfig, from_api: bool, dir: Option<&Path>) -> CredentialSource {
        match (&c.value_env, &c.value_file) {
            (Some(var), _) => CredentialSource::Env(var.clone()),
            (None, Some(file)) if from_api => match (dir, bare_file_name(file)) {
                (Some(d), Some(name)) => CredentialSource::File(d.join(name)),
                _ => CredentialSource::NoDirectory(file.display().to_string()),
            },
            (None, Some(file)) => CredentialSource::File(file.clone()),
            (None, None) => CredentialSource::Env(String::new()),
        }
    }

    /// Reads the value now (so a rotated credential is picked up); never kept nor shown.
    pub fn value(&self) -> Result<Password, String> {
        match self {
            CredentialSource::Env(var) if var.is_empty() => Err("no credential source".into()),
            CredentialSource::Env(var) => read_credential(Some(var), None),
            CredentialSource::File(path) => read_credential(None, Some(path)),
            CredentialSource::NoDirectory(name) => Err(format!(
                "the credential file `{name}` was declared through the API, but this gateway has no http_credentials_dir"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_file_names_are_bare() {
        for ok in ["payments.token", "a", ".hidden"] {
            assert_eq!(bare_file_name(Path::new(ok)), Some(ok));
        }
        for bad in ["", ".", "..", "../x", "/etc/passwd", "dir/x", "x/", "a\\b"] {
            assert_eq!(bare_file_name(Path::new(bad)), None, "{bad}");
        }
    }
}
