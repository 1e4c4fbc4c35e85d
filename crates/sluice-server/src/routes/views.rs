//! Wire shapes of Sluice's own API (documented in `/openapi.json`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_core::access::{AccessRequest, RequestStatus};
use sluice_core::policy::Policy;
use sluice_store::TokenRow;
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScopeView {
    /// Resource pattern, e.g. `flag:production/checkout-*`.
    pub resource: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VoteView {
    pub approver: String,
    pub approve: bool,
    pub comment: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
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
    /// Status as of now: `pending`, `active`, `denied`, `cancelled`, `timed-out`, `expired`,
    /// `revoked` or `relinquished`.
    pub status: String,
    /// `approval`, `auto-approved` or `break-glass`.
    pub origin: String,
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

impl RequestView {
    pub fn new(r: &AccessRequest, policy: &Policy, now: DateTime<Utc>) -> Self {
        let status = r.status_at(now);
        let ent = policy.entitlement(&r.entitlement);
        let required = ent.map_or(1, |e| e.approval.required);
        let next_step = match status {
            RequestStatus::Pending => {
                let missing = (required as usize).saturating_sub(r.approvals());
                let from = ent
                    .map(|e| e.approval.approvers.join(", "))
                    .unwrap_or_default();
                Some(format!(
                    "needs {missing} more approval{} from {from}",
                    if missing == 1 { "" } else { "s" }
                ))
            }
            RequestStatus::Active if r.needs_review => {
                Some("break-glass: awaiting review by someone other than the requester".into())
            }
            _ => None,
        };
        RequestView {
            id: r.id.clone(),
            requester: r.requester.clone(),
            entitlement: r.entitlement.clone(),
            scopes: r
                .scopes
                .iter()
                .map(|s| ScopeView {
                    resource: s.resource.to_string(),
                    actions: s.actions.iter().map(ToString::to_string).collect(),
                })
                .collect(),
            duration: r.duration.to_string(),
            duration_secs: r.duration.as_secs(),
            reason: r.reason.clone(),
            ticket: r.ticket.clone(),
            status: status.as_str().into(),
            origin: r.origin.as_str().into(),
            extends: r.extends.clone(),
            created_at: r.created_at,
            pending_until: r.pending_until,
            starts_at: r.starts_at,
            expires_at: r.expires_at,
            votes: r
                .votes
                .iter()
                .map(|v| VoteView {
                    approver: v.approver.clone(),
                    approve: v.approve,
                    comment: v.comment.clone(),
                    at: v.at,
                })
                .collect(),
            approvals: r.approvals(),
            required_approvals: required,
            ended_at: r.ended_at,
            ended_by: r.ended_by.clone(),
            end_reason: r.end_reason.clone(),
            needs_review: r.needs_review,
            reviewed_by: r.reviewed_by.clone(),
            next_step,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub principal: String,
    /// `api` or `client`.
    pub kind: String,
    pub environment: Option<String>,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<TokenRow> for TokenView {
    fn from(t: TokenRow) -> Self {
        TokenView {
            id: t.id,
            principal: t.principal,
            kind: t.kind,
            environment: t.environment,
            name: t.name,
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        }
    }
}
