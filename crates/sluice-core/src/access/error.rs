use crate::approvals::ApprovalError;
use crate::duration::Duration;

/// Why an access operation was refused. Each variant has a stable [`code`](AccessError::code)
/// and a message that says what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("no entitlement named `{0}`; `sluice access entitlements` lists them")]
    UnknownEntitlement(String),
    #[error("you may not request `{entitlement}`; it can be requested by: {requesters}")]
    NotEligible {
        entitlement: String,
        requesters: String,
    },
    #[error("{requested} is longer than `{entitlement}` allows; ask for at most {cap}")]
    DurationOverCap {
        entitlement: String,
        requested: Duration,
        cap: Duration,
    },
    #[error("`{0}` requires a reason; add --reason \"…\"")]
    ReasonRequired(String),
    #[error("`{entitlement}` requires a ticket matching `{pattern}`; add --ticket")]
    TicketRequired {
        entitlement: String,
        pattern: String,
    },
    #[error("scope {scope} is wider than entitlement `{entitlement}` allows")]
    ScopeTooWide { entitlement: String, scope: String },
    #[error("`{0}` does not allow break-glass access")]
    BreakGlassNotAllowed(String),
    #[error("request {id} is {status}, not {expected}")]
    WrongStatus {
        id: String,
        status: &'static str,
        expected: &'static str,
    },
    /// An active break-glass grant awaiting review was approved or denied: it can only be
    /// reviewed (or revoked).
    #[error("request {0} is an active break-glass grant: it is reviewed, not approved or denied; run `sluice access review {0}` (or `sluice access revoke {0}` to end it)")]
    ReviewOnly(String),
    /// Refused by the approvals model (self-approval, not an approver, voted already).
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    /// A break-glass grant is reviewed by someone else: the same rule as self-approval (and
    /// the same code), said in the words of a review.
    #[error("you cannot review your own break-glass grant; ask someone in: {approvers}")]
    SelfReview { approvers: String },
    #[error("only {who} may {what} request {id}")]
    NotAllowed {
        id: String,
        who: &'static str,
        what: &'static str,
    },
    #[error(
        "grant {0} cannot be extended: it is not yours, not active, or for another entitlement"
    )]
    CannotExtend(String),
    #[error("{0}")]
    Invalid(String),
}

impl AccessError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownEntitlement(_) => "unknown_entitlement",
            Self::NotEligible { .. } => "not_eligible",
            Self::DurationOverCap { .. } => "duration_over_cap",
            Self::ReasonRequired(_) => "reason_required",
            Self::TicketRequired { .. } => "ticket_required",
            Self::ScopeTooWide { .. } => "scope_too_wide",
            Self::BreakGlassNotAllowed(_) => "break_glass_not_allowed",
            Self::WrongStatus { .. } | Self::ReviewOnly(_) => "wrong_status",
            Self::SelfReview { .. } => "self_approval",
            Self::Approval(e) => e.code(),
            Self::NotAllowed { .. } => "forbidden",
            Self::CannotExtend(_) => "cannot_extend",
            Self::Invalid(_) => "invalid_request",
        }
    }

    /// Whether this is a "you may not" (403) rather than a "this cannot be" (409/422).
    pub fn is_forbidden(&self) -> bool {
        match self {
            Self::Approval(e) => e.is_forbidden(),
            _ => matches!(
                self,
                Self::NotEligible { .. } | Self::SelfReview { .. } | Self::NotAllowed { .. }
            ),
        }
    }

    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Self::WrongStatus { .. }
                | Self::ReviewOnly(_)
                | Self::Approval(ApprovalError::AlreadyVoted(_))
        )
    }
}
