//! What [`crate::verify()`] found.

use std::fmt;

use serde::Serialize;

use crate::entry::ChainHead;

/// The outcome of [`crate::verify()`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// How many entries were read.
    pub entries: u64,
    /// How many checkpoints had a valid signature by the given verifier.
    pub checkpoints_verified: u64,
    /// `seq` and stored `hash` of the entry with the highest `seq`, if any.
    pub last: Option<ChainHead>,
    /// Everything wrong, sorted by `seq`.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// No problems found.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problem at the lowest sequence number.
    #[must_use]
    pub fn first_problem(&self) -> Option<&Problem> {
        self.problems.first()
    }
}

/// One thing wrong with a chain, located at the first bad sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The first bad sequence number; see [`ProblemKind`] for what it means per kind.
    pub seq: i64,
    pub kind: ProblemKind,
    /// For people: what is wrong, naming the entries or checkpoint involved.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq {}: {}: {}", self.seq, self.kind, self.message)
    }
}

/// The kinds of tampering (and damage) that [`crate::verify()`] tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The entry at `seq` does not match its own hash: it was edited.
    HashMismatch,
    /// Entries from `seq` on are missing before a later entry: deleted.
    Gap,
    /// The entry `seq` appears after a higher one, or twice: reordered or duplicated.
    OutOfOrder,
    /// The entry after `seq` does not link to it although both match their own hashes: the
    /// entry at `seq` was rewritten with a recomputed hash.
    BrokenLink,
    /// The chain ends before a checkpoint or the expected head; `seq` is the first missing one.
    Truncated,
    /// A checkpoint (or the expected head) at `seq` names another hash than the entry there.
    CheckpointMismatch,
    /// The checkpoint at `seq` claims the trusted key but its signature does not verify.
    BadSignature,
    /// The checkpoint at `seq` is signed by a key other than the trusted one.
    UnknownKey,
    /// A gateway session's statement log does not hash to the value its session-end entry
    /// at `seq` records: a logged statement was edited, added or removed.
    SessionLogMismatch,
    /// A batch of HTTP gateway call records does not hash to the value its sealing entry at
    /// `seq` records, or rows name a batch no entry seals: a call record was edited, added or
    /// removed.
    CallLogMismatch,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::HashMismatch => "hash mismatch",
            Self::Gap => "gap",
            Self::OutOfOrder => "out of order",
            Self::BrokenLink => "broken link",
            Self::Truncated => "truncated",
            Self::CheckpointMismatch => "checkpoint mismatch",
            Self::BadSignature => "bad signature",
            Self::UnknownKey => "unknown key",
            Self::SessionLogMismatch => "session log mismatch",
            Self::CallLogMismatch => "call log mismatch",
        })
    }
}
