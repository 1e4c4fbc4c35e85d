//! `/v1/notifications`: the notification outbox (administrators).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotificationState {
    /// Waiting for its next attempt (`next_at`).
    Pending,
    /// A sink answered 2xx.
    Delivered,
    /// Given up on after the attempt limit; `POST /v1/notifications/{id}/retry` tries again.
    Dead,
}

/// One delivery attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttemptView {
    pub n: i64,
    pub at: DateTime<Utc>,
    /// The instance that made it.
    pub instance: String,
    /// What the sink answered, if it answered.
    pub http_status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A notification for one sink.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NotificationView {
    /// The `webhook-id` every attempt carries.
    pub id: String,
    pub sink: String,
    /// The event type, e.g. `request.opened`.
    pub event: String,
    pub state: NotificationState,
    pub attempts: i64,
    /// The audit entry it reports (none for reminders).
    pub audit_seq: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub next_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Every attempt, oldest first (in `GET /v1/notifications/{id}` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<AttemptView>,
}

/// A page of notifications, by id, with the outbox's totals.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NotificationList {
    pub notifications: Vec<NotificationView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<String>,
    pub pending: i64,
    pub delivered: i64,
    pub dead: i64,
}

/// The answer to a retry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Retried {
    pub id: String,
    /// The state it was in; a delivered notification is left as it is.
    pub was: NotificationState,
    /// Whether it is due again now.
    pub requeued: bool,
}
