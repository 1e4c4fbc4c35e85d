use super::{AccessError, AccessRequest, Actor, Origin, RequestStatus};
use crate::approvals::{self, list, Authorized, Ballot, Rule, Subject};
use crate::duration::Duration;
use crate::policy::{Entitlement, Policy, ReasonRule};
use crate::scope::Scope;
use chrono::{DateTime, Utc};

/// What a requester asks for. Expiry is never part of it: the server computes it.
#[derive(Debug, Clone, Default)]
pub struct RequestInput {
    pub entitlement: String,
    /// A narrower scope within the entitlement; `None` asks for all of it.
    pub scopes: Option<Vec<Scope>>,
    pub duration: Option<Duration>,
    pub reason: String,
    pub ticket: Option<String>,
    pub break_glass: bool,
}

const MAX_REASON: usize = 2000;

/// Opens a request. It comes back already active when policy auto-approves it or when it is
/// break-glass; otherwise pending.
pub fn open(
    policy: &Policy,
    requester: &Actor,
    input: RequestInput,
    extends: Option<&AccessRequest>,
    id: String,
    now: DateTime<Utc>,
) -> Result<AccessRequest, AccessError> {
    let ent = policy
        .entitlement(&input.entitlement)
        .ok_or_else(|| AccessError::UnknownEntitlement(input.entitlement.clone()))?;
    if !policy.is_in(&requester.name, &ent.requesters) {
        return Err(AccessError::NotEligible {
            entitlement: ent.name.clone(),
            requesters: list(&ent.requesters),
        });
    }
    let duration = input.duration.unwrap_or(ent.max_duration);
    check_duration(ent, duration)?;
    let reason = input.reason.trim().to_owned();
    if reason.len() > MAX_REASON {
        return Err(AccessError::Invalid(format!(
            "reason is longer than {MAX_REASON} bytes"
        )));
    }
    if reason.is_empty() && (ent.reason == ReasonRule::Required || input.break_glass) {
        return Err(AccessError::ReasonRequired(ent.name.clone()));
    }
    let ticket = input
        .ticket
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    if let Some(pattern) = &ent.ticket_pattern {
        let ok = match (&ticket, regex::Regex::new(pattern)) {
            (Some(t), Ok(re)) => re.is_match(t),
            _ => false,
        };
        if !ok {
            return Err(AccessError::TicketRequired {
                entitlement: ent.name.clone(),
                pattern: pattern.clone(),
            });
        }
    }
    let scopes = match input.scopes {
        Some(s) if s.is_empty() => {
            return Err(AccessError::Invalid("scopes must not be empty".into()))
        }
        Some(s) => s.into_iter().map(|s| inherit_condition(ent, s)).collect(),
        None => ent.scopes.clone(),
    };
    check_scopes(ent, &scopes)?;
    if let Some(old) = extends {
        let same = old.requester == requester.name && old.entitlement == ent.name;
        if !same || old.status_at(now) != RequestStatus::Active {
            return Err(AccessError::CannotExtend(old.id.clone()));
        }
    }
    if input.break_glass && !ent.break_glass {
        return Err(AccessError::BreakGlassNotAllowed(ent.name.clone()));
    }
    let auto = ent.auto_approve.as_ref().is_some_and(|a| {
        policy.is_in(&requester.name, &a.requester_in) && duration <= a.max_duration
    });
    let origin = if input.break_glass {
        Origin::BreakGlass
    } else if auto {
        Origin::AutoApproved
    } else {
        Origin::Approval
    };
    let mut req = AccessRequest {
        id,
        requester: requester.name.clone(),
        entitlement: ent.name.clone(),
        scopes,
        duration,
        reason,
        ticket,
        status: RequestStatus::Pending,
        origin,
        extends: extends.map(|e| e.id.clone()),
        created_at: now,
        pending_until: now + ent.pending_ttl.delta(),
        starts_at: None,
        expires_at: None,
        votes: Vec::new(),
        ended_at: None,
        ended_by: None,
        end_reason: None,
        needs_review: input.break_glass,
        reviewed_by: None,
    };
    if origin != Origin::Approval {
        activate(&mut req, extends, now);
    }
    Ok(req)
}

/// Sets the grant window. The server computes it from the granted duration.
fn activate(req: &mut AccessRequest, extends: Option<&AccessRequest>, now: DateTime<Utc>) {
    // An extension continues where the extended grant ends, so no time is lost or doubled.
    let base = extends
        .and_then(|e| e.expires_at)
        .filter(|e| *e > now)
        .unwrap_or(now);
    req.status = RequestStatus::Active;
    req.starts_at = Some(now);
    req.expires_at = Some(base + req.duration.delta());
}

