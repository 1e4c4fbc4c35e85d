//! `/v1/http`: the HTTP gateway's calls, as the audit trail records them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One call through the HTTP gateway: its `http.call.ended` audit entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallView {
    /// The call id (`htc-…`), the entry's subject.
    pub id: String,
    /// The audit entry's sequence number.
    pub seq: i64,
    /// When the result was recorded (the response's end).
    pub at: DateTime<Utc>,
    pub principal: String,
    pub service: String,
    pub grant_id: String,
    pub method: String,
    /// The path as decided and forwarded (canonical, decoded), without the query.
    pub path: String,
    /// The status the caller got (502/504 when the upstream failed).
    pub status: u16,
    pub duration_ms: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// `completed`, `cut: grant expired`, `client went away`, `upstream unavailable: …`.
    pub outcome: String,
    /// `before` (admitted in the trail before it was forwarded) or `after`.
    pub audit: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallList {
    /// Oldest first.
    pub calls: Vec<CallView>,
}
