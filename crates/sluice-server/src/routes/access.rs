//! `/v1/requests`, `/v1/grants`, `/v1/entitlements`: the access-request lifecycle.

use super::views::{request_view, RequestView, ScopeView};
use crate::app::App;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, ApiJsonOrDefault};
use crate::ops::access::Ending;
use crate::ops::Input;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
pub use sluice_api::access::{Comment, EntitlementView, Extension, NewRequest, Revocation};
use sluice_core::access::{RequestInput, RequestStatus};
use sluice_core::duration::Duration;
use sluice_core::scope::{Pattern, Scope};
use sluice_store::RequestFilter;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this status (`pending`, `active`, …).
    pub status: Option<String>,
    /// Only requests by this principal; `me` for the caller.
    pub requester: Option<String>,
    /// Only break-glass grants awaiting review.
    pub needs_review: Option<bool>,
    pub limit: Option<i64>,
}

fn parse_duration(raw: Option<String>) -> Result<Option<Duration>, ApiError> {
    raw.map(|d| {
        Duration::parse(&d).map_err(|e| ApiError::bad_request(Input::Duration, e.to_string()))
    })
    .transpose()
}

fn parse_scopes(raw: Option<Vec<ScopeView>>) -> Result<Option<Vec<Scope>>, ApiError> {
    let bad =
        |e: sluice_core::scope::PatternError| ApiError::bad_request(Input::Scope, e.to_string());
    raw.map(|list| {
        list.into_iter()
            .map(|s| {
                Ok(Scope {
                    resource: Pattern::parse(&s.resource).map_err(bad)?,
                    actions: s
                        .actions
                        .iter()
                        .map(|a| Pattern::parse(a))
                        .collect::<Result<_, _>>()
                        .map_err(bad)?,
                    when: None,
                })
            })
            .collect()
    })
    .transpose()
}

fn view(app: &App, r: &sluice_core::access::AccessRequest) -> Json<RequestView> {
    Json(request_view(r, &app.policy(), app.now()))
}

/// Request access to an entitlement.
#[utoipa::path(post, path = "/v1/requests", request_body = NewRequest, tag = "access",
    responses((status = 201, body = RequestView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "No such entitlement (`unknown_entitlement`)", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    ApiJson(body): ApiJson<NewRequest>,
) -> Result<(StatusCode, Json<RequestView>), ApiError> {
    let input = RequestInput {
        entitlement: body.entitlement,
        scopes: parse_scopes(body.scopes)?,
        duration: parse_duration(body.duration)?,
        reason: body.reason,
        ticket: body.ticket,
        break_glass: body.break_glass,
    };
    let req = app.open_request(&caller, input, None).await?;
    Ok((StatusCode::CREATED, view(&app, &req)))
}

/// List requests, newest first: your own and those you may approve (every request for
/// administrators and auditors).
#[utoipa::path(get, operation_id = "list_requests", path = "/v1/requests", params(ListQuery), tag = "access", responses((status = 200, body = [RequestView])))]
pub async fn list(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    crate::json::ApiQuery(q): crate::json::ApiQuery<ListQuery>,
) -> Result<Json<Vec<RequestView>>, ApiError> {
    let status = q
        .status
        .map(|s| {
            RequestStatus::parse(&s).ok_or_else(|| {
                ApiError::bad_request(Input::Status, format!("unknown status `{s}`"))
            })
        })
        .transpose()?;
    let requester = q
        .requester
        .map(|r| if r == "me" { caller.name.clone() } else { r });
    let filter = RequestFilter {
        requester,
        status,
        needs_review: q.needs_review,
        limit: q.limit,
        visible_to: None,
    };
    let list = app.visible_requests(&caller, filter).await?;
    let policy = app.policy();
    let now = app.now();
    Ok(Json(
        list.iter().map(|r| request_view(r, &policy, now)).collect(),
    ))
}

/// One request: your own, one you may approve, or any for administrators and auditors
/// (any other answers 404, as if it did not exist).
#[utoipa::path(get, operation_id = "show_request", path = "/v1/requests/{id}", tag = "access", responses((status = 200, body = RequestView), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<RequestView>, ApiError> {
    let req = app.visible_request(&caller, &id).await?;
    Ok(view(&app, &req))
}

