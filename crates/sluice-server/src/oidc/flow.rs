//! The exchanges with the identity provider: the authorization-code flow with PKCE (the
//! console), the device-authorization grant (the CLI) and refresh. Each ends in a verified
//! [`Identity`].
//!
//! The code flow is the `openidconnect` crate's from end to end. The device grant's two
//! requests and the refresh request are plain form POSTs to the endpoints the discovery
//! document names (the crate polls the device endpoint in a loop of its own, where Sluice
//! answers each poll of the CLI with one request); the ID tokens they return are verified by
//! the crate exactly as the code flow's.

use super::pending::PendingLogin;
use super::verify::{any_nonce, identity, IdTokenRefusal};
use super::{chain, Identity, Oidc, SignInError};
use chrono::{DateTime, Utc};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken};
use openidconnect::{
    AuthorizationCode, ClientId, CsrfToken, Nonce, PkceCodeChallenge, RedirectUrl,
    RequestTokenError, Scope, TokenResponse as _,
};
use serde::{Deserialize, Serialize};
use std::str::FromStr as _;

/// What the CLI shows the person, and polls with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceStart {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    #[serde(default = "five")]
    pub interval: u64,
}

fn five() -> u64 {
    5
}

/// A token endpoint's answer, success or error (RFC 6749 §5).
#[derive(Debug, Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
    refresh_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// A verified identity, with the refresh token that came with it (the CLI's sessions keep it).
pub struct SignedIn {
    pub identity: Identity,
    pub refresh_token: Option<String>,
}

