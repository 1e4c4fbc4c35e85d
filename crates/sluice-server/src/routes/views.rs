//! Wire shapes of Sluice's own API (documented in `/openapi.json`).

use crate::error::ApiError;
use chrono::{DateTime, Utc};
use sluice_api::access as api;
pub use sluice_api::access::{RequestView, ScopeView, VoteView};
use sluice_api::admin as api_admin;
pub use sluice_api::admin::TokenView;
use sluice_core::access::{AccessRequest, Origin, RequestStatus};
use sluice_core::policy::Policy;
use sluice_core::token::TokenKind;
use sluice_store::TokenRow;

/// The wire form of a request's status; a status added to the core fails to compile here.
fn status(s: RequestStatus) -> api::RequestStatus {
    match s {
        RequestStatus::Pending => api::RequestStatus::Pending,
        RequestStatus::Active => api::RequestStatus::Active,
        RequestStatus::Denied => api::RequestStatus::Denied,
        RequestStatus::Cancelled => api::RequestStatus::Cancelled,
        RequestStatus::TimedOut => api::RequestStatus::TimedOut,
        RequestStatus::Expired => api::RequestStatus::Expired,
        RequestStatus::Revoked => api::RequestStatus::Revoked,
        RequestStatus::Relinquished => api::RequestStatus::Relinquished,
    }
}

fn origin(o: Origin) -> api::Origin {
    match o {
        Origin::Approval => api::Origin::Approval,
        Origin::AutoApproved => api::Origin::AutoApproved,
        Origin::BreakGlass => api::Origin::BreakGlass,
    }
}

/// An access request as the API shows it, as of `now`.
pub fn request_view(r: &AccessRequest, policy: &Policy, now: DateTime<Utc>) -> RequestView {
    let r_status = r.status_at(now);
    let ent = policy.entitlement(&r.entitlement);
    let required = ent.map_or(1, |e| e.approval.required);
    let next_step = match r_status {
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
        status: status(r_status),
        origin: origin(r.origin),
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

/// A stored token as the API shows it; a kind the store does not know is an error, not a guess.
pub fn token_view(t: TokenRow) -> Result<TokenView, ApiError> {
    let kind = match TokenKind::parse(&t.kind) {
        Some(TokenKind::Api) => api_admin::TokenKind::Api,
        Some(TokenKind::Client) => api_admin::TokenKind::Client,
        Some(TokenKind::Db) => api_admin::TokenKind::Db,
        Some(TokenKind::Session) => api_admin::TokenKind::Session,
        Some(TokenKind::Edge) => api_admin::TokenKind::Edge,
        None => {
            return Err(ApiError::Internal(format!(
                "token {} has an unknown kind `{}`",
                t.id, t.kind
            )))
        }
    };
    Ok(TokenView {
        id: t.id,
        principal: t.principal,
        kind,
        environment: t.environment,
        name: t.name,
        created_at: t.created_at,
        expires_at: t.expires_at,
        revoked_at: t.revoked_at,
    })
}
