//! The change-request ("four-eyes") state machine: instead of holding a grant, a user proposes
//! a change to a flag; it applies when the environment's approval rule is met — at once, or at
//! the time it names. Votes follow the one approvals model ([`crate::approvals`]): nobody
//! approves their own proposal (administrators included), an approver must be eligible at the
//! vote, each approver counts once, and one deny ends it. A proposal whose flag changed
//! underneath it ends `stale`; one that waits longer than the environment allows times out.
//!
//! ```text
//! pending ──(enough approvals, due)──▶ applied | stale | refused
//!    │   └─(enough approvals, apply_at later)──▶ approved ──(apply_at)──▶ applied | stale | refused
//!    └──▶ denied | cancelled | timed-out          approved ──▶ denied | cancelled
//! ```
//!
//! The change itself (`C`) is opaque here: applying it is the caller's business. Pure: the
//! policy and `now` are passed in.

use crate::approvals::{self, ApprovalError, Authorized, Ballot, Rule, Subject, Tally, Vote};
use crate::policy::{ApprovalRule, Policy};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The actor that applies, times out and refuses change requests.
pub const ACTOR: &str = "system:change-request";

const MAX_REASON: usize = 2000;
const MAX_COMMENT: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeRequestStatus {
    Pending,
    Approved,
    Applied,
    Denied,
    Cancelled,
    Stale,
    TimedOut,
    Refused,
}

impl ChangeRequestStatus {
    pub const ALL: [Self; 8] = [
        Self::Pending,
        Self::Approved,
        Self::Applied,
        Self::Denied,
        Self::Cancelled,
        Self::Stale,
        Self::TimedOut,
        Self::Refused,
    ];

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

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// A status asked for by name, or the error that lists the names.
    pub fn parse_filter(s: &str) -> Result<Self, ChangeRequestError> {
        Self::parse(s).ok_or_else(|| ChangeRequestError::UnknownStatus(s.to_owned()))
    }

    /// The statuses a request may be recorded with while it is `self` now: a time-out may not
    /// be recorded yet.
    pub fn recorded_as(self) -> Vec<Self> {
        match self {
            Self::TimedOut => vec![Self::Pending, Self::TimedOut],
            s => vec![s],
        }
    }
}

/// Why a change-request operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeRequestError {
    #[error(
        "`{0}` takes no change requests: the policy gives it no approval rule; add \
         `approval: {{ required: 1, approvers: [group:…] }}` under environments.{0}, \
         or change the flag with a grant"
    )]
    NoApprovalRule(String),
    #[error("a change request needs a reason for its approvers")]
    ReasonRequired,
    #[error("{what} is longer than {max} bytes")]
    TooLong { what: &'static str, max: usize },
    #[error("`apply_at` must be in the future; leave it out to apply on approval")]
    ApplyAtPast,
    #[error("unknown status `{0}`; use one of: {all}", all = ChangeRequestStatus::ALL.map(|x| x.as_str()).join(", "))]
    UnknownStatus(String),
    #[error("request {id} is {status}, not {expected}")]
    WrongStatus {
        id: String,
        status: &'static str,
        expected: &'static str,
    },
    #[error("only the proposer may cancel request {0}")]
    NotProposer(String),
    #[error(transparent)]
    Approval(#[from] ApprovalError),
}

/// A change request as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRequest<C> {
    pub id: String,
    pub environment: String,
    pub key: String,
    pub change: C,
    pub base_revision: Option<i64>,
    pub apply_at: Option<DateTime<Utc>>,
    pub reason: String,
    pub proposer: String,
    /// As recorded; see [`status_at`](Self::status_at) for what it is now.
    pub status: ChangeRequestStatus,
    pub created_at: DateTime<Utc>,
    /// A pending change request times out at this moment.
    pub pending_until: DateTime<Utc>,
    pub votes: Vec<Vote>,
    pub applied_revision: Option<i64>,
    pub result: Option<String>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<String>,
}

/// What a proposer asks for.
#[derive(Debug, Clone)]
pub struct Proposal<C> {
    pub environment: String,
    pub key: String,
    pub change: C,
    pub base_revision: Option<i64>,
    pub apply_at: Option<DateTime<Utc>>,
    pub reason: String,
}