impl Oidc {
    /// Where the console sends the browser: the authorization URL of a new sign-in, and what
    /// its answer will need (kept by the caller until then).
    pub async fn authorization_url(
        &self,
        redirect: &str,
    ) -> Result<(String, PendingLogin), SignInError> {
        let d = self.discovered().await?;
        let client = CoreClient::from_provider_metadata(
            d.metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            Some(self.config.client_secret.clone()),
        )
        .set_redirect_uri(redirect_url(redirect)?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for s in &self.config.scopes {
            request = request.add_scope(Scope::new(s.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let login = PendingLogin {
            state: state.secret().clone(),
            nonce,
            verifier,
        };
        Ok((url.to_string(), login))
    }

    /// The provider's answer to the console sign-in `login`: the code exchanged (with the
    /// PKCE verifier) and the ID token verified (with the nonce).
    pub async fn finish_code(
        &self,
        redirect: &str,
        login: PendingLogin,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<Identity, SignInError> {
        let d = self.discovered().await?;
        let client = CoreClient::from_provider_metadata(
            d.metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            Some(self.config.client_secret.clone()),
        )
        .set_redirect_uri(redirect_url(redirect)?);
        let answer = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| SignInError::Provider(e.to_string()))?
            .set_pkce_verifier(login.verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => SignInError::Refused(format!(
                    "{}{}",
                    r.error(),
                    r.error_description()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                )),
                other => SignInError::Provider(chain(&other)),
            })?;
        let token = answer.id_token().ok_or(IdTokenRefusal::Missing)?;
        let verified = identity(&self.config, &d, token, &login.nonce, now);
        if matches!(
            verified,
            Err(SignInError::IdToken(IdTokenRefusal::Signature(_)))
        ) {
            // The keys may have rotated: the next sign-in fetches them again.
            self.forget_metadata().await;
        }
        verified
    }

    /// Starts a device sign-in (RFC 8628 §3.1) for the CLI.
    pub async fn device_start(&self) -> Result<DeviceStart, SignInError> {
        let d = self.discovered().await?;
        let endpoint = d.device_authorization_endpoint.clone().ok_or_else(|| {
            SignInError::Provider(
                "the identity provider has no device_authorization_endpoint; \
                 sign in through the console instead"
                    .into(),
            )
        })?;
        let mut scopes = vec!["openid".to_owned()];
        scopes.extend(self.config.scopes.iter().cloned());
        scopes.push("offline_access".into());
        let resp = self
            .http
            .post(endpoint)
            .basic_auth(
                form_encode(&self.config.client_id),
                Some(form_encode(self.config.client_secret.secret())),
            )
            .form(&[
                ("client_id", self.config.client_id.as_str()),
                ("scope", &scopes.join(" ")),
            ])
            .send()
            .await
            .map_err(|e| SignInError::Provider(chain(&e)))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(SignInError::Refused(format!(
                "device authorization: {status}: {}",
                body.chars().take(300).collect::<String>()
            )));
        }
        resp.json()
            .await
            .map_err(|e| SignInError::Provider(format!("device authorization answer: {e}")))
    }

    /// One poll of a device sign-in (RFC 8628 §3.4): the identity once the person approved,
    /// [`SignInError::Pending`] before.
    pub async fn device_token(
        &self,
        device_code: &str,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, SignInError> {
        let answer = self
            .token_request(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device_code),
                ("client_id", self.config.client_id.as_str()),
            ])
            .await?;
        match answer.error.as_deref() {
            None => {}
            Some("authorization_pending") => return Err(SignInError::Pending { interval: 5 }),
            Some("slow_down") => return Err(SignInError::Pending { interval: 10 }),
            Some(e) => return Err(refused(e, answer.error_description.as_deref())),
        }
        self.verified(answer, None, now).await
    }

    /// Refreshes at the identity provider: a new ID token, whose groups are read again.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, SignInError> {
        let answer = self
            .token_request(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", self.config.client_id.as_str()),
            ])
            .await?;
        if let Some(e) = answer.error.as_deref() {
            return Err(SignInError::SessionEnded(format!(
                "the identity provider refused to refresh: {e}{}",
                answer
                    .error_description
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            )));
        }
        if answer.id_token.is_none() {
            // Without a new ID token the groups cannot be read again: fail closed.
            return Err(SignInError::SessionEnded(
                "the identity provider sent no new ID token, so the groups cannot be read again"
                    .into(),
            ));
        }
        self.verified(answer, Some(refresh_token), now).await
    }

    async fn verified(
        &self,
        answer: TokenAnswer,
        previous_refresh: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, SignInError> {
        let d = self.discovered().await?;
        let raw = answer.id_token.ok_or(IdTokenRefusal::Missing)?;
        let token = CoreIdToken::from_str(&raw)
            .map_err(|e| IdTokenRefusal::Other(format!("not an ID token: {e}")))?;
        let identity = identity(&self.config, &d, &token, any_nonce, now)?;
        Ok(SignedIn {
            identity,
            refresh_token: answer
                .refresh_token
                .or_else(|| previous_refresh.map(str::to_owned)),
        })
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenAnswer, SignInError> {
        let d = self.discovered().await?;
        let endpoint = d
            .metadata
            .token_endpoint()
            .ok_or_else(|| SignInError::Provider("the provider names no token endpoint".into()))?
            .url()
            .clone();
        let resp = self
            .http
            .post(endpoint)
            .basic_auth(
                form_encode(&self.config.client_id),
                Some(form_encode(self.config.client_secret.secret())),
            )
            .form(form)
            .send()
            .await
            .map_err(|e| SignInError::Provider(chain(&e)))?;
        let status = resp.status();
        let answer: TokenAnswer = resp.json().await.map_err(|e| {
            SignInError::Provider(format!("token endpoint answered {status}, not JSON: {e}"))
        })?;
        Ok(answer)
    }

    /// Revokes a refresh token at the provider (RFC 7009), when it has an endpoint for it.
    /// Best effort: the Sluice session is ended whatever the provider answers.
    pub async fn revoke(&self, refresh_token: &str) {
        let Ok(d) = self.discovered().await else {
            return;
        };
        let Some(endpoint) = d.revocation_endpoint.clone() else {
            return;
        };
        let result = self
            .http
            .post(endpoint)
            .basic_auth(
                form_encode(&self.config.client_id),
                Some(form_encode(self.config.client_secret.secret())),
            )
            .form(&[
                ("token", refresh_token),
                ("token_type_hint", "refresh_token"),
            ])
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "revoking a refresh token at the identity provider failed: {e}");
        }
    }
}

fn refused(error: &str, description: Option<&str>) -> SignInError {
    SignInError::Refused(format!(
        "{error}{}",
        description.map(|d| format!(": {d}")).unwrap_or_default()
    ))
}

fn redirect_url(redirect: &str) -> Result<RedirectUrl, SignInError> {
    RedirectUrl::new(redirect.to_owned())
        .map_err(|e| SignInError::Provider(format!("redirect URL `{redirect}`: {e}")))
}

/// `application/x-www-form-urlencoded`, as HTTP Basic client authentication needs (RFC 6749
/// §2.3.1).
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
