//! `/v1/environments/{env}/flags/{key}/changes`: one change to one flag, now or at a time.

use crate::app::App;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::ops::flag_changes::FlagChanged;
use crate::ops::Input;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::DateTime;
use serde::Deserialize;
use sluice_api::flags::{ChangeRequestBody, NewRollout, NewTarget, TargetView};

/// Change one flag (or schedule the change with `at`).
#[utoipa::path(post, path = "/v1/environments/{env}/flags/{key}/changes", request_body = ChangeRequestBody, tag = "flags",
    responses((status = 200, body = FlagChanged), (status = 202, body = Object, description = "scheduled"), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn change(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path((env, key)): Path<(String, String)>,
    ApiJson(body): ApiJson<ChangeRequestBody>,
) -> Result<Response, ApiError> {
    if let Some(at) = body.at {
        if body.create_env {
            return Err(ApiError::bad_request(
                Input::Request,
                "`create_env` goes with a change made now, not a scheduled one",
            ));
        }
        let s = app
            .schedule_change(&caller, &env, &key, body.change, body.base_revision, at)
            .await?;
        return Ok((StatusCode::ACCEPTED, Json(s)).into_response());
    }
    let done = app
        .change_flag(
            &caller.name,
            caller.admin,
            None,
            &env,
            &key,
            &body.change,
            body.base_revision,
            body.create_env,
        )
        .await?;
    Ok(Json(done).into_response())
}

/// An expiring target as the API shows it.
pub fn target_view(t: sluice_eval::layers::Target) -> TargetView {
    TargetView {
        id: t.id,
        variant: t.variant,
        keys: t.keys,
        group: t.group,
        expires_at: DateTime::from_timestamp_millis(t.expires_at_ms),
        created_by: t.created_by,
    }
}

/// Pin targeting keys to a variant for a while (expiring targets).
#[utoipa::path(post, path = "/v1/environments/{env}/flags/{key}/targets", request_body = NewTarget, tag = "flags",
    responses((status = 201, body = TargetView), (status = 400, body = ErrorBody, description = "e.g. `target_outlives_grant`: longer than the authorising grant has left"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_target(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path((env, key)): Path<(String, String)>,
    ApiJson(body): ApiJson<NewTarget>,
) -> Result<(StatusCode, Json<TargetView>), ApiError> {
    let d = sluice_core::duration::Duration::parse(&body.duration)
        .map_err(|e| ApiError::bad_request(Input::Duration, e.to_string()))?;
    let t = app
        .add_target(&caller, &env, &key, body.variant, body.keys, body.group, d)
        .await?;
    Ok((StatusCode::CREATED, Json(target_view(t))))
}

/// The flag's expiring targets still in force, soonest to expire first.
#[utoipa::path(get, path = "/v1/environments/{env}/flags/{key}/targets", tag = "flags",
    responses((status = 200, body = [TargetView]), (status = 404, body = ErrorBody)))]
pub async fn list_targets(
    State(app): State<App>,
    _caller: ApiCaller,
    Path((env, key)): Path<(String, String)>,
) -> Result<Json<Vec<TargetView>>, ApiError> {
    let targets = app.list_targets(&env, &key).await?;
    Ok(Json(targets.into_iter().map(target_view).collect()))
}

/// Remove a target before it expires.
#[utoipa::path(delete, path = "/v1/environments/{env}/flags/{key}/targets/{id}", tag = "flags", responses((status = 200, body = TargetView), (status = 404, body = ErrorBody)))]
pub async fn remove_target(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path((env, key, id)): Path<(String, String, String)>,
) -> Result<Json<TargetView>, ApiError> {
    Ok(Json(target_view(
        app.remove_target(&caller, &env, &key, &id).await?,
    )))
}

/// Start a staged rollout (steps of growing share, each held for a while).
#[utoipa::path(put, path = "/v1/environments/{env}/flags/{key}/rollout", request_body = NewRollout, tag = "flags",
    responses((status = 200, body = crate::ops::layers::RolloutStatus), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn start_rollout(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path((env, key)): Path<(String, String)>,
    ApiJson(body): ApiJson<NewRollout>,
) -> Result<Json<crate::ops::layers::RolloutStatus>, ApiError> {
    Ok(Json(
        app.start_rollout(&caller, &env, &key, body.variant, body.steps, body.guards)
            .await?,
    ))
}

/// Where the rollout stands: current step, share, next change.
#[utoipa::path(get, path = "/v1/environments/{env}/flags/{key}/rollout", tag = "flags", responses((status = 200, body = crate::ops::layers::RolloutStatus), (status = 404, body = ErrorBody)))]
pub async fn rollout_status(
    State(app): State<App>,
    _caller: ApiCaller,
    Path((env, key)): Path<(String, String)>,
) -> Result<Json<crate::ops::layers::RolloutStatus>, ApiError> {
    Ok(Json(app.rollout_status(&env, &key).await?))
}

/// `pause`, `resume` or `rollback` a rollout.
#[utoipa::path(post, path = "/v1/environments/{env}/flags/{key}/rollout/{op}", tag = "flags", responses((status = 200, body = crate::ops::layers::RolloutStatus), (status = 409, body = ErrorBody)))]
pub async fn control_rollout(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path((env, key, op)): Path<(String, String, String)>,
) -> Result<Json<crate::ops::layers::RolloutStatus>, ApiError> {
    let op = match op.as_str() {
        "pause" => crate::ops::layers::RolloutOp::Pause,
        "resume" => crate::ops::layers::RolloutOp::Resume,
        "rollback" => crate::ops::layers::RolloutOp::Rollback,
        other => {
            return Err(ApiError::bad_request(
                Input::Op,
                format!("unknown rollout operation `{other}`; use pause, resume or rollback"),
            ))
        }
    };
    Ok(Json(app.control_rollout(&caller, &env, &key, op).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ScheduledQuery {
    pub env: Option<String>,
}

/// Scheduled flag changes.
#[utoipa::path(get, path = "/v1/scheduled", params(ScheduledQuery), tag = "flags", responses((status = 200, body = [crate::ops::schedule::ScheduledView])))]
pub async fn scheduled(
    State(app): State<App>,
    _caller: ApiCaller,
    crate::json::ApiQuery(q): crate::json::ApiQuery<ScheduledQuery>,
) -> Result<Json<Vec<crate::ops::schedule::ScheduledView>>, ApiError> {
    let list = app.store.scheduled_changes(q.env.as_deref()).await?;
    let views = list
        .into_iter()
        .map(crate::ops::schedule::scheduled_view)
        .collect::<Result<_, _>>()?;
    Ok(Json(views))
}

/// Cancel a pending scheduled change (its author or an administrator).
#[utoipa::path(delete, path = "/v1/scheduled/{id}", tag = "flags", responses((status = 200, body = crate::ops::schedule::ScheduledView), (status = 409, body = ErrorBody)))]
pub async fn cancel_scheduled(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<crate::ops::schedule::ScheduledView>, ApiError> {
    Ok(Json(app.cancel_scheduled(&caller, &id).await?))
}
