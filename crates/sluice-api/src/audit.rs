//! `/v1/audit`: the audit trail and its verification.

use serde::{Deserialize, Serialize};
pub use sluice_audit::AuditEntry;
use utoipa::ToSchema;

/// A page of the audit trail, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<AuditEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// What the live chain's verification found.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerifyView {
    pub ok: bool,
    pub entries: u64,
    pub checkpoints_verified: u64,
    pub head_seq: Option<i64>,
    /// The newest sequence number a verified signed checkpoint covers; absent when none does.
    #[serde(default)]
    pub signed_seq: Option<i64>,
    /// When that checkpoint was signed (RFC 3339).
    #[serde(default)]
    pub signed_at: Option<String>,
    /// Entries after `signed_seq` (the unsigned tail): `head_seq - signed_seq`.
    #[serde(default)]
    pub unsigned_tail: u64,
    /// The longest the newest signed checkpoint may be older than the verification while the
    /// head is not signed, in seconds; beyond it the trail is refused (`unsigned_tail`).
    #[serde(default)]
    pub unsigned_bound_secs: Option<u64>,
    /// One line per problem, each naming the first bad sequence number.
    pub problems: Vec<ProblemView>,
}

/// One thing wrong with the chain.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProblemView {
    /// The first bad sequence number.
    pub seq: i64,
    pub kind: ProblemKind,
    /// For people: what is wrong, naming the entries or checkpoint involved.
    pub message: String,
}

/// The kinds of tampering (and damage) that verification tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    HashMismatch,
    Gap,
    OutOfOrder,
    BrokenLink,
    Truncated,
    CheckpointMismatch,
    BadSignature,
    UnknownKey,
    SessionLogMismatch,
    UnsignedTail,
    CallLogMismatch,
}

impl ProblemKind {
    /// The wire spelling, e.g. `hash_mismatch`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HashMismatch => "hash_mismatch",
            Self::Gap => "gap",
            Self::OutOfOrder => "out_of_order",
            Self::BrokenLink => "broken_link",
            Self::Truncated => "truncated",
            Self::CheckpointMismatch => "checkpoint_mismatch",
            Self::BadSignature => "bad_signature",
            Self::UnknownKey => "unknown_key",
            Self::SessionLogMismatch => "session_log_mismatch",
            Self::UnsignedTail => "unsigned_tail",
            Self::CallLogMismatch => "call_log_mismatch",
        }
    }
}

impl From<sluice_audit::ProblemKind> for ProblemKind {
    fn from(k: sluice_audit::ProblemKind) -> Self {
        use sluice_audit::ProblemKind as K;
        match k {
            K::HashMismatch => Self::HashMismatch,
            K::Gap => Self::Gap,
            K::OutOfOrder => Self::OutOfOrder,
            K::BrokenLink => Self::BrokenLink,
            K::Truncated => Self::Truncated,
            K::CheckpointMismatch => Self::CheckpointMismatch,
            K::BadSignature => Self::BadSignature,
            K::UnknownKey => Self::UnknownKey,
            K::SessionLogMismatch => Self::SessionLogMismatch,
            K::UnsignedTail => Self::UnsignedTail,
            K::CallLogMismatch => Self::CallLogMismatch,
        }
    }
}
