//! The `oidc:` section of the config file (and the `--oidc-…` flags over it). The client
//! secret comes from the environment or a file, never from the config file or the command
//! line.

use openidconnect::ClientSecret;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The environment variable the client secret is read from by default.
pub const SECRET_ENV: &str = "SLUICE_OIDC_CLIENT_SECRET";
/// Sign-in requests per minute per source address by default: a person's sign-in takes two
/// to four (or a device poll every 5 s), so a whole office behind one address fits, and a
/// script hammering the endpoints (each costs a round trip to the identity provider) does not.
pub const DEFAULT_SIGN_IN_PER_MINUTE: u32 = 30;
/// The longest clock skew that may be configured.
const MAX_SKEW: Duration = Duration::from_secs(300);

/// `oidc:` as written in `sluice.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcFile {
    /// The issuer URL (its `/.well-known/openid-configuration` is read).
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    /// The environment variable holding the client secret (default `SLUICE_OIDC_CLIENT_SECRET`).
    pub client_secret_env: Option<String>,
    /// Or a file holding it (trailing white space ignored).
    pub client_secret_file: Option<PathBuf>,
    /// The claim whose value is the principal's name (default `email`).
    pub principal_claim: Option<String>,
    /// The claim carrying the person's groups, a list of strings (default `groups`).
    pub groups_claim: Option<String>,
    /// Scopes asked for besides `openid` (default `email profile groups`).
    pub scopes: Option<Vec<String>>,
    /// The provider's name on the console's sign-in button (default `your identity provider`).
    pub name: Option<String>,
    /// Clock skew tolerated on the ID token's expiry and issue time (default 60s, at most 5m).
    pub clock_skew: Option<String>,
    /// How long a Sluice session lasts before it must be refreshed (default 1h, 1m to 24h).
    pub session_ttl: Option<String>,
    /// Sign-in requests (device start and poll, console start and callback) per minute per
    /// source address, then `429 rate_limited` (default 30; 0 turns the limit off).
    pub sign_in_rate_limit: Option<u32>,
}

/// A resolved identity provider configuration, secret included.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    /// Redacted in `Debug` by its type.
    pub client_secret: ClientSecret,
    pub principal_claim: String,
    pub groups_claim: String,
    pub scopes: Vec<String>,
    pub name: String,
    pub clock_skew: Duration,
    pub session_ttl: Duration,
    /// Sign-in requests per minute per source address; 0: unlimited.
    pub sign_in_per_minute: u32,
}

fn duration(what: &str, raw: Option<&str>, default: Duration) -> Result<Duration, String> {
    match raw {
        None => Ok(default),
        Some(s) => humantime::parse_duration(s)
            .map_err(|e| format!("oidc.{what}: `{s}` is not a duration like 60s: {e}")),
    }
}

impl OidcFile {
    /// Checks the section and reads the secret. `None` when no issuer is given (sign-in
    /// through an identity provider is off).
    pub fn resolve(&self) -> Result<Option<OidcConfig>, String> {
        let Some(issuer) = self.issuer.clone() else {
            if self.client_id.is_some() {
                return Err("oidc: a client_id without an issuer; give oidc.issuer".into());
            }
            return Ok(None);
        };
        let url = url::Url::parse(&issuer)
            .map_err(|e| format!("oidc.issuer: `{issuer}` is not a URL: {e}"))?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(format!(
                "oidc.issuer: `{issuer}` must be https (plain http only on loopback)"
            ));
        }
        let client_id = self
            .client_id
            .clone()
            .filter(|c| !c.is_empty())
            .ok_or("oidc.client_id is required with oidc.issuer")?;
        let secret = match (&self.client_secret_file, &self.client_secret_env) {
            (Some(_), Some(_)) => {
                return Err("oidc: give client_secret_env or client_secret_file, not both".into())
            }
            (Some(path), None) => std::fs::read_to_string(path)
                .map_err(|e| format!("oidc.client_secret_file {}: {e}", path.display()))?
                .trim_end()
                .to_owned(),
            (None, env) => {
                let var = env.as_deref().unwrap_or(SECRET_ENV);
                std::env::var(var).map_err(|_| {
                    format!("oidc: the client secret is read from ${var}, which is not set")
                })?
            }
        };
        if secret.is_empty() {
            return Err("oidc: the client secret is empty".into());
        }
        let clock_skew = duration(
            "clock_skew",
            self.clock_skew.as_deref(),
            Duration::from_secs(60),
        )?;
        if clock_skew > MAX_SKEW {
            return Err("oidc.clock_skew: at most 5m".into());
        }
        let session_ttl = duration(
            "session_ttl",
            self.session_ttl.as_deref(),
            Duration::from_secs(3600),
        )?;
        if !(Duration::from_secs(60)..=Duration::from_secs(86_400)).contains(&session_ttl) {
            return Err("oidc.session_ttl: between 1m and 24h".into());
        }
        Ok(Some(OidcConfig {
            issuer,
            client_id,
            client_secret: ClientSecret::new(secret),
            principal_claim: self
                .principal_claim
                .clone()
                .unwrap_or_else(|| "email".into()),
            groups_claim: self.groups_claim.clone().unwrap_or_else(|| "groups".into()),
            scopes: self
                .scopes
                .clone()
                .unwrap_or_else(|| vec!["email".into(), "profile".into(), "groups".into()]),
            name: self
                .name
                .clone()
                .unwrap_or_else(|| "your identity provider".into()),
            clock_skew,
            session_ttl,
            sign_in_per_minute: self
                .sign_in_rate_limit
                .unwrap_or(DEFAULT_SIGN_IN_PER_MINUTE),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_secret_file() -> (tempfile::TempDir, OidcFile) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret\n").unwrap();
        let file = OidcFile {
            issuer: Some("https://idp.example.com/realms/acme".into()),
            client_id: Some("sluice".into()),
            client_secret_file: Some(path),
            ..OidcFile::default()
        };
        (dir, file)
    }

    #[test]
    fn the_section_is_checked_before_the_server_starts() {
        assert!(OidcFile::default().resolve().unwrap().is_none());
        let (_dir, file) = with_secret_file();
        let c = file.resolve().unwrap().unwrap();
        assert_eq!(c.client_secret.secret(), "s3cret");
        assert_eq!(
            (c.principal_claim.as_str(), c.groups_claim.as_str()),
            ("email", "groups")
        );
        assert_eq!(c.clock_skew, Duration::from_secs(60));
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "the secret is redacted"
        );

        let plain = OidcFile {
            issuer: Some("http://idp.example.com".into()),
            ..file.clone()
        };
        assert!(plain.resolve().unwrap_err().contains("must be https"));
        let loopback = OidcFile {
            issuer: Some("http://127.0.0.1:9000".into()),
            ..file.clone()
        };
        assert!(loopback.resolve().is_ok());
        let no_client = OidcFile {
            client_id: None,
            ..file.clone()
        };
        assert!(no_client.resolve().unwrap_err().contains("client_id"));
        let skew = OidcFile {
            clock_skew: Some("10m".into()),
            ..file.clone()
        };
        assert!(skew.resolve().unwrap_err().contains("at most 5m"));
        let both = OidcFile {
            client_secret_env: Some("X".into()),
            ..file
        };
        assert!(both.resolve().unwrap_err().contains("not both"));
    }
}
