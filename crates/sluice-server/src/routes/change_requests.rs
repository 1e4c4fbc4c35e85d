//! `/v1/environments/{env}/flags/{key}/proposals` and `/v1/proposals`: change requests, the
//! four-eyes way to change a flag without holding a grant.

use crate::app::App;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, ApiJsonOrDefault};
use crate::ops::change_requests::ChangeRequestView;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

pub use sluice_api::flags::{NewProposal, VoteComment};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProposalQuery {
    pub env: Option<String>,
    /// `pending`, `approved`, `applied`, `denied`, `cancelled`, `stale`, `timed-out`, `refused`.
    pub status: Option<String>,
}

/// Propose a change to a flag (a change request).
#[utoipa::path(post, path = "/v1/environments/{env}/flags/{key}/proposals", request_body = NewProposal, tag = "flags",
    responses((status = 201, body = ChangeRequestView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn propose(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path((env, key)): Path<(String, String)>,
    ApiJson(body): ApiJson<NewProposal>,
) -> Result<(StatusCode, Json<ChangeRequestView>), ApiError> {
    let v = app
        .propose_change(
            &caller,
            &env,
            &key,
            body.change,
            body.base_revision,
            body.apply_at,
            &body.reason,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// Change requests, newest first: your own and those of environments whose changes you approve
/// (every one for administrators and auditors).
#[utoipa::path(get, operation_id = "list_proposals", path = "/v1/proposals", params(ProposalQuery), tag = "flags", responses((status = 200, body = [ChangeRequestView]), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    crate::json::ApiQuery(q): crate::json::ApiQuery<ProposalQuery>,
) -> Result<Json<Vec<ChangeRequestView>>, ApiError> {
    Ok(Json(
        app.change_requests(&caller, q.env.as_deref(), q.status.as_deref())
            .await?,
    ))
}

/// One change request you may see (as in the list; any other answers 404).
#[utoipa::path(get, operation_id = "show_proposal", path = "/v1/proposals/{id}", tag = "flags", responses((status = 200, body = ChangeRequestView), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<ChangeRequestView>, ApiError> {
    Ok(Json(app.change_request(&caller, &id).await?))
}

/// Approve a change request (not your own; you must be an approver of the environment now).
/// The approval that meets the rule applies the change, unless it waits for `apply_at`.
#[utoipa::path(post, operation_id = "approve_proposal", path = "/v1/proposals/{id}/approve", request_body = VoteComment, tag = "flags",
    responses((status = 200, body = ChangeRequestView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<VoteComment>,
) -> Result<Json<ChangeRequestView>, ApiError> {
    Ok(Json(
        app.vote_change(&caller, &id, true, &body.comment).await?,
    ))
}

/// Deny a change request; one deny ends it.
#[utoipa::path(post, operation_id = "deny_proposal", path = "/v1/proposals/{id}/deny", request_body = VoteComment, tag = "flags",
    responses((status = 200, body = ChangeRequestView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn deny(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<VoteComment>,
) -> Result<Json<ChangeRequestView>, ApiError> {
    Ok(Json(
        app.vote_change(&caller, &id, false, &body.comment).await?,
    ))
}

/// Withdraw your own change request before it applies.
#[utoipa::path(post, operation_id = "cancel_proposal", path = "/v1/proposals/{id}/cancel", tag = "flags",
    responses((status = 200, body = ChangeRequestView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<ChangeRequestView>, ApiError> {
    Ok(Json(app.cancel_change(&caller, &id).await?))
}