/// The approval rule of an environment's change requests, if the policy gives it one.
pub fn rule_of<'p>(policy: &'p Policy, env: &str) -> Option<&'p ApprovalRule> {
    policy
        .doc
        .environments
        .get(env)
        .and_then(|e| e.approval.as_ref())
}

fn rule<'p>(policy: &'p Policy, env: &str) -> Option<Rule<'p>> {
    rule_of(policy, env).map(|rule| Rule {
        subject: Subject::ChangeRequests {
            environment: env.to_owned(),
        },
        rule,
    })
}

/// Opens a change request. Whether its base revision is current is the caller's question
/// (it needs the store), asked in the same transaction that saves it.
pub fn propose<C>(
    policy: &Policy,
    proposer: &str,
    p: Proposal<C>,
    id: String,
    now: DateTime<Utc>,
) -> Result<ChangeRequest<C>, ChangeRequestError> {
    let ttl = match policy.doc.environments.get(&p.environment) {
        Some(e) if e.approval.is_some() => e.change_request_ttl(),
        _ => return Err(ChangeRequestError::NoApprovalRule(p.environment)),
    };
    let reason = p.reason.trim();
    if reason.is_empty() {
        return Err(ChangeRequestError::ReasonRequired);
    }
    if reason.len() > MAX_REASON {
        return Err(ChangeRequestError::TooLong {
            what: "reason",
            max: MAX_REASON,
        });
    }
    if p.apply_at.is_some_and(|t| t <= now) {
        return Err(ChangeRequestError::ApplyAtPast);
    }
    Ok(ChangeRequest {
        id,
        environment: p.environment,
        key: p.key,
        change: p.change,
        base_revision: p.base_revision,
        apply_at: p.apply_at,
        reason: reason.to_owned(),
        proposer: proposer.to_owned(),
        status: ChangeRequestStatus::Pending,
        created_at: now,
        pending_until: now + ttl.delta(),
        votes: Vec::new(),
        applied_revision: None,
        result: None,
        ended_at: None,
        ended_by: None,
    })
}

/// A vote's comment is bounded like a reason.
pub fn check_comment(comment: &str) -> Result<(), ChangeRequestError> {
    if comment.len() > MAX_COMMENT {
        return Err(ChangeRequestError::TooLong {
            what: "comment",
            max: MAX_COMMENT,
        });
    }
    Ok(())
}

/// What time and votes make of a change request next (see [`ChangeRequest::next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Nothing to do now.
    Wait,
    /// The rule is met but `apply_at` is later: the request is `approved` now, and waits.
    Scheduled,
    /// The rule is met and the change is due: apply it, on the authority of these approvers.
    Apply { approvers: Vec<String> },
    /// An approved change request came due without approvals that meet the rule any more.
    Lapsed,
}

impl<C> ChangeRequest<C> {
    /// The status at `now`: a pending request past `pending_until` has timed out, whether or
    /// not background work has recorded it yet.
    pub fn status_at(&self, now: DateTime<Utc>) -> ChangeRequestStatus {
        if self.status == ChangeRequestStatus::Pending
            && approvals::timed_out(self.pending_until, now)
        {
            ChangeRequestStatus::TimedOut
        } else {
            self.status
        }
    }

    /// The resource it changes, as scopes name it.
    pub fn resource(&self) -> String {
        format!("flag:{}/{}", self.environment, self.key)
    }

