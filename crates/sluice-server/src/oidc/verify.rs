//! ID token verification, and the identity read from a verified token.

use super::config::OidcConfig;
use super::Discovered;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier};
use openidconnect::{ClaimsVerificationError, ClientId, Nonce, NonceVerifier};
use sluice_core::scope::normalize;

/// Why an ID token was refused; each has a stable code.
#[derive(Debug, thiserror::Error)]
pub enum IdTokenRefusal {
    #[error("its signature does not verify with the provider's keys ({0})")]
    Signature(String),
    #[error("it was issued for another audience ({0})")]
    Audience(String),
    #[error("it was issued by another issuer ({0})")]
    Issuer(String),
    #[error("it has expired ({0})")]
    Expired(String),
    #[error("it was issued in the future, beyond the allowed clock skew")]
    IssuedInFuture,
    #[error("its nonce is not the one this sign-in sent ({0})")]
    Nonce(String),
    #[error("the provider sent no ID token")]
    Missing,
    #[error("{0}")]
    Other(String),
}

impl IdTokenRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            IdTokenRefusal::Signature(_) => "id_token_bad_signature",
            IdTokenRefusal::Audience(_) => "id_token_wrong_audience",
            IdTokenRefusal::Issuer(_) => "id_token_wrong_issuer",
            IdTokenRefusal::Expired(_) => "id_token_expired",
            IdTokenRefusal::IssuedInFuture => "id_token_from_the_future",
            IdTokenRefusal::Nonce(_) => "id_token_wrong_nonce",
            IdTokenRefusal::Missing => "id_token_missing",
            IdTokenRefusal::Other(_) => "id_token_invalid",
        }
    }
}

impl From<ClaimsVerificationError> for IdTokenRefusal {
    fn from(e: ClaimsVerificationError) -> Self {
        match e {
            ClaimsVerificationError::Expired(m) => IdTokenRefusal::Expired(m),
            ClaimsVerificationError::InvalidAudience(m) => IdTokenRefusal::Audience(m),
            ClaimsVerificationError::InvalidIssuer(m) => IdTokenRefusal::Issuer(m),
            ClaimsVerificationError::InvalidNonce(m) => IdTokenRefusal::Nonce(m),
            ClaimsVerificationError::SignatureVerification(e) => {
                IdTokenRefusal::Signature(e.to_string())
            }
            other => IdTokenRefusal::Other(other.to_string()),
        }
    }
}

/// Who signed in, as a verified ID token says.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The principal's name (the configured claim, normalised as every name in Sluice).
    pub principal: String,
    /// The provider's `sub`.
    pub subject: String,
    /// The groups claim, as the provider spells them (empty when absent).
    pub groups: Vec<String>,
}

/// Verifies `token` — signature, issuer, audience, expiry (with the configured skew), issue
/// time, and the nonce through `nonce` — and reads the identity from it.
pub fn identity(
    config: &OidcConfig,
    discovered: &Discovered,
    token: &CoreIdToken,
    nonce: impl NonceVerifier,
    now: DateTime<Utc>,
) -> Result<Identity, super::SignInError> {
    let skew = chrono::TimeDelta::from_std(config.clock_skew).unwrap_or(chrono::TimeDelta::zero());
    let verifier = CoreIdTokenVerifier::new_confidential_client(
        ClientId::new(config.client_id.clone()),
        config.client_secret.clone(),
        discovered.metadata.issuer().clone(),
        discovered.metadata.jwks().clone(),
    )
    // Expiry is compared with a clock `skew` behind ours: a token is accepted until its
    // `exp` plus the skew, no longer.
    .set_time_fn(move || now - skew);
    let claims = token
        .claims(&verifier, nonce)
        .map_err(IdTokenRefusal::from)?;
    if claims.issue_time() > now + skew {
        return Err(IdTokenRefusal::IssuedInFuture.into());
    }
    let subject = claims.subject().as_str().to_owned();
    // INVARIANT: read only after `claims` verified this very token's signature and claims.
    let raw = payload(token)?;
    let principal = match raw.get(&config.principal_claim) {
        Some(serde_json::Value::String(s)) => normalize(s),
        Some(_) => {
            return Err(super::SignInError::PrincipalClaim(format!(
                "the `{}` claim is not a string",
                config.principal_claim
            )))
        }
        None => {
            return Err(super::SignInError::PrincipalClaim(format!(
                "the ID token has no `{}` claim (the principal name); ask for its scope or \
                 set oidc.principal_claim",
                config.principal_claim
            )))
        }
    };
    sluice_core::policy::check_name(&config.principal_claim, &principal)
        .map_err(|e| super::SignInError::PrincipalClaim(format!("`{principal}`: {}", e.message)))?;
    let groups = match raw.get(&config.groups_claim) {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|g| g.as_str().map(str::to_owned))
            .take(1000)
            .collect(),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        Some(_) => {
            return Err(super::SignInError::PrincipalClaim(format!(
                "the `{}` claim is not a list of group names",
                config.groups_claim
            )))
        }
    };
    Ok(Identity {
        principal,
        subject,
        groups,
    })
}

/// The claims of a JWT's payload, as JSON.
fn payload(
    token: &CoreIdToken,
) -> Result<serde_json::Map<String, serde_json::Value>, IdTokenRefusal> {
    let text = token.to_string();
    let part = text
        .split('.')
        .nth(1)
        .ok_or_else(|| IdTokenRefusal::Other("not a compact JWT".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| IdTokenRefusal::Other(format!("payload: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| IdTokenRefusal::Other(format!("payload: {e}")))
}

/// A nonce check for a refreshed ID token, which carries none (or the first one).
pub fn any_nonce(_: Option<&Nonce>) -> Result<(), String> {
    Ok(())
}
