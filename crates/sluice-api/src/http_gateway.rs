//! `/v1/http`: the HTTP gateway's calls, as its call log records them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One call through the HTTP gateway, or one it refused: its `ended` or `refused` record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallView {
    /// The call id (`htc-…`).
    pub id: String,
    /// The sequence number of the `http.calls.recorded` audit entry sealing its record.
    pub seq: i64,
    /// When the result was recorded (the response's end, or the refusal).
    pub at: DateTime<Utc>,
    /// Refused by the gateway itself (no grant, an ambiguous path, a body over the limit…):
    /// never forwarded; `outcome` says why.
    #[serde(default)]
    pub refused: bool,
    pub principal: String,
    pub service: String,
    /// Empty for a refused call.
    pub grant_id: String,
    pub method: String,
    /// The path as decided and forwarded (canonical, decoded), without the query.
    pub path: String,
    /// The status the caller got (502/504 when the upstream failed).
    pub status: u16,
    pub duration_ms: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// `completed`, `cut: grant expired`, `client went away`, `upstream unavailable: …`,
    /// `refused: …`.
    pub outcome: String,
    /// `before` (admitted in the trail before it was forwarded) or `after`; empty if refused.
    pub audit: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallList {
    /// Oldest first.
    pub calls: Vec<CallView>,
}
