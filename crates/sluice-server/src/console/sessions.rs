//! Gateway sessions: live PostgreSQL gateway sessions with the time they have left, one
//! session's statements, and the recent calls through the HTTP gateway to a service. The same
//! reads as `GET /v1/db/sessions`, `GET /v1/db/sessions/{id}` and `GET /v1/http/calls`, with
//! the same rule: everyone sees their own; administrators and auditors see all.

use super::page::{self, Chrome, ConsoleError};
use super::session::Signed;
use super::Console;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use sluice_api::gateway::SessionView;
use sluice_api::http_gateway::CallView;
use sluice_core::duration::relative;

/// Ended sessions listed under the live ones.
const ENDED: i64 = 20;
/// Statements shown on a session's page (the API gives them all).
const STATEMENTS: usize = 500;
/// Calls shown for a service.
const CALLS: i64 = 50;

pub struct SessionRow {
    pub id: String,
    pub principal: String,
    pub database: String,
    pub role: String,
    pub action: String,
    pub grant_id: String,
    pub client_addr: String,
    pub started_at: String,
    pub started: String,
    pub expires_at: String,
    pub expires_in: String,
    pub live: bool,
    pub ended: String,
    pub statements: i64,
    pub bytes: String,
}

pub struct StatementRow {
    pub seq: i64,
    pub at: String,
    pub kind: &'static str,
    pub text: String,
    pub params: String,
}

#[derive(Template)]
#[template(path = "console/sessions.html")]
pub struct SessionsPage {
    pub chrome: Chrome,
    pub live: Vec<SessionRow>,
    pub ended: Vec<SessionRow>,
    pub services: Vec<String>,
    pub service: String,
    pub calls: Vec<CallView>,
}

#[derive(Template)]
#[template(path = "console/session.html")]
pub struct SessionPage {
    pub chrome: Chrome,
    pub s: SessionRow,
    pub statements: Vec<StatementRow>,
    pub total: usize,
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn row(v: SessionView, now: DateTime<Utc>) -> SessionRow {
    SessionRow {
        started_at: iso(v.started_at),
        started: relative(now, v.started_at),
        expires_at: iso(v.expires_at),
        expires_in: relative(now, v.expires_at),
        live: v.live && v.ended_at.is_none(),
        ended: match (v.ended_at, v.end_reason) {
            (Some(at), Some(why)) => format!("ended {} ({why})", relative(now, at)),
            (Some(at), None) => format!("ended {}", relative(now, at)),
            _ => String::new(),
        },
        statements: v.statements,
        bytes: format!("{} B in, {} B out", v.bytes_in, v.bytes_out),
        id: v.id,
        principal: v.principal,
        database: v.database,
        role: v.role,
        action: v.action,
        grant_id: v.grant_id,
        client_addr: v.client_addr,
    }
}

/// HTTP services named in the policy's entitlements (`http:NAME`, not a pattern).
fn services(c: &Console) -> Vec<String> {
    let policy = c.app.policy();
    let mut out: Vec<String> = policy
        .doc
        .entitlements
        .iter()
        .flat_map(|e| e.scopes.iter())
        .filter_map(|s| {
            let r = s.resource.to_string();
            let name = r.strip_prefix("http:")?.to_owned();
            (!name.contains('*')).then_some(name)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[derive(Deserialize)]
pub struct SessionsQuery {
    #[serde(default)]
    service: String,
}

pub async fn page(
    State(c): State<Console>,
    signed: Signed,
    Query(q): Query<SessionsQuery>,
) -> Result<Response, ConsoleError> {
    use crate::routes::gateway::sessions;
    let now = c.app.now();
    let who = &signed.caller;
    let live = sessions(&c.app, who, true, 1000).await?;
    let ended = sessions(&c.app, who, false, ENDED + live.len() as i64)
        .await?
        .into_iter()
        .filter(|s| s.ended_at.is_some())
        .take(ENDED as usize)
        .map(|s| row(s, now))
        .collect();
    let services = services(&c);
    let service = match q.service.trim() {
        "" => services.first().cloned().unwrap_or_default(),
        s => s.to_owned(),
    };
    let calls = if service.is_empty() {
        Vec::new()
    } else {
        crate::routes::http_gateway::recent_calls(&c.app, who, &service, CALLS).await?
    };
    Ok(page::render(
        StatusCode::OK,
        &SessionsPage {
            chrome: signed.chrome("sessions"),
            live: live.into_iter().map(|s| row(s, now)).collect(),
            ended,
            services,
            service,
            calls,
        },
    ))
}

pub async fn show(
    State(c): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let d = crate::routes::gateway::detail(&c.app, &signed.caller, &id).await?;
    let total = d.statements.len();
    let statements = d
        .statements
        .into_iter()
        .take(STATEMENTS)
        .map(|st| StatementRow {
            seq: st.seq,
            at: st.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            kind: st.kind.as_str(),
            text: st.text,
            params: st
                .params
                .map(|p| serde_json::to_string(&p).unwrap_or_default())
                .unwrap_or_default(),
        })
        .collect();
    Ok(page::render(
        StatusCode::OK,
        &SessionPage {
            chrome: signed.chrome("sessions"),
            s: row(d.session, c.app.now()),
            statements,
            total,
        },
    ))
}