/// Approve a pending request (not your own; you must be an approver now).
#[utoipa::path(post, operation_id = "approve_request", path = "/v1/requests/{id}/approve", request_body = Comment, tag = "access",
    responses((status = 200, body = RequestView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<Comment>,
) -> Result<Json<RequestView>, ApiError> {
    let comment = body.comment;
    let (req, _) = app.vote(&caller, &id, true, comment).await?;
    Ok(view(&app, &req))
}

/// Deny a pending request. One deny ends it.
#[utoipa::path(post, operation_id = "deny_request", path = "/v1/requests/{id}/deny", request_body = Comment, tag = "access",
    responses((status = 200, body = RequestView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn deny(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<Comment>,
) -> Result<Json<RequestView>, ApiError> {
    let comment = body.comment;
    let (req, _) = app.vote(&caller, &id, false, comment).await?;
    Ok(view(&app, &req))
}

async fn end(
    app: App,
    caller: std::sync::Arc<crate::caller::Caller>,
    id: String,
    ending: Ending,
) -> Result<Json<RequestView>, ApiError> {
    let req = app.end_request(&caller, &id, ending).await?;
    Ok(view(&app, &req))
}

/// Withdraw your pending request.
#[utoipa::path(post, operation_id = "cancel_request", path = "/v1/requests/{id}/cancel", tag = "access", responses((status = 200, body = RequestView), (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<RequestView>, ApiError> {
    end(app, caller, id, Ending::Cancel).await
}

/// Revoke an active grant (approvers and administrators), with a reason.
#[utoipa::path(post, path = "/v1/requests/{id}/revoke", request_body = Revocation, tag = "access", responses((status = 200, body = RequestView), (status = 403, body = ErrorBody)))]
pub async fn revoke(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<Revocation>,
) -> Result<Json<RequestView>, ApiError> {
    let reason = body.reason;
    end(app, caller, id, Ending::Revoke { reason }).await
}

/// Give your active grant back early.
#[utoipa::path(post, path = "/v1/requests/{id}/relinquish", tag = "access", responses((status = 200, body = RequestView), (status = 403, body = ErrorBody)))]
pub async fn relinquish(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<RequestView>, ApiError> {
    end(app, caller, id, Ending::Relinquish).await
}

/// Mark a break-glass grant as reviewed (not by its requester).
#[utoipa::path(post, path = "/v1/requests/{id}/review", tag = "access", responses((status = 200, body = RequestView), (status = 403, body = ErrorBody)))]
pub async fn review(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<RequestView>, ApiError> {
    end(app, caller, id, Ending::Review).await
}

/// Ask for more time on your active grant: a new request linked to it, approved under the same rules.
#[utoipa::path(post, path = "/v1/requests/{id}/extend", request_body = Extension, tag = "access",
    responses((status = 201, body = RequestView), (status = 422, body = ErrorBody)))]
pub async fn extend(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Extension>,
) -> Result<(StatusCode, Json<RequestView>), ApiError> {
    let duration = parse_duration(body.duration)?;
    let req = app
        .extend_request(&caller, &id, duration, body.reason, body.ticket)
        .await?;
    Ok((StatusCode::CREATED, view(&app, &req)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GrantQuery {
    /// Only this principal's grants; `me` for the caller.
    pub principal: Option<String>,
}

/// Grants live right now: your own and those you may approve (every grant for administrators
/// and auditors).
#[utoipa::path(get, path = "/v1/grants", params(GrantQuery), tag = "access", responses((status = 200, body = [RequestView])))]
pub async fn grants(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    crate::json::ApiQuery(q): crate::json::ApiQuery<GrantQuery>,
) -> Result<Json<Vec<RequestView>>, ApiError> {
    let principal = q
        .principal
        .map(|p| if p == "me" { caller.name.clone() } else { p });
    let list = app.visible_grants(&caller, principal.as_deref()).await?;
    let now = app.now();
    let policy = app.policy();
    Ok(Json(
        list.iter().map(|r| request_view(r, &policy, now)).collect(),
    ))
}

/// Entitlements in the current policy that you may request or approve (every one for
/// administrators and auditors).
#[utoipa::path(get, path = "/v1/entitlements", tag = "access", responses((status = 200, body = [EntitlementView])))]
pub async fn entitlements(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
) -> Json<Vec<EntitlementView>> {
    Json(
        app.visible_entitlements(&caller)
            .iter()
            .map(|e| EntitlementView {
                name: e.name.clone(),
                description: e.description.clone(),
                scopes: e
                    .scopes
                    .iter()
                    .map(|s| ScopeView {
                        resource: s.resource.to_string(),
                        actions: s.actions.iter().map(ToString::to_string).collect(),
                    })
                    .collect(),
                requesters: e.requesters.clone(),
                max_duration: e.max_duration.to_string(),
                approvals_required: e.approval.required,
                approvers: e.approval.approvers.clone(),
                auto_approve: e
                    .auto_approve
                    .as_ref()
                    .map(|a| format!("{} for up to {}", a.requester_in.join(", "), a.max_duration)),
                break_glass: e.break_glass,
                reason_required: e.reason == sluice_core::policy::ReasonRule::Required,
                ticket_pattern: e.ticket_pattern.clone(),
                pending_ttl: e.pending_ttl.to_string(),
            })
            .collect(),
    )
}
