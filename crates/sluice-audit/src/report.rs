//! What [`crate::verify()`] found.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
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
    /// The newest checkpoint that verified (signature by the trusted key, hash of the entry
    /// at its `seq`): every entry up to its `seq` is signed. `None` without a verifier, or
    /// when no checkpoint verified.
    pub signed: Option<SignedHead>,
    /// How many entries come after [`VerifyReport::signed`]: the unsigned tail, which only
    /// the channel that delivered it vouches for.
    pub unsigned_tail: u64,
    /// Everything wrong, sorted by `seq`.
    pub problems: Vec<Problem>,
}

/// The newest signed sequence number, and when its checkpoint was signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignedHead {
    pub seq: i64,
    #[serde(with = "crate::time::serde_timestamp")]
    pub at: DateTime<Utc>,
}

impl VerifyReport {
    /// No problems found.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Refuses an unsigned tail that has been unsigned for longer than `bound` at `now`: a
    /// running server signs every committed batch within about a second, so entries after the
    /// newest checkpoint that is older than `bound` were either never signed (the signer is
    /// failing) or put there by someone who cannot sign (entries rewritten after, or the later
    /// checkpoints deleted). Adds an [`ProblemKind::UnsignedTail`] problem at the first
    /// unsigned entry and returns whether it did.
    ///
    /// The age is that of the newest *signed* checkpoint, which nobody without the key can
    /// forge, not that of the entries, which are whatever the database says.
    pub fn refuse_stale_tail(&mut self, now: DateTime<Utc>, bound: TimeDelta) -> bool {
        if self.unsigned_tail == 0 {
            return false;
        }
        let first = self.signed.as_ref().map_or(1, |s| s.seq.saturating_add(1));
        let last = self.last.as_ref().map_or(first, |l| l.seq);
        let since = match &self.signed {
            Some(s) if now.signed_duration_since(s.at) <= bound => return false,
            Some(s) => format!(
                "the newest signed checkpoint (at {}) was signed {}s ago",
                s.seq,
                now.signed_duration_since(s.at).num_seconds()
            ),
            None => "no checkpoint signed by the trusted key covers any entry".to_owned(),
        };
        self.problems.push(Problem {
            seq: first,
            kind: ProblemKind::UnsignedTail,
            message: format!(
                "entries {first}..={last} are covered by no signed checkpoint and {since}, \
                 longer than the bound of {}s: the head is not signed, so these entries (or \
                 entries removed after them) prove nothing",
                bound.num_seconds()
            ),
        });
        self.problems.sort_by_key(|p| p.seq);
        true
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
    /// Entries from `seq` on are covered by no signed checkpoint, and the newest signed one
    /// is older than the verifier's bound (see [`VerifyReport::refuse_stale_tail`]).
    UnsignedTail,
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
            Self::UnsignedTail => "unsigned tail",
            Self::SessionLogMismatch => "session log mismatch",
            Self::CallLogMismatch => "call log mismatch",
        })
    }
}
