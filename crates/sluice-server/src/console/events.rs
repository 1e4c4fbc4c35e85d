//! `/ui/events`: tells an open page that access moved, so its script re-fetches a fragment.
//!
//! The signal is the audit trail: every change to a request or grant (asked, approved, denied,
//! granted, expired, revoked, …) commits an `access.*` entry in its own transaction, and every
//! step of a change request a `flag.change-*` entry, so
//! following those entries (`audit::follow`: at once for this instance's writes and, on
//! PostgreSQL, for other instances' as soon as their commit is heard; within a second
//! otherwise) misses none of them. An event carries no details — only
//! `access` — so a page learns nothing it could not read by reloading.

use super::page::ConsoleError;
use super::session::Signed;
use super::Console;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use sluice_store::AuditQuery;
use tokio_stream::StreamExt as _;

pub async fn stream(
    State(c): State<Console>,
    signed: Signed,
) -> Result<impl IntoResponse, ConsoleError> {
    let after = c.app.store.audit_head().await?.seq;
    let follow = |prefix: &str| {
        let query = AuditQuery {
            action: Some(prefix.into()),
            after: Some(after),
            limit: 500,
            ..AuditQuery::default()
        };
        tokio_stream::wrappers::ReceiverStream::new(crate::audit::follow(c.app.clone(), query))
    };
    // Access requests and grants, and change requests (four eyes) for the inbox.
    let moved = follow("access.").merge(follow("flag.change-"));
    let (sessions, app, session) = (c.sessions.clone(), c.app.clone(), signed.session);
    let events = moved
        // A session that ended (signed out, expired) hears nothing more.
        .take_while(move |_| sessions.is_live(&session, app.now()))
        .map(|_| {
            Ok::<_, std::convert::Infallible>(Event::default().event("access").data("changed"))
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
