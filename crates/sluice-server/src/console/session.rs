//! Sign-in sessions: an API token pasted once becomes a server-side session behind a cookie.
//!
//! The cookie holds only a random session id (256 bits from the OS); the server keeps the
//! session under the id's SHA-256, with its expiry and its CSRF token. Every request
//! authenticates the session's API token again through `auth::authenticate` (the token
//! cache), so a revoked or expired token, or a principal removed from the policy, ends the
//! session at once. Sessions live in this instance's memory: a restart signs everyone out.

use super::page::{self, ConsoleError};
use super::Console;
use crate::caller::Caller;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, TimeDelta, Utc};
use rand::RngCore as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use sluice_core::token::{SecretToken, TokenKind};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The cookie's name.
pub const COOKIE: &str = "sluice_console";
/// How long a session lasts from sign-in.
const LIFETIME: TimeDelta = TimeDelta::hours(8);
/// Sessions held at once; signing in past it drops the oldest.
const MAX_SESSIONS: usize = 10_000;

struct Session {
    token: SecretToken,
    csrf: String,
    expires_at: DateTime<Utc>,
}

/// The sessions of this instance, by the SHA-256 of their id.
#[derive(Clone, Default)]
pub struct Sessions(Arc<Mutex<HashMap<String, Session>>>);

pub(super) fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub(super) fn key(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A poisoned map still holds valid sessions: nothing panics while holding it.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new session for `token`; returns its id (for the cookie).
    pub(super) fn open(&self, token: SecretToken, now: DateTime<Utc>) -> String {
        let id = random_hex();
        let mut map = self.lock();
        map.retain(|_, s| s.expires_at > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires_at)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            key(&id),
            Session {
                token,
                csrf: random_hex(),
                expires_at: now + LIFETIME,
            },
        );
        id
    }

    /// The live session behind `id`: its token and CSRF token.
    fn get(&self, id: &str, now: DateTime<Utc>) -> Option<(SecretToken, String)> {
        let k = key(id);
        let mut map = self.lock();
        match map.get(&k) {
            Some(s) if s.expires_at > now => Some((s.token.clone(), s.csrf.clone())),
            Some(_) => {
                map.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Is the session behind `id` still live?
    pub fn is_live(&self, id: &str, now: DateTime<Utc>) -> bool {
        self.get(id, now).is_some()
    }

    fn end(&self, id: &str) {
        self.lock().remove(&key(id));
    }
}

/// The identity provider's name for the sign-in button, when one is configured.
pub(super) fn provider(c: &Console) -> Option<String> {
    c.app.oidc_slot().map(|o| o.config.name.clone())
}

/// The session id the request's cookie carries.
fn session_id(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, COOKIE)
}

/// The value of the cookie `name` the request carries.
pub(super) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
}

/// A signed-in person: the caller behind the session's token, and the session's CSRF token.
pub struct Signed {
    pub caller: Arc<Caller>,
    pub csrf: String,
    pub session: String,
}

impl FromRequestParts<Console> for Signed {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, c: &Console) -> Result<Self, ConsoleError> {
        // A page asked for by a browser goes to the sign-in form; fragments, the event
        // stream and forms get 401.
        let page = parts.method == Method::GET
            && !parts.uri.path().contains("/fragments/")
            && !parts.uri.path().ends_with("/events");
        let missing = ConsoleError::NoSession { page };
        let id = session_id(&parts.headers).ok_or(missing)?;
        let Some((token, csrf)) = c.sessions.get(&id, c.app.now()) else {
            return Err(ConsoleError::NoSession { page });
        };
        match crate::auth::authenticate(&c.app, Some(token)).await {
            Ok(caller) if caller.kind.is_api() => Ok(Signed {
                caller,
                csrf,
                session: id,
            }),
            _ => {
                c.sessions.end(&id);
                Err(ConsoleError::NoSession { page })
            }
        }
    }
}

/// Refuses a form from another site: `Sec-Fetch-Site: cross-site`, or an `Origin` whose
/// host is not the one the form was posted to.
pub fn check_origin(headers: &HeaderMap) -> Result<(), ConsoleError> {
    let refused = || ConsoleError::Refused("this form came from another site".into());
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return Err(refused());
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(refused)?;
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| {
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
        })
        .ok_or_else(refused)?;
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(refused())
    }
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Signed {
    /// The navigation bar of a page for this person, with `active` the current tab.
    pub fn chrome(&self, active: &'static str) -> page::Chrome {
        page::Chrome {
            who: self.caller.name.clone(),
            csrf: self.csrf.clone(),
            active,
        }
    }

    /// A state-changing form must carry this session's CSRF token and come from this site.
    pub fn check_form(&self, headers: &HeaderMap, csrf: &str) -> Result<(), ConsoleError> {
        check_origin(headers)?;
        if csrf.is_empty() || !same(csrf, &self.csrf) {
            return Err(ConsoleError::Refused(
                "the form's CSRF token is missing or wrong; reload the page and try again".into(),
            ));
        }
        Ok(())
    }
}

pub(super) fn cookie(c: &Console, value: &str, max_age: i64) -> HeaderValue {
    let secure = if c.app.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let text =
        format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub async fn sign_in_page(State(c): State<Console>, headers: HeaderMap) -> Response {
    // Already signed in: straight to the inbox.
    if session_id(&headers).is_some_and(|id| c.sessions.is_live(&id, c.app.now())) {
        return Redirect::to("/ui/inbox").into_response();
    }
    page::render(
        axum::http::StatusCode::OK,
        &page::SignIn {
            error: None,
            provider: provider(&c),
        },
    )
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    token: String,
}

pub async fn sign_in(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, ConsoleError> {
    check_origin(&headers)?;
    let token = SecretToken::from_presented(&form.token);
    let refused = |message: &str| {
        page::render(
            axum::http::StatusCode::UNAUTHORIZED,
            &page::SignIn {
                error: Some(message.to_owned()),
                provider: provider(&c),
            },
        )
    };
    match crate::auth::authenticate(&c.app, Some(token.clone())).await {
        Ok(caller) if caller.kind == TokenKind::Api => {
            let id = c.sessions.open(token, c.app.now());
            tracing::info!(principal = %caller.name, "console sign-in by {}", caller.name);
            let mut resp = Redirect::to("/ui/inbox").into_response();
            let max_age = LIFETIME.num_seconds();
            resp.headers_mut()
                .insert(header::SET_COOKIE, cookie(&c, &id, max_age));
            Ok(resp)
        }
        Ok(_) => Ok(refused(
            "only an API token signs in (a client key or a connection password does not)",
        )),
        Err(e) => Ok(refused(&e.to_string())),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn sign_out(
    State(c): State<Console>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    signed.check_form(&headers, &form.csrf)?;
    c.sessions.end(&signed.session);
    if signed.caller.kind == TokenKind::Session {
        // Signed in through the identity provider: the session token ends too (audited).
        if let Err(e) = c.app.sign_out(&signed.caller).await {
            tracing::warn!(error = %e, "ending a console session's token failed: {e}");
        }
    }
    let mut resp = Redirect::to("/ui/sign-in").into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, cookie(&c, "", 0));
    Ok(resp)
}
