//! `/v1/notifications`: the notification outbox (administrators): what is pending, delivered
//! and dead, each notification's attempts, and retrying a dead one.

use crate::app::App;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ErrorBody};
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

pub use sluice_api::notifications::{
    AttemptView, NotificationList, NotificationState, NotificationView, Retried,
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only notifications in this state.
    pub state: Option<NotificationState>,
    /// Only ids after this one (the previous page's `next_after`).
    pub after: Option<String>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<i64>,
}

/// The outbox by id, with its totals (administrators).
#[utoipa::path(get, operation_id = "list_notifications", path = "/v1/notifications", params(ListParams), tag = "notifications", responses((status = 200, body = NotificationList), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    crate::json::ApiQuery(p): crate::json::ApiQuery<ListParams>,
) -> Result<Json<NotificationList>, ApiError> {
    let page = app
        .notifications(&caller, p.state, p.after.as_deref(), p.limit.unwrap_or(100))
        .await?;
    Ok(Json(page))
}

/// One notification with every delivery attempt (administrators).
#[utoipa::path(get, operation_id = "show_notification", path = "/v1/notifications/{id}", tag = "notifications", responses((status = 200, body = NotificationView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<NotificationView>, ApiError> {
    Ok(Json(app.notification(&caller, &id).await?))
}

/// Deliver a dead notification again, now (administrators; audited as
/// `notification.retried`). Its attempts are kept: if this one fails too it is dead again.
#[utoipa::path(post, operation_id = "retry_notification", path = "/v1/notifications/{id}/retry", tag = "notifications", responses((status = 200, body = Retried), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn retry(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Retried>, ApiError> {
    Ok(Json(app.retry_notification(&caller, &id).await?))
}