fn check_duration(ent: &Entitlement, d: Duration) -> Result<(), AccessError> {
    if d > ent.max_duration {
        return Err(AccessError::DurationOverCap {
            entitlement: ent.name.clone(),
            requested: d,
            cap: ent.max_duration,
        });
    }
    Ok(())
}

/// A narrower scope asked for without a condition keeps the condition of the entitlement's
/// scope it narrows (unless an unconditional scope of the entitlement covers it already): a
/// request can narrow a conditional scope, never shed its condition.
fn inherit_condition(ent: &Entitlement, mut s: Scope) -> Scope {
    if s.when.is_some() {
        return s;
    }
    let covering = |e: &&Scope| {
        let bare = Scope {
            when: None,
            ..(*e).clone()
        };
        bare.contains(&s)
    };
    if ent
        .scopes
        .iter()
        .filter(|e| e.when.is_none())
        .any(|e| covering(&e))
    {
        return s;
    }
    if let Some(c) = ent
        .scopes
        .iter()
        .find(covering)
        .and_then(|e| e.when.clone())
    {
        s.when = Some(c);
    }
    s
}

fn check_scopes(ent: &Entitlement, scopes: &[Scope]) -> Result<(), AccessError> {
    for s in scopes {
        if !ent.scopes.iter().any(|e| e.contains(s)) {
            return Err(AccessError::ScopeTooWide {
                entitlement: ent.name.clone(),
                scope: s.to_string(),
            });
        }
    }
    Ok(())
}

fn ballot(req: &AccessRequest) -> Ballot<'_> {
    Ballot {
        id: &req.id,
        requester: &req.requester,
        votes: &req.votes,
    }
}

fn rule(ent: &Entitlement) -> Rule<'_> {
    Rule {
        subject: Subject::Entitlement(ent.name.clone()),
        rule: &ent.approval,
    }
}

/// Checks, at approval time, that `approver` may vote on `req`: not the requester (admins
/// included), a current approver of the entitlement, not yet voted, and the request still
/// within what the entitlement allows today.
pub fn authorize_vote<'a>(
    policy: &Policy,
    req: &AccessRequest,
    approver: &'a Actor,
    now: DateTime<Utc>,
) -> Result<Authorized<'a>, AccessError> {
    let status = req.status_at(now);
    if status == RequestStatus::Active && req.needs_review {
        return Err(AccessError::ReviewOnly(req.id.clone()));
    }
    if status != RequestStatus::Pending {
        return Err(AccessError::WrongStatus {
            id: req.id.clone(),
            status: status.as_str(),
            expected: "pending",
        });
    }
    let ent = policy
        .entitlement(&req.entitlement)
        .ok_or_else(|| AccessError::UnknownEntitlement(req.entitlement.clone()))?;
    let proof = approvals::authorize(policy, &rule(ent), ballot(req), &approver.name)?;
    check_scopes(ent, &req.scopes)?;
    check_duration(ent, req.duration)?;
    Ok(proof)
}

/// The result of an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalProgress {
    pub approvals: usize,
    pub required: usize,
    pub activated: bool,
}

/// Records an approval; activates the grant when enough distinct approvers, eligible under
/// the current policy, agree.
pub fn approve(
    policy: &Policy,
    req: &mut AccessRequest,
    proof: Authorized<'_>,
    comment: String,
    extends: Option<&AccessRequest>,
    now: DateTime<Utc>,
) -> ApprovalProgress {
    proof.cast(&mut req.votes, true, comment, now);
    let (approvals, required) = match policy.entitlement(&req.entitlement) {
        Some(ent) => {
            let tally = approvals::tally(policy, &rule(ent), ballot(req));
            (tally.approvals(), tally.required)
        }
        // INVARIANT: unreachable after `authorize_vote`, which refuses an unknown entitlement.
        None => (req.approvals(), 1),
    };
    let activated = approvals >= required;
    if activated {
        activate(req, extends, now);
    }
    ApprovalProgress {
        approvals,
        required,
        activated,
    }
}

/// Records a denial. One deny ends the request.
pub fn deny(req: &mut AccessRequest, proof: Authorized<'_>, comment: String, now: DateTime<Utc>) {
    let by = proof.approver();
    proof.cast(&mut req.votes, false, comment.clone(), now);
    end(req, RequestStatus::Denied, by, Some(comment), now);
}

fn end(
    req: &mut AccessRequest,
    status: RequestStatus,
    by: &str,
    reason: Option<String>,
    now: DateTime<Utc>,
) {
    req.status = status;
    req.ended_at = Some(now);
    req.ended_by = Some(by.to_owned());
    req.end_reason = reason.filter(|r| !r.is_empty());
}

