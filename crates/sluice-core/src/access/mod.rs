//! The access-request state machine.
//!
//! ```text
//! pending ──(enough approvals | auto-approval | break-glass)──▶ active ──▶ expired | revoked | relinquished
//!    └──▶ denied | cancelled | timed-out
//! ```
//!
//! Every function here is pure: it takes the current policy, the request, who is acting and
//! `now`, and returns the new state or an [`AccessError`]. The store persists the result
//! together with its audit entry in one transaction.

mod error;
mod transitions;

pub use crate::approvals::{Authorized, Vote};
pub use error::AccessError;
pub use transitions::*;

use crate::approvals;
use crate::duration::Duration;
use crate::scope::Scope;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    pub const ALL: [RequestStatus; 8] = [
        Self::Pending,
        Self::Active,
        Self::Denied,
        Self::Cancelled,
        Self::TimedOut,
        Self::Expired,
        Self::Revoked,
        Self::Relinquished,
    ];
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
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// How a request became active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    Approval,
    AutoApproved,
    BreakGlass,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approval => "approval",
            Self::AutoApproved => "auto-approved",
            Self::BreakGlass => "break-glass",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Approval, Self::AutoApproved, Self::BreakGlass]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// An access request; once active it is also the grant (`[starts_at, expires_at)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub id: String,
    pub requester: String,
    pub entitlement: String,
    pub scopes: Vec<Scope>,
    pub duration: Duration,
    pub reason: String,
    pub ticket: Option<String>,
    pub status: RequestStatus,
    pub origin: Origin,
    /// The grant this request extends, if it is an extension.
    pub extends: Option<String>,
    pub created_at: DateTime<Utc>,
    /// A pending request times out at this moment.
    pub pending_until: DateTime<Utc>,
    pub starts_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub votes: Vec<Vote>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<String>,
    pub end_reason: Option<String>,
    /// Break-glass grants wait here for someone other than the requester to review them.
    pub needs_review: bool,
    pub reviewed_by: Option<String>,
}

impl AccessRequest {
    /// The status as of `now`, whether or not background work has recorded it yet.
    // INVARIANT: callers that decide anything use this, never the stored `status` alone,
    // so an unrecorded expiry or time-out is still honoured.
    pub fn status_at(&self, now: DateTime<Utc>) -> RequestStatus {
        match self.status {
            RequestStatus::Pending if approvals::timed_out(self.pending_until, now) => {
                RequestStatus::TimedOut
            }
            RequestStatus::Active if self.expires_at.is_some_and(|e| now >= e) => {
                RequestStatus::Expired
            }
            s => s,
        }
    }

    /// Is this grant honoured at `now`? `[starts_at, expires_at)`, half-open.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.status == RequestStatus::Active
            && self.starts_at.is_some_and(|s| s <= now)
            && self.expires_at.is_some_and(|e| now < e)
    }

    pub fn approvals(&self) -> usize {
        self.votes.iter().filter(|v| v.approve).count()
    }
}

/// Who is acting, as the server established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub admin: bool,
}
