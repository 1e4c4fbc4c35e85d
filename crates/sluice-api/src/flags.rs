//! Flag changes and change requests ("four-eyes" flag changes, `/v1/proposals`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// One change to one flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FlagChange {
    /// Create the flag, or replace its whole definition.
    Put {
        #[schema(value_type = Object)]
        definition: Value,
    },
    /// Turn the flag on or off (the kill switch).
    SetState {
        enabled: bool,
    },
    SetDefault {
        variant: String,
    },
    /// Replace the targeting rule (`null` removes it).
    SetTargeting {
        #[schema(value_type = Object)]
        targeting: Option<Value>,
    },
    SetMetadata {
        #[schema(value_type = Object)]
        metadata: serde_json::Map<String, Value>,
    },
    Delete,
}

// No doc comment: the schema in `/openapi.json` has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeRequestStatus {
    /// Waiting for approvals.
    Pending,
    /// Approved; waiting for its `apply_at`.
    Approved,
    Applied,
    Denied,
    Cancelled,
    /// The flag changed underneath it: its base revision no longer matched.
    Stale,
    TimedOut,
    /// Could not be applied for another reason (e.g. the change is no longer valid, or the
    /// approvals no longer meet the rule when its time came).
    Refused,
}

impl ChangeRequestStatus {
    /// The wire spelling, e.g. `timed-out`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Applied => "applied",
            Self::Denied => "denied",
            Self::Cancelled => "cancelled",
            Self::Stale => "stale",
            Self::TimedOut => "timed-out",
            Self::Refused => "refused",
        }
    }
}

/// One approver's vote on a change request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangeVote {
    pub approver: String,
    pub approve: bool,
    pub comment: String,
    pub at: DateTime<Utc>,
}

/// A change request as shown: its status is the one at the time of asking.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangeRequestView {
    pub id: String,
    pub environment: String,
    pub key: String,
    pub change: FlagChange,
    pub base_revision: Option<i64>,
    pub apply_at: Option<DateTime<Utc>>,
    pub reason: String,
    pub proposer: String,
    /// `pending`, `approved` (waiting for `apply_at`), `applied`, `denied`, `cancelled`,
    /// `stale`, `timed-out` or `refused`.
    pub status: ChangeRequestStatus,
    pub created_at: DateTime<Utc>,
    pub pending_until: DateTime<Utc>,
    pub votes: Vec<ChangeVote>,
    /// Approvals that count under the environment's current rule.
    pub approvals: usize,
    /// How many the current rule requires (`None`: the environment has no rule any more).
    pub required: Option<u32>,
    pub applied_revision: Option<i64>,
    pub result: Option<String>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<String>,
}

/// A proposed flag change. It applies when the environment's approval rule is met.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProposal {
    pub change: FlagChange,
    /// The flag revision this change is based on; absent only when creating the flag. If the
    /// flag has moved by the time the change would apply, the proposal becomes `stale`.
    pub base_revision: Option<i64>,
    /// Apply at this time (RFC 3339) once approved, instead of at the approval.
    pub apply_at: Option<DateTime<Utc>>,
    /// Why, for the approvers.
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteComment {
    #[serde(default)]
    pub comment: String,
}
