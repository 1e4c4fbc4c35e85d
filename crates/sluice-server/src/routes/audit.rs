//! `/v1/audit`: query, verify and export the audit trail (administrators and the `auditors` group).

use crate::app::App;
use crate::auth::{ApiCaller, Caller};
use crate::error::{ApiError, ErrorBody};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_audit::AuditEntry;
use sluice_store::AuditQuery;
use utoipa::{IntoParams, ToSchema};

pub(crate) fn require_auditor(app: &App, caller: &Caller) -> Result<(), ApiError> {
    if caller.admin
        || app
            .policy()
            .groups_of(&caller.name)
            .iter()
            .any(|g| g == "auditors")
    {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "reading the audit trail needs an administrator or a member of group `auditors`".into(),
        ))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
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
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<AuditEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// Query the audit trail with filters and pagination.
#[utoipa::path(get, path = "/v1/audit", params(AuditParams), tag = "audit", responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody)))]
pub async fn query(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Query(p): Query<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    require_auditor(&app, &caller)?;
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let q = AuditQuery {
        actor: p.actor,
        action: p.action,
        resource: p.resource,
        since: p.since,
        until: p.until,
        after: p.after,
        limit,
    };
    let entries = app.store.audit_entries(&q).await?;
    let next_after = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(AuditPage {
        entries,
        next_after,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyView {
    pub ok: bool,
    pub entries: u64,
    pub checkpoints_verified: u64,
    pub head_seq: Option<i64>,
    /// One line per problem, each naming the first bad sequence number.
    #[schema(value_type = Vec<Object>)]
    pub problems: Vec<serde_json::Value>,
}

/// Verify the live chain: hashes, links, sequence, signed checkpoints and the head.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", responses((status = 200, body = VerifyView)))]
pub async fn verify(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<VerifyView>, ApiError> {
    require_auditor(&app, &caller)?;
    let r = crate::audit::verify_live(&app).await?;
    Ok(Json(r))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// Only entries at or after this time (RFC 3339). Verification of a partial export starts
    /// from its first entry's `prev_hash`.
    pub since: Option<DateTime<Utc>>,
}

/// Export as JSON Lines: every entry, then the checkpoints, ending with a fresh signed one.
#[utoipa::path(get, path = "/v1/audit/export", params(ExportParams), tag = "audit", responses((status = 200, content_type = "application/x-ndjson", body = String)))]
pub async fn export(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Query(p): Query<ExportParams>,
) -> Result<impl IntoResponse, ApiError> {
    require_auditor(&app, &caller)?;
    let body = crate::audit::export(&app, p.since).await?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body))
}