fn expect_status(
    req: &AccessRequest,
    now: DateTime<Utc>,
    want: RequestStatus,
) -> Result<(), AccessError> {
    let status = req.status_at(now);
    if status != want {
        return Err(AccessError::WrongStatus {
            id: req.id.clone(),
            status: status.as_str(),
            expected: want.as_str(),
        });
    }
    Ok(())
}

/// The requester withdraws a pending request.
pub fn cancel(req: &mut AccessRequest, by: &Actor, now: DateTime<Utc>) -> Result<(), AccessError> {
    if by.name != req.requester {
        return Err(AccessError::NotAllowed {
            id: req.id.clone(),
            who: "the requester",
            what: "cancel",
        });
    }
    expect_status(req, now, RequestStatus::Pending)?;
    end(req, RequestStatus::Cancelled, &by.name, None, now);
    Ok(())
}

/// An approver of the entitlement, or an administrator, ends an active grant.
pub fn revoke(
    policy: &Policy,
    req: &mut AccessRequest,
    by: &Actor,
    reason: String,
    now: DateTime<Utc>,
) -> Result<(), AccessError> {
    let may = by.admin
        || policy
            .entitlement(&req.entitlement)
            .is_some_and(|e| policy.is_in(&by.name, &e.approval.approvers));
    if !may {
        return Err(AccessError::NotAllowed {
            id: req.id.clone(),
            who: "an approver or an administrator",
            what: "revoke",
        });
    }
    if reason.trim().is_empty() {
        return Err(AccessError::Invalid(
            "a revocation needs a reason; add --reason \"…\"".into(),
        ));
    }
    expect_status(req, now, RequestStatus::Active)?;
    end(req, RequestStatus::Revoked, &by.name, Some(reason), now);
    Ok(())
}

/// The holder gives a grant back early.
pub fn relinquish(
    req: &mut AccessRequest,
    by: &Actor,
    now: DateTime<Utc>,
) -> Result<(), AccessError> {
    if by.name != req.requester {
        return Err(AccessError::NotAllowed {
            id: req.id.clone(),
            who: "the holder",
            what: "relinquish",
        });
    }
    expect_status(req, now, RequestStatus::Active)?;
    end(req, RequestStatus::Relinquished, &by.name, None, now);
    Ok(())
}

/// The policy no longer declares the requester: a live grant is revoked and a pending request
/// cancelled, by whoever applied the policy. Returns the status recorded, or `None` when
/// nothing is open (an expiry or time-out not yet recorded is left to the reaper).
pub fn end_for_removed_requester(
    req: &mut AccessRequest,
    by: &str,
    policy_version: i64,
    now: DateTime<Utc>,
) -> Option<RequestStatus> {
    let status = match req.status_at(now) {
        RequestStatus::Active => RequestStatus::Revoked,
        RequestStatus::Pending => RequestStatus::Cancelled,
        _ => return None,
    };
    let reason = format!(
        "{} is no longer declared in the policy (version {policy_version})",
        req.requester
    );
    end(req, status, by, Some(reason), now);
    Some(status)
}

/// Someone other than the requester reviews a break-glass grant.
pub fn review(policy: &Policy, req: &mut AccessRequest, by: &Actor) -> Result<(), AccessError> {
    if !req.needs_review {
        return Err(AccessError::Invalid(format!(
            "request {} does not need review",
            req.id
        )));
    }
    let approvers = policy
        .entitlement(&req.entitlement)
        .map(|e| e.approval.approvers.clone())
        .unwrap_or_default();
    if by.name == req.requester {
        return Err(AccessError::SelfReview {
            approvers: list(&approvers),
        });
    }
    if !by.admin && !policy.is_in(&by.name, &approvers) {
        return Err(AccessError::NotAllowed {
            id: req.id.clone(),
            who: "an approver of its entitlement or an administrator",
            what: "review",
        });
    }
    req.needs_review = false;
    req.reviewed_by = Some(by.name.clone());
    Ok(())
}

/// Background work: what `now` has made of the request (time-out or expiry), if anything
/// is left to record.
pub fn lapse(req: &mut AccessRequest, now: DateTime<Utc>) -> Option<RequestStatus> {
    let status = req.status_at(now);
    if status == req.status {
        return None;
    }
    let at = match status {
        RequestStatus::TimedOut => req.pending_until,
        _ => req.expires_at.unwrap_or(now),
    };
    end(req, status, "system:reaper", None, at);
    Some(status)
}
