//! `/v1/http/calls`: recent calls through the HTTP gateway and the calls it refused, read from
//! its call log (whose batches the audit trail seals). Everyone sees their own; administrators
//! and `auditors` see all.

use crate::app::App;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ErrorBody};
use crate::ops::Input;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use sluice_store::CallRow;
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

/// Recent calls to one service (those it ended and those the gateway refused), oldest first.
#[utoipa::path(get, path = "/v1/http/calls", params(CallParams), tag = "gateway", responses((status = 200, body = CallList), (status = 400, body = ErrorBody)))]
pub async fn calls(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    crate::json::ApiQuery(p): crate::json::ApiQuery<CallParams>,
) -> Result<Json<CallList>, ApiError> {
    let limit = p.limit.unwrap_or(50).clamp(1, 1000);
    let calls = recent_calls(&app, &caller, &p.service, limit).await?;
    Ok(Json(CallList { calls }))
}

/// The newest `limit` calls to `service` that `caller` may see (their own; all for
/// administrators and auditors), oldest first.
pub(crate) async fn recent_calls(
    app: &App,
    caller: &crate::caller::Caller,
    service: &str,
    limit: i64,
) -> Result<Vec<CallView>, ApiError> {
    let service = sluice_core::scope::normalize(service);
    sluice_core::policy::check_name("service", &service)
        .map_err(|e| ApiError::bad_request(Input::Request, e.to_string()))?;
    let all = crate::routes::audit::require_auditor(app, caller).is_ok();
    let mut calls = app
        .store
        .http_calls(
            &format!("http:{service}"),
            &["ended", "refused"],
            (!all).then_some(caller.name.as_str()),
            limit,
        )
        .await?
        .into_iter()
        .map(|r| view(&service, r))
        .collect::<Result<Vec<_>, _>>()?;
    calls.reverse();
    Ok(calls)
}

fn view(service: &str, r: CallRow) -> Result<CallView, ApiError> {
    let bad = |what: &str| {
        ApiError::Internal(format!(
            "http call record {}/{} holds {what}",
            r.batch_seq, r.pos
        ))
    };
    let d: serde_json::Value =
        serde_json::from_str(&r.details).map_err(|_| bad("unreadable details"))?;
    let text = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
    let num = |k: &str| d[k].as_u64().unwrap_or(0);
    Ok(CallView {
        id: r.call_id.clone(),
        seq: r.batch_seq,
        at: chrono::DateTime::from_timestamp_millis(r.at).ok_or_else(|| bad("a bad time"))?,
        refused: r.event == "refused",
        principal: r.principal.clone(),
        service: service.to_owned(),
        grant_id: text("grant_id"),
        method: text("method"),
        path: text("path"),
        status: u16::try_from(num("status")).map_err(|_| bad("a bad status"))?,
        duration_ms: num("duration_ms"),
        bytes_in: num("bytes_in"),
        bytes_out: num("bytes_out"),
        outcome: text("outcome"),
        audit: text("audit"),
    })
}
