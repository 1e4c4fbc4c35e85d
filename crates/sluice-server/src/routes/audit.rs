//! `/v1/audit`: query, verify and export the audit trail (administrators and the `auditors` group).

use crate::app::App;
use crate::auth::ApiCaller;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
pub use sluice_api::audit::{AuditPage, VerifyView};
use sluice_audit::VerifyReport;
use sluice_store::AuditQuery;
use tokio_stream::StreamExt as _;
use utoipa::IntoParams;

/// Administrators and auditors only (the rule is [`crate::ops::readers::require_auditor`]).
pub(crate) fn require_auditor(app: &App, caller: &Caller) -> Result<(), ApiError> {
    Ok(crate::ops::readers::require_auditor(&app.policy(), caller)?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    pub actor: Option<String>,
    /// An action or a prefix of one: `access.` matches every access event.
    pub action: Option<String>,
    pub resource: Option<String>,
    /// RFC 3339; inclusive.
    pub since: Option<DateTime<Utc>>,
    /// RFC 3339; exclusive.
    pub until: Option<DateTime<Utc>>,
    /// Page: entries after this sequence number (use `next_after` of the previous page).
    pub after: Option<i64>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<i64>,
    /// `true`: the newest `limit` matching entries (a tail), still oldest first; `next_after`
    /// is then absent.
    pub newest: Option<bool>,
}

/// Query the audit trail with filters and pagination.
#[utoipa::path(get, path = "/v1/audit", params(AuditParams), tag = "audit", responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody)))]
pub async fn query(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    crate::json::ApiQuery(p): crate::json::ApiQuery<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    require_auditor(&app, &caller)?;
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let newest = p.newest.unwrap_or(false);
    let q = AuditQuery {
        actor: p.actor,
        action: p.action,
        resource: p.resource,
        since: p.since,
        until: p.until,
        after: p.after,
        limit,
        newest,
    };
    let entries = app.store.audit_entries(&q).await?;
    let next_after = (!newest && entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(AuditPage {
        entries,
        next_after,
    }))
}

/// The answer of `GET /v1/audit/verify` for a report.
fn verify_view(r: VerifyReport, bound: Option<std::time::Duration>) -> VerifyView {
    VerifyView {
        ok: r.ok(),
        entries: r.entries,
        checkpoints_verified: r.checkpoints_verified,
        head_seq: r.last.map(|h| h.seq),
        signed_seq: r.signed.as_ref().map(|s| s.seq),
        signed_at: r
            .signed
            .as_ref()
            .map(|s| sluice_audit::format_timestamp(&s.at)),
        unsigned_tail: r.unsigned_tail,
        unsigned_bound_secs: bound.map(|b| b.as_secs()),
        problems: r
            .problems
            .iter()
            .map(|p| sluice_api::audit::ProblemView {
                seq: p.seq,
                kind: p.kind.into(),
                message: p.message.clone(),
            })
            .collect(),
    }
}

/// Verify the live chain: hashes, links, sequence, signed checkpoints and the head.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", responses((status = 200, body = VerifyView)))]
pub async fn verify(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<VerifyView>, ApiError> {
    require_auditor(&app, &caller)?;
    let r = crate::audit::verify_live(&app).await?;
    Ok(Json(verify_view(r, app.audit_options().unsigned_bound)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// Only entries at or after this time (RFC 3339). Verification of a partial export starts
    /// from its first entry's `prev_hash`.
    pub since: Option<DateTime<Utc>>,
    /// Only entries before this time (RFC 3339), and those after it up to the first signed
    /// checkpoint (at most one committed batch), so that the export verifies.
    pub until: Option<DateTime<Utc>>,
}

/// Export as JSON Lines: every entry, then the checkpoints, ending with a fresh signed one.
#[utoipa::path(get, operation_id = "export_audit", path = "/v1/audit/export", params(ExportParams), tag = "audit", responses((status = 200, content_type = "application/x-ndjson", body = String)))]
pub async fn export(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    crate::json::ApiQuery(p): crate::json::ApiQuery<ExportParams>,
) -> Result<impl IntoResponse, ApiError> {
    require_auditor(&app, &caller)?;
    let body = crate::audit::export(&app, p.since, p.until).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(body),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    pub actor: Option<String>,
    /// An action or a prefix of one: `access.` matches every access event.
    pub action: Option<String>,
    pub resource: Option<String>,
    /// Start after this sequence number (default: the current head, i.e. only new entries).
    /// A reconnecting client's `Last-Event-ID` header takes precedence.
    pub after: Option<i64>,
}

/// Stream audit entries as they commit, as server-sent events: one `entry` event per entry
/// (its JSON as data, its `seq` as the event id), in sequence order. Entries written through
/// this instance arrive at once, those of other instances on the same database within a
/// second.
#[utoipa::path(get, path = "/v1/audit/stream", params(StreamParams), tag = "audit", responses((status = 200, content_type = "text/event-stream", body = String), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn stream(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    headers: HeaderMap,
    crate::json::ApiQuery(p): crate::json::ApiQuery<StreamParams>,
) -> Result<impl IntoResponse, ApiError> {
    require_auditor(&app, &caller)?;
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let after = match resumed.or(p.after) {
        Some(after) => after,
        None => app.store.audit_head().await?.seq,
    };
    let query = AuditQuery {
        actor: p.actor,
        action: p.action,
        resource: p.resource,
        after: Some(after),
        limit: 500,
        ..AuditQuery::default()
    };
    let rx = crate::audit::follow(app, query);
    let events = tokio_stream::wrappers::ReceiverStream::new(rx).map(|entry| {
        let data = serde_json::to_string(&entry).unwrap_or_default();
        Ok::<_, std::convert::Infallible>(
            Event::default()
                .event("entry")
                .id(entry.seq.to_string())
                .data(data),
        )
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