    fn ballot(&self) -> Ballot<'_> {
        Ballot {
            id: &self.id,
            requester: &self.proposer,
            votes: &self.votes,
        }
    }

    /// Where the votes stand under the environment's current rule (`None`: it has none now).
    pub fn tally(&self, policy: &Policy) -> Option<Tally> {
        rule(policy, &self.environment).map(|r| approvals::tally(policy, &r, self.ballot()))
    }

    /// Checks, at vote time, that `approver` may vote: the request is still open (a deny may
    /// also stop an approved one before its time), then the approvals model's rules.
    pub fn authorize_vote<'a>(
        &self,
        policy: &Policy,
        approver: &'a str,
        approve: bool,
        now: DateTime<Utc>,
    ) -> Result<Authorized<'a>, ChangeRequestError> {
        let status = self.status_at(now);
        let open = status == ChangeRequestStatus::Pending
            || (!approve && status == ChangeRequestStatus::Approved);
        if !open {
            return Err(ChangeRequestError::WrongStatus {
                id: self.id.clone(),
                status: status.as_str(),
                expected: "pending",
            });
        }
        let rule = rule(policy, &self.environment)
            .ok_or_else(|| ChangeRequestError::NoApprovalRule(self.environment.clone()))?;
        Ok(approvals::authorize(
            policy,
            &rule,
            self.ballot(),
            approver,
        )?)
    }

    /// Records a vote. Deny wins: one deny ends the change request.
    pub fn vote(
        &mut self,
        proof: Authorized<'_>,
        approve: bool,
        comment: &str,
        now: DateTime<Utc>,
    ) {
        let by = proof.approver();
        proof.cast(&mut self.votes, approve, comment.to_owned(), now);
        if !approve {
            self.end(
                ChangeRequestStatus::Denied,
                by,
                Some(comment.to_owned()),
                now,
            );
        }
    }

    /// The proposer withdraws a change request that has not applied yet.
    pub fn cancel(&mut self, by: &str, now: DateTime<Utc>) -> Result<(), ChangeRequestError> {
        if self.proposer != by {
            return Err(ChangeRequestError::NotProposer(self.id.clone()));
        }
        let status = self.status_at(now);
        if !matches!(
            status,
            ChangeRequestStatus::Pending | ChangeRequestStatus::Approved
        ) {
            return Err(ChangeRequestError::WrongStatus {
                id: self.id.clone(),
                status: status.as_str(),
                expected: "pending or approved",
            });
        }
        self.end(ChangeRequestStatus::Cancelled, by, None, now);
        Ok(())
    }

    /// Records a time-out not yet recorded; `true` if it did.
    pub fn time_out(&mut self, now: DateTime<Utc>) -> bool {
        if self.status == ChangeRequestStatus::Pending
            && approvals::timed_out(self.pending_until, now)
        {
            let at = self.pending_until;
            self.end(ChangeRequestStatus::TimedOut, ACTOR, None, at);
            return true;
        }
        false
    }

    /// What happens next. Approvals are counted under the rule as it is now: an approver who
    /// has left the approvers since no longer counts when a scheduled change comes due. A
    /// pending request whose rule is met but whose `apply_at` is later becomes `approved`
    /// here ([`Next::Scheduled`]).
    pub fn next(&mut self, policy: &Policy, now: DateTime<Utc>) -> Next {
        if !matches!(
            self.status,
            ChangeRequestStatus::Pending | ChangeRequestStatus::Approved
        ) {
            return Next::Wait;
        }
        let tally = self.tally(policy);
        let met = tally.as_ref().is_some_and(Tally::met);
        let due = self.apply_at.is_none_or(|t| t <= now);
        if met && !due {
            if self.status == ChangeRequestStatus::Pending {
                self.status = ChangeRequestStatus::Approved;
                return Next::Scheduled;
            }
            Next::Wait
        } else if met {
            Next::Apply {
                approvers: tally.map(|t| t.approvers).unwrap_or_default(),
            }
        } else if self.status == ChangeRequestStatus::Approved {
            Next::Lapsed
        } else {
            Next::Wait
        }
    }

    /// The change applied at `revision`.
    pub fn applied(&mut self, revision: i64, now: DateTime<Utc>) {
        self.applied_revision = Some(revision);
        self.end(
            ChangeRequestStatus::Applied,
            ACTOR,
            Some(format!("revision {revision}")),
            now,
        );
    }

    /// Applying was refused: `stale` when the flag changed underneath it, else `refused`.
    pub fn refused(&mut self, stale: bool, reason: String, now: DateTime<Utc>) {
        let status = if stale {
            ChangeRequestStatus::Stale
        } else {
            ChangeRequestStatus::Refused
        };
        self.end(status, ACTOR, Some(reason), now);
    }

    /// Why a lapsed request is refused, in words.
    pub fn lapsed_reason(&self) -> String {
        format!(
            "its approvals no longer meet the approval rule of `{}`",
            self.environment
        )
    }

    fn end(
        &mut self,
        status: ChangeRequestStatus,
        by: &str,
        result: Option<String>,
        at: DateTime<Utc>,
    ) {
        self.status = status;
        self.ended_at = Some(at);
        self.ended_by = Some(by.to_owned());
        self.result = result.filter(|r| !r.is_empty());
    }
}

#[cfg(test)]
mod tests;
