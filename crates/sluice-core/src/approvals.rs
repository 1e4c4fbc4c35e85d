//! The one approvals model: who may vote on a request, and whether its votes meet the rule.
//!
//! Access requests ([`crate::access`]) and four-eyes change requests
//! ([`crate::change_request`]) both ask it, so the rules cannot drift apart:
//!
//! - **N of M**: a request needs `required` distinct approvers from the rule's `approvers`.
//! - **Deny wins**: one deny from an eligible approver ends the request.
//! - **No self-approval**: the requester never votes on their own request, administrators
//!   included.
//! - **Eligible now**: an approver must be in the rule's approvers under the policy as it is at
//!   the vote, and an approval counts only while its approver still is.
//! - **One vote per approver.**
//! - **Time-outs**: a pending request lapses at its `pending_until`, whether or not background
//!   work has recorded it.
//!
//! Pure: the policy and `now` are passed in.

use crate::policy::{ApprovalRule, Policy};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One approver's vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub approver: String,
    pub approve: bool,
    pub comment: String,
    pub at: DateTime<Utc>,
}

/// What the approvers approve: named in refusals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// An access request for this entitlement.
    Entitlement(String),
    /// A change request to a flag in this environment.
    ChangeRequests { environment: String },
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Entitlement(name) => f.write_str(name),
            Subject::ChangeRequests { environment } => {
                write!(f, "change requests in {environment}")
            }
        }
    }
}

/// Why a vote was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("you cannot approve or deny your own request; ask someone in: {approvers}")]
    SelfApproval { approvers: String },
    #[error("you are not an approver of `{subject}`; approvers are: {approvers}")]
    NotAnApprover { subject: Subject, approvers: String },
    #[error("you have already voted on request {0}")]
    AlreadyVoted(String),
}

impl ApprovalError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::SelfApproval { .. } => "self_approval",
            Self::NotAnApprover { .. } => "not_an_approver",
            Self::AlreadyVoted(_) => "already_voted",
        }
    }

    /// "You may not" (as opposed to "this cannot be").
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Self::SelfApproval { .. } | Self::NotAnApprover { .. })
    }
}

/// A request as the approvals model sees it.
#[derive(Debug, Clone, Copy)]
pub struct Ballot<'a> {
    /// The request's id, named in refusals.
    pub id: &'a str,
    /// Who asked; never an approver of this request.
    pub requester: &'a str,
    pub votes: &'a [Vote],
}

/// The approval rule that applies to a request under the current policy.
#[derive(Debug, Clone)]
pub struct Rule<'a> {
    pub subject: Subject,
    pub rule: &'a ApprovalRule,
}

impl Rule<'_> {
    pub fn required(&self) -> usize {
        self.rule.required as usize
    }
}

/// Proof that an approver may vote on a request right now. Only [`authorize`] makes one, so a
/// vote that skipped the checks does not compile.
#[derive(Debug)]
pub struct Authorized<'a> {
    approver: &'a str,
}

impl<'a> Authorized<'a> {
    pub fn approver(&self) -> &'a str {
        self.approver
    }

    /// Records the vote this proof allows. Consumes the proof: one proof, one vote.
    pub fn cast(self, votes: &mut Vec<Vote>, approve: bool, comment: String, now: DateTime<Utc>) {
        votes.push(Vote {
            approver: self.approver.to_owned(),
            approve,
            comment,
            at: now,
        });
    }
}

/// Checks, at vote time, that `approver` may vote: not the requester (administrators
/// included), an approver under the current policy, and not voted before. Whether the request
/// is still open to votes is the caller's state machine's question, asked first.
pub fn authorize<'a>(
    policy: &Policy,
    rule: &Rule<'_>,
    ballot: Ballot<'_>,
    approver: &'a str,
) -> Result<Authorized<'a>, ApprovalError> {
    let approvers = &rule.rule.approvers;
    if approver == ballot.requester {
        return Err(ApprovalError::SelfApproval {
            approvers: list(approvers),
        });
    }
    if !policy.is_in(approver, approvers) {
        return Err(ApprovalError::NotAnApprover {
            subject: rule.subject.clone(),
            approvers: list(approvers),
        });
    }
    if ballot.votes.iter().any(|v| v.approver == approver) {
        return Err(ApprovalError::AlreadyVoted(ballot.id.to_owned()));
    }
    Ok(Authorized { approver })
}

/// Where a request's votes stand under the current rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Approvers whose approval counts now: distinct, not the requester, still eligible.
    pub approvers: Vec<String>,
    pub required: usize,
    /// Someone eligible denied: the request is over whatever the approvals say.
    pub denied: bool,
}

impl Tally {
    pub fn approvals(&self) -> usize {
        self.approvers.len()
    }

    /// Enough approvals and no deny.
    pub fn met(&self) -> bool {
        !self.denied && self.approvers.len() >= self.required
    }
}

/// Counts the votes under `rule` as the policy is now: an approver who has left the approvers
/// since voting no longer counts.
pub fn tally(policy: &Policy, rule: &Rule<'_>, ballot: Ballot<'_>) -> Tally {
    let counts = |v: &&Vote| {
        v.approver != ballot.requester && policy.is_in(&v.approver, &rule.rule.approvers)
    };
    let mut approvers: Vec<String> = ballot
        .votes
        .iter()
        .filter(|v| v.approve)
        .filter(counts)
        .map(|v| v.approver.clone())
        .collect();
    approvers.sort();
    approvers.dedup();
    Tally {
        approvers,
        required: rule.required(),
        denied: ballot
            .votes
            .iter()
            .filter(|v| !v.approve)
            .any(|v| counts(&v)),
    }
}

/// Has a pending request waited too long? Half-open: at `pending_until` it has.
pub fn timed_out(pending_until: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now >= pending_until
}

/// `a, b` or `nobody`: how refusals name the approvers to ask.
pub(crate) fn list(subjects: &[String]) -> String {
    if subjects.is_empty() {
        "nobody".into()
    } else {
        subjects.join(", ")
    }
}

#[cfg(test)]
mod tests;
