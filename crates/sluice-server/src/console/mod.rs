//! The web console at `/ui/`: server-rendered pages over the same operations as the API.
//!
//! A thin layer, like `routes/`: each handler reads the signed-in person's session, calls the
//! operation the API route calls (`App::open_request`, `App::vote`, `App::end_request`, …) and
//! renders the answer with a template that `askama` checks at compile time. No rule lives here:
//! what the inbox offers is what `access::authorize_vote` would allow, and a forced form meets
//! the operation's own refusal. The JavaScript (one file) only counts down and re-fetches a
//! fragment when `/ui/events` says something changed; every page works without it.

mod access;
mod acts;
mod assets;
mod audit;
mod chart;
mod diff;
mod events;
mod flag_layers;
mod flags;
mod inbox;
mod oidc;
mod page;
mod search;
mod session;
mod sessions;

use crate::app::App;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
pub use session::Sessions;

/// The console's routes, to be nested at `/ui`. Not API: they are absent from `/openapi.json`.
pub fn router(app: &App) -> Router<App> {
    let state = Console {
        app: app.clone(),
        sessions: Sessions::default(),
    };
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/inbox") }))
        .route(
            "/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/sign-out", post(session::sign_out))
        .route("/oidc/start", get(oidc::start))
        .route("/oidc/callback", get(oidc::callback))
        .route("/inbox", get(inbox::page))
        .route("/fragments/inbox", get(inbox::fragment))
        // approve, deny, review, cancel, relinquish (`extend` has a form of its own).
        .route("/requests/{id}/{act}", post(acts::request))
        .route("/requests/{id}/extend", post(access::extend))
        .route("/changes/{id}/{verdict}", post(acts::change))
        .route("/access", get(access::page).post(access::request))
        .route("/fragments/access", get(access::fragment))
        .route("/flags", get(flags::page))
        .route("/flags/{env}/{key}/toggle", post(flags::toggle))
        .route(
            "/flags/{env}/{key}/rollout/{op}",
            post(flag_layers::control),
        )
        .route("/search", get(search::page))
        .route("/sessions", get(sessions::page))
        .route("/sessions/{id}", get(sessions::show))
        .route("/audit", get(audit::page))
        .route("/audit/export", get(audit::export))
        .route("/events", get(events::stream))
        .route("/assets/{file}", get(assets::serve))
        .fallback(|| async { page::not_found() })
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// What the console's handlers share: the application and the sign-in sessions.
#[derive(Clone)]
pub struct Console {
    pub app: App,
    pub sessions: Sessions,
}

/// The console's content security policy: nothing inline, nothing from elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Every console answer: a strict CSP, no sniffing, no framing, no referrer to other sites,
/// and (but for the assets) no caching of pages that show who may do what.
async fn security_headers(req: Request, next: Next) -> Response {
    // Nested at `/ui`, this router sees paths without the prefix.
    let path = req.uri().path();
    let asset = path.starts_with("/assets/") || path.starts_with("/ui/assets/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        // Not `no-referrer`: with it, browsers send `Origin: null` on forms, which the
        // CSRF check must refuse.
        HeaderValue::from_static("same-origin"),
    );
    if !asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp.into_response()
}
