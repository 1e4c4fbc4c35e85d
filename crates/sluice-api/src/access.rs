//! `/v1/requests`, `/v1/grants`, `/v1/entitlements`: access requests and entitlements.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where an access request is, as of the moment it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RequestStatus {
    Pending,
    Active,
    Denied,
    Cancelled,
    TimedOut,
    Expired,
    Revoked,
    Relinquished,
}

impl RequestStatus {
    /// The wire spelling, e.g. `timed-out`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Denied => "denied",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed-out",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Relinquished => "relinquished",
        }
    }
}

/// How a grant came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    Approval,
    AutoApproved,
    BreakGlass,
}

impl Origin {
    /// The wire spelling, e.g. `break-glass`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approval => "approval",
            Self::AutoApproved => "auto-approved",
            Self::BreakGlass => "break-glass",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScopeView {
    /// Resource pattern, e.g. `flag:production/checkout-*`.
    pub resource: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VoteView {
    pub approver: String,
    pub approve: bool,
    pub comment: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequestView {
    pub id: String,
    pub requester: String,
    pub entitlement: String,
    pub scopes: Vec<ScopeView>,
    /// Granted duration, e.g. `30m`.
    pub duration: String,
    pub duration_secs: u64,
    pub reason: String,
    pub ticket: Option<String>,
    /// Status as of now.
    pub status: RequestStatus,
    pub origin: Origin,
    pub extends: Option<String>,
    pub created_at: DateTime<Utc>,
    pub pending_until: DateTime<Utc>,
    pub starts_at: Option<DateTime<Utc>>,
    /// Computed by the server from the granted duration.
    pub expires_at: Option<DateTime<Utc>>,
    pub votes: Vec<VoteView>,
    pub approvals: usize,
    pub required_approvals: u32,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<String>,
    pub end_reason: Option<String>,
    pub needs_review: bool,
    pub reviewed_by: Option<String>,
    /// What has to happen next, in words.
    pub next_step: Option<String>,
}

/// A new access request. There is deliberately no expiry field: the server computes
/// `expires_at` from `duration`, and an unknown field such as `expires_at` is refused.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    pub entitlement: String,
    /// E.g. `30m`, `2h`. Defaults to the entitlement's `max_duration`.
    pub duration: Option<String>,
    #[serde(default)]
    pub reason: String,
    pub ticket: Option<String>,
    /// Narrower scopes within the entitlement; default all of it.
    pub scopes: Option<Vec<ScopeView>>,
    /// Break-glass: active at once, needs a reason, reviewed afterwards.
    #[serde(default)]
    pub break_glass: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Extension {
    /// How much longer, e.g. `30m`.
    pub duration: Option<String>,
    #[serde(default)]
    pub reason: String,
    pub ticket: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Comment {
    #[serde(default)]
    pub comment: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EntitlementView {
    pub name: String,
    pub description: String,
    pub scopes: Vec<ScopeView>,
    pub requesters: Vec<String>,
    pub max_duration: String,
    pub approvals_required: u32,
    pub approvers: Vec<String>,
    pub auto_approve: Option<String>,
    pub break_glass: bool,
    pub reason_required: bool,
    pub ticket_pattern: Option<String>,
    pub pending_ttl: String,
}
