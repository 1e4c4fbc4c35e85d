//! "Sign in with <provider>": the authorization-code flow with PKCE, `state` and `nonce`
//! (see [`crate::oidc`]). `/ui/oidc/start` sends the browser to the identity provider with a
//! cookie binding the sign-in to it; `/ui/oidc/callback` takes the provider's answer, verifies
//! it, opens a session token for the person and a console session around it.

use super::page;
use super::session::{cookie, cookie_value, key, provider, random_hex};
use super::Console;
use crate::auth::throttle_sign_in;
use crate::error::ApiError;
use crate::oidc::flow::SignedIn;
use crate::ops::sign_in::Via;
use crate::ops::OpError;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Extension;
use serde::Deserialize;
use std::net::SocketAddr;

/// The cookie binding a sign-in in progress to the browser that started it.
const BROWSER: &str = "sluice_oidc";
/// The binding cookie's lifetime, as long as a sign-in may take.
const BROWSER_MAX_AGE: i64 = 600;

fn refused(c: &Console, status: StatusCode, message: String) -> Response {
    page::render(
        status,
        &page::SignIn {
            error: Some(message),
            provider: provider(c),
        },
    )
}

fn redirect_uri(c: &Console) -> String {
    format!("{}/ui/oidc/callback", c.app.public_url())
}

/// The binding cookie: sent back on the provider's redirect (a top-level navigation from
/// another site), so `SameSite=Lax`, and only to the callback's path.
fn browser_cookie(c: &Console, value: &str, max_age: i64) -> HeaderValue {
    let secure = if c.app.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let text = format!(
        "{BROWSER}={value}; HttpOnly; SameSite=Lax; Path=/ui/oidc; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The sign-in page refusing a request over the sign-in rate of its source, with the
/// `Retry-After` the API would send.
fn throttled(c: &Console, peer: Option<Extension<ConnectInfo<SocketAddr>>>) -> Option<Response> {
    let e = throttle_sign_in(&c.app, peer.map(|p| p.0 .0.ip())).err()?;
    let mut resp = refused(c, e.status(), e.to_string());
    if let Some(secs) = e.retry_after() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    Some(resp)
}

pub async fn start(
    State(c): State<Console>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    if c.app.oidc().is_err() {
        return page::not_found();
    }
    if let Some(resp) = throttled(&c, peer) {
        return resp;
    }
    let browser = random_hex();
    match c
        .app
        .start_console_sign_in(&redirect_uri(&c), key(&browser))
        .await
    {
        Ok(url) => {
            let mut resp = Redirect::to(&url).into_response();
            resp.headers_mut().insert(
                header::SET_COOKIE,
                browser_cookie(&c, &browser, BROWSER_MAX_AGE),
            );
            resp
        }
        Err(e) => {
            tracing::warn!(error = %e, "starting a sign-in failed: {e}");
            let status = ApiError::from(e).status();
            refused(
                &c,
                status,
                "the sign-in cannot be started (the identity provider or the store is unavailable); try again shortly".into(),
            )
        }
    }
}

#[derive(Deserialize)]
pub struct Answer {
    code: Option<String>,
    state: Option<String>,
    /// RFC 9207: the issuer of the answer, to refuse one from another provider.
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

pub async fn callback(
    State(c): State<Console>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Query(answer): Query<Answer>,
) -> Response {
    let Ok(oidc) = c.app.oidc() else {
        return page::not_found();
    };
    if let Some(resp) = throttled(&c, peer) {
        return resp;
    }
    if let Some(e) = answer.error {
        let more = answer
            .error_description
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return refused(
            &c,
            StatusCode::UNAUTHORIZED,
            format!("the identity provider refused: {e}{more}"),
        );
    }
    if answer
        .iss
        .as_deref()
        .is_some_and(|iss| iss.trim_end_matches('/') != oidc.config.issuer.trim_end_matches('/'))
    {
        return refused(
            &c,
            StatusCode::UNAUTHORIZED,
            "the answer comes from another identity provider".into(),
        );
    }
    let (Some(code), Some(state)) = (answer.code, answer.state) else {
        return refused(
            &c,
            StatusCode::BAD_REQUEST,
            "the identity provider's answer has no code or state".into(),
        );
    };
    let browser = cookie_value(&headers, BROWSER)
        .map(|b| key(&b))
        .unwrap_or_default();
    let now = c.app.now();
    let identity = match c
        .app
        .finish_console_sign_in(&redirect_uri(&c), &state, &code, &browser)
        .await
    {
        Ok(identity) => identity,
        Err(e) => {
            if let OpError::SignIn(why) = &e {
                c.app.record_refused_sign_in(why).await;
            }
            let e = ApiError::from(e);
            return refused(&c, e.status(), e.to_string());
        }
    };
    let signed = SignedIn {
        identity,
        refresh_token: None,
    };
    let session = match c.app.open_idp_session(signed, Via::Console).await {
        Ok(s) => s,
        Err(e) => {
            let message = e.to_string();
            return refused(&c, ApiError::from(e).status(), message);
        }
    };
    let id = c.sessions.open(session.token, now);
    // A page, not a redirect: the session cookie is `SameSite=Strict`, and a browser does not
    // send it on a redirect chain another site started; the next navigation is same-site.
    let mut resp = Html(SIGNED_IN).into_response();
    let max_age = (session.expires_at - now).num_seconds().max(0);
    let h = resp.headers_mut();
    h.append(header::SET_COOKIE, cookie(&c, &id, max_age));
    h.append(header::SET_COOKIE, browser_cookie(&c, "", 0));
    resp
}

const SIGNED_IN: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"0; url=/ui/inbox\"><title>Signed in</title></head>\
<body><p>Signed in. <a href=\"/ui/inbox\">Continue to the inbox</a>.</p></body></html>";
