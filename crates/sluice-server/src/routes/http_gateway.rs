//! `/v1/http`: the HTTP gateway. `calls`: recent calls through it and the calls it refused,
//! read from its call log (whose batches the audit trail seals); `sessions`: the calls in
//! progress, and kill. Everyone sees their own; administrators and `auditors` see all.
//! `services`: the services it fronts, declared and removed by administrators.

use crate::app::App;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ErrorBody};
use crate::ops::Input;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use sluice_store::CallRow;
use utoipa::IntoParams;

pub use sluice_api::gateway::{Declared, Killed, Removed};
pub use sluice_api::http_gateway::{
    CallList, CallView, LiveCallList, LiveCallView, ServiceConfig, ServiceList, ServiceView,
};

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

/// HTTP gateway services: those of this instance's config file and those declared through
/// the API (administrators and `auditors`; nobody else learns which services exist).
#[utoipa::path(get, operation_id = "list_http_services", path = "/v1/http/services", tag = "gateway", responses((status = 200, body = ServiceList), (status = 403, body = ErrorBody)))]
pub async fn services(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<ServiceList>, ApiError> {
    Ok(Json(ServiceList {
        services: app.http_services(&caller).await?,
    }))
}

/// Declare (or replace) an HTTP gateway service (administrators; audited as
/// `http.service.declared`). Every instance's gateway serves it at once (the others within
/// one sync). The credential is only named: `value_env`, a variable under `SLUICE_HTTP_`
/// exported to the servers, or `value_file`, a file name in the gateway's
/// `http_credentials_dir`; the credential itself never passes through the API.
#[utoipa::path(put, operation_id = "declare_http_service", path = "/v1/http/services/{name}", tag = "gateway",
    request_body(content = ServiceConfig, description = "`name` may be left out: the path gives it"),
    responses((status = 200, body = Declared), (status = 201, body = Declared), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn declare_service(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(name): Path<String>,
    crate::json::ApiJson(mut body): crate::json::ApiJson<serde_json::Value>,
) -> Result<(StatusCode, Json<Declared>), ApiError> {
    let name = sluice_core::scope::normalize(&name);
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::bad_request(
            Input::Service,
            "the body is a service declaration: {\"upstream\": \"http://…\", \"credential\": {…}}",
        ));
    };
    match obj.get("name").and_then(|n| n.as_str()) {
        None => {
            obj.insert("name".into(), serde_json::Value::String(name.clone()));
        }
        Some(n) if sluice_core::scope::normalize(n) == name => {
            obj.insert("name".into(), serde_json::Value::String(name.clone()));
        }
        Some(n) => {
            return Err(ApiError::bad_request(
                Input::Service,
                format!("the body names `{n}` but the path `{name}`"),
            ))
        }
    }
    let spec: ServiceConfig = serde_json::from_value(body).map_err(|e| {
        ApiError::bad_request(Input::Service, format!("not a service declaration: {e}"))
    })?;
    let created = app.declare_http_service(&caller, spec).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(Declared {
            declared: name,
            created,
        }),
    ))
}

/// Remove a service declared through the API (administrators; audited as
/// `http.service.removed`). Calls in progress run on until their grants end.
#[utoipa::path(delete, operation_id = "remove_http_service", path = "/v1/http/services/{name}", tag = "gateway",
    responses((status = 200, body = Removed), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_service(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(name): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    let name = sluice_core::scope::normalize(&name);
    app.remove_http_service(&caller, &name).await?;
    Ok(Json(Removed { removed: name }))
}

/// Calls in progress through this instance's HTTP gateway — responses still being relayed,
/// WebSockets still open — with their grant and the time it has left. Everyone sees their
/// own; administrators and `auditors` see all.
#[utoipa::path(get, operation_id = "list_http_sessions", path = "/v1/http/sessions", tag = "gateway", responses((status = 200, body = LiveCallList)))]
pub async fn sessions(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<LiveCallList>, ApiError> {
    Ok(Json(LiveCallList {
        calls: app.live_http_calls(&caller),
    }))
}

/// End a call in progress now (administrators; audited as `http.call.killed`): its response
/// or WebSocket is cut at once.
#[utoipa::path(post, operation_id = "kill_http_session", path = "/v1/http/sessions/{id}/kill", tag = "gateway", responses((status = 200, body = Killed), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn kill(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Killed>, ApiError> {
    app.kill_http_call(&caller, &id).await?;
    Ok(Json(Killed { killed: id }))
}
