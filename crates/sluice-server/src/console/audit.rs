//! The audit trail: filter by actor, action, resource and time; each entry's details (a flag
//! change's before and after as a diff); the chain's verify status and its last signed
//! checkpoint; the export of a time range. For administrators and `auditors`, as
//! `GET /v1/audit` and `GET /v1/audit/export`.

use super::page::{self, Chrome, ConsoleError};
use super::session::Signed;
use super::Console;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::Deserialize;
use sluice_store::AuditQuery;

/// Entries shown at once: the newest that match.
const SHOWN: i64 = 50;

pub struct EntryRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub subject: String,
    pub details: String,
    /// Before and after, for a flag change.
    pub diff: Vec<super::diff::DiffLine>,
}

pub struct Verified {
    pub ok: bool,
    pub entries: u64,
    pub checkpoints: u64,
    pub problems: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
pub struct AuditPage {
    pub chrome: Chrome,
    pub f: AuditFilter,
    pub entries: Vec<EntryRow>,
    pub head: i64,
    pub checkpoint: String,
    pub verified: Option<Verified>,
    pub shown: i64,
}

#[derive(Deserialize, Default)]
pub struct AuditFilter {
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub resource: String,
    /// `YYYY-MM-DDTHH:MM` in UTC (an HTML `datetime-local` field), inclusive.
    #[serde(default)]
    pub since: String,
    /// The same, exclusive.
    #[serde(default)]
    pub until: String,
    #[serde(default)]
    pub verify: Option<String>,
}

fn some(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn time(s: &str, field: &str) -> Result<Option<DateTime<Utc>>, ConsoleError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .map(|t| Some(t.and_utc()))
        .map_err(|_| {
            ConsoleError::Api(crate::error::ApiError::bad_request(
                crate::ops::Input::Time,
                format!("`{field}` must look like 2026-12-03T14:00 (UTC), not `{s}`"),
            ))
        })
}

pub async fn page(
    State(c): State<Console>,
    signed: Signed,
    Query(f): Query<AuditFilter>,
) -> Result<Response, ConsoleError> {
    crate::routes::audit::require_auditor(&c.app, &signed.caller)?;
    let q = AuditQuery {
        actor: some(&f.actor),
        action: some(&f.action),
        resource: some(&f.resource),
        since: time(&f.since, "since")?,
        until: time(&f.until, "until")?,
        after: None,
        limit: SHOWN,
        newest: true,
    };
    let mut entries: Vec<EntryRow> = c
        .app
        .store
        .audit_entries(&q)
        .await?
        .into_iter()
        .map(|e| EntryRow {
            seq: e.seq,
            at: e.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            actor: e.actor,
            action: e.action,
            resource: e.resource.unwrap_or_default(),
            subject: e.subject_id.unwrap_or_default(),
            diff: super::diff::of_details(&e.details),
            details: serde_json::to_string_pretty(&e.details).unwrap_or_default(),
        })
        .collect();
    entries.reverse();
    let head = c.app.store.audit_head().await?.seq;
    let checkpoint = c
        .app
        .store
        .latest_checkpoint()
        .await?
        .map(|cp| {
            format!(
                "entry {} signed at {} by key {}",
                cp.seq,
                cp.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                cp.key_id
            )
        })
        .unwrap_or_else(|| "none yet".into());
    // Verifying reads the whole chain: only when asked for.
    let verified = match f.verify.as_deref() {
        Some(_) => {
            let r = crate::audit::verify_live(&c.app).await?;
            Some(Verified {
                ok: r.ok(),
                entries: r.entries,
                checkpoints: r.checkpoints_verified,
                problems: r.problems.iter().map(ToString::to_string).collect(),
            })
        }
        None => None,
    };
    Ok(page::render(
        StatusCode::OK,
        &AuditPage {
            chrome: signed.chrome("audit"),
            f,
            entries,
            head,
            checkpoint,
            verified,
            shown: SHOWN,
        },
    ))
}

/// `GET /ui/audit/export?since=…&until=…`: the entries of that time range as a download, in
/// the format of `sluice audit export` (the same function writes both), so that
/// `sluice audit verify FILE --public-key …` checks it offline. The other filters do not
/// narrow an export: a verifiable export is an unbroken run of the chain.
pub async fn export(
    State(c): State<Console>,
    signed: Signed,
    Query(f): Query<AuditFilter>,
) -> Result<Response, ConsoleError> {
    crate::routes::audit::require_auditor(&c.app, &signed.caller)?;
    let (since, until) = (time(&f.since, "since")?, time(&f.until, "until")?);
    let body = crate::audit::export(&c.app, since, until).await?;
    let stamp = |t: Option<DateTime<Utc>>| {
        t.map(|t| t.format("%Y%m%dT%H%M").to_string())
            .unwrap_or_default()
    };
    let name = format!("sluice-audit-{}-{}.jsonl", stamp(since), stamp(until))
        .replace("--", "-")
        .replace("-.", ".");
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}
