//! `/v1/http/calls`: recent calls through the HTTP gateway, read from the audit trail (their
//! `http.call.ended` entries). Everyone sees their own; administrators and `auditors` see all.

use crate::app::App;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ErrorBody};
use crate::ops::Input;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use sluice_audit::AuditEntry;
use utoipa::IntoParams;

pub use sluice_api::http_gateway::{CallList, CallView};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CallParams {
    /// The service (`payments-admin` for `http:payments-admin`).
    pub service: String,
    /// At most this many, the newest (1–1000, default 50).
    pub limit: Option<i64>,
}

/// Recent calls to one service, oldest first.
#[utoipa::path(get, path = "/v1/http/calls", params(CallParams), tag = "gateway", responses((status = 200, body = CallList), (status = 400, body = ErrorBody)))]
pub async fn calls(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    crate::json::ApiQuery(p): crate::json::ApiQuery<CallParams>,
) -> Result<Json<CallList>, ApiError> {
    let service = sluice_core::scope::normalize(&p.service);
    sluice_core::policy::check_name("service", &service)
        .map_err(|e| ApiError::bad_request(Input::Request, e.to_string()))?;
    let all = crate::routes::audit::require_auditor(&app, &caller).is_ok();
    let q = sluice_store::AuditQuery {
        actor: (!all).then(|| caller.name.clone()),
        action: Some("http.call.ended".into()),
        resource: Some(format!("http:{service}")),
        since: None,
        until: None,
        after: None,
        limit: p.limit.unwrap_or(50).clamp(1, 1000),
        newest: true,
    };
    let calls = app
        .store
        .audit_entries(&q)
        .await?
        .into_iter()
        .map(|e| view(&service, e))
        .collect::<Result<_, _>>()?;
    Ok(Json(CallList { calls }))
}

fn view(service: &str, e: AuditEntry) -> Result<CallView, ApiError> {
    let d = &e.details;
    let text = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
    let num = |k: &str| d[k].as_u64().unwrap_or(0);
    Ok(CallView {
        id: e.subject_id.clone().unwrap_or_default(),
        seq: e.seq,
        at: e.at,
        principal: e.actor,
        service: service.to_owned(),
        grant_id: text("grant_id"),
        method: text("method"),
        path: text("path"),
        status: u16::try_from(num("status"))
            .map_err(|_| ApiError::Internal(format!("audit entry {} holds a bad status", e.seq)))?,
        duration_ms: num("duration_ms"),
        bytes_in: num("bytes_in"),
        bytes_out: num("bytes_out"),
        outcome: text("outcome"),
        audit: text("audit"),
    })
}
