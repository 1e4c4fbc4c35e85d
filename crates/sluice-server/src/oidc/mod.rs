//! Sign-in through an OpenID Connect identity provider.
//!
//! Sluice is the relying party and the broker: it holds the client secret and, for CLI
//! sessions, the identity provider's refresh token (sealed at rest, [`seal`]); people and the CLI only ever hold a
//! Sluice session token (kind `session`, short-lived). The console signs in with the
//! authorization-code flow with PKCE, `state` and `nonce` ([`crate::console`]'s `oidc`
//! pages); the CLI with the device-authorization grant (RFC 8628) through `/v1/sign-in/…`.
//!
//! Every ID token is verified by the `openidconnect` crate — signature against the
//! provider's published keys, issuer, audience (this client, and no audience it does not
//! trust), expiry with a bounded clock skew, nonce — before anything is read from it
//! ([`verify`]). The principal's name and its groups then come from the claims the
//! configuration names; the policy's `idp_groups` maps those groups to Sluice groups when the
//! access snapshot is built ([`sluice_core::policy::Policy::with_idp_members`]).

pub mod config;
pub mod flow;
pub mod pending;
pub mod seal;
pub mod verify;

use crate::oidc::config::OidcConfig;
use openidconnect::core::CoreProviderMetadata;
use openidconnect::IssuerUrl;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use verify::Identity;

/// How long discovered provider metadata (endpoints and signing keys) is used before it is
/// fetched again, so a rotated key is picked up.
const METADATA_TTL: Duration = Duration::from_secs(300);

/// Why a sign-in, a refresh or a sign-out through the identity provider did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// No identity provider is configured.
    #[error("sign-in through an identity provider is not configured on this server")]
    NotConfigured,
    /// The identity provider could not be reached or answered something unusable.
    #[error("the identity provider is unavailable: {0}")]
    Provider(String),
    /// The identity provider refused (the person cancelled, the code was used, …).
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    /// The sign-in it answers was not started here, or started too long ago.
    #[error("this sign-in was not started here or has expired; start again")]
    UnknownLogin,
    /// The ID token failed verification.
    #[error("the identity token was refused: {0}")]
    IdToken(#[from] verify::IdTokenRefusal),
    /// The claim naming the principal is missing or not a usable name.
    #[error("{0}")]
    PrincipalClaim(String),
    /// The name belongs to a principal that may not sign in this way.
    #[error("`{0}` may not sign in through the identity provider (a built-in administrator or a service account)")]
    Reserved(String),
    /// The session cannot be renewed: the person must sign in again.
    #[error("the session has ended; sign in again (`sluice login`): {0}")]
    SessionEnded(String),
    /// A device sign-in is still waiting for the person to approve it.
    #[error("waiting for the sign-in to be approved at the verification URL")]
    Pending {
        /// Seconds to wait before asking again.
        interval: u64,
    },
}

impl SignInError {
    /// The stable code this refusal is answered with.
    pub fn code(&self) -> &'static str {
        match self {
            SignInError::NotConfigured => "sign_in_not_configured",
            SignInError::Provider(_) => "identity_provider_unavailable",
            SignInError::Refused(_) => "sign_in_refused",
            SignInError::UnknownLogin => "sign_in_expired",
            SignInError::IdToken(r) => r.code(),
            SignInError::PrincipalClaim(_) => "principal_claim_invalid",
            SignInError::Reserved(_) => "principal_reserved",
            SignInError::SessionEnded(_) => "session_ended",
            SignInError::Pending { .. } => "authorization_pending",
        }
    }
}

/// What was learnt from the provider's discovery document.
pub struct Discovered {
    pub metadata: CoreProviderMetadata,
    /// The device-authorization endpoint (RFC 8628), when the provider has one.
    pub device_authorization_endpoint: Option<String>,
    /// The token revocation endpoint (RFC 7009), when the provider has one.
    pub revocation_endpoint: Option<String>,
}

/// The identity provider of this server: its configuration, an HTTP client for it, and the
/// discovered metadata. (Console sign-ins in progress are in the store: [`pending`].)
pub struct Oidc {
    pub config: OidcConfig,
    pub http: reqwest::Client,
    discovered: tokio::sync::Mutex<Option<(Instant, Arc<Discovered>)>>,
}

impl Oidc {
    pub fn new(config: OidcConfig) -> Result<Oidc, String> {
        let http = reqwest::Client::builder()
            // The provider's answers are followed by nobody: a redirect is an error (no
            // request is sent where the configuration did not say).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the identity provider's HTTP client: {e}"))?;
        Ok(Oidc {
            config,
            http,
            discovered: tokio::sync::Mutex::new(None),
        })
    }

    /// The provider's metadata and keys, fetched at most every [`METADATA_TTL`].
    pub async fn discovered(&self) -> Result<Arc<Discovered>, SignInError> {
        let mut cached = self.discovered.lock().await;
        if let Some((at, d)) = cached.as_ref() {
            if at.elapsed() < METADATA_TTL {
                return Ok(d.clone());
            }
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|e| SignInError::Provider(format!("issuer URL: {e}")))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| SignInError::Provider(format!("discovery: {}", chain(&e))))?;
        let extra = self.extra_endpoints().await;
        let endpoint = |name: &str| {
            extra
                .as_ref()
                .and_then(|doc| doc.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let d = Arc::new(Discovered {
            metadata,
            device_authorization_endpoint: endpoint("device_authorization_endpoint"),
            revocation_endpoint: endpoint("revocation_endpoint"),
        });
        *cached = Some((Instant::now(), d.clone()));
        Ok(d)
    }

    /// The discovery document as JSON, for the endpoints that are not part of the core
    /// metadata the crate reads (device authorization, revocation).
    async fn extra_endpoints(&self) -> Option<serde_json::Value> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        self.http.get(url).send().await.ok()?.json().await.ok()
    }

    /// Forgets the discovered metadata (after a signature failure, the keys may have rotated).
    pub async fn forget_metadata(&self) {
        *self.discovered.lock().await = None;
    }
}

/// An error and its causes, in one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
