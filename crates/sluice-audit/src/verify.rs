//! Verification of a chain of entries and its checkpoints; the rules are on [`verify`].

use std::borrow::Borrow;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::entry::{AuditEntry, ChainHead};
use crate::keys::AuditVerifier;
use crate::report::{Problem, ProblemKind, SignedHead, VerifyReport};
use crate::rotation::KeyRotation;

type Digest = [u8; 32];

/// What verification keeps of an entry: enough for order, links and checkpoints, not the
/// entry itself, so that a large export is checked in little memory.
struct Rec {
    seq: i64,
    hash: Option<Digest>,
    prev_hash: Option<Digest>,
    self_ok: bool,
}

fn digest(hex_text: &str) -> Option<Digest> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).ok()?;
    // Only the lowercase form is canonical.
    (hex::encode(out) == hex_text).then_some(out)
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Verifies a chain of entries (in the order given, normally by `seq`) and its checkpoints.
///
/// `verifier`: the trusted public key; without it checkpoint signatures are not checked.
/// `expected_head`: the head the caller knows the chain reached (e.g. the store's head row),
/// which exposes tail truncation even without a checkpoint.
/// store and for an offline export.
///
/// # What is checked
///
/// 1. **Each entry against itself**: its stored `hash` must equal the hash of its canonical
///    bytes. An entry edited without recomputing its hash is a [`ProblemKind::HashMismatch`]
///    at its own `seq`.
/// 2. **Order**: entries must arrive in strictly increasing `seq`. An entry placed after one
///    with a higher `seq`, or a `seq` that appears twice, is a [`ProblemKind::OutOfOrder`]; its
///    `seq` is the smallest misplaced sequence number. The chain checks below then run on the
///    entries sorted by `seq` (first copy of a duplicate kept), so a file that was only
///    reordered reports nothing else.
/// 3. **Sequence numbers**: they start at 1 and have no holes. Missing entries are a
///    [`ProblemKind::Gap`] at the first missing `seq` (a deleted first entry is a gap at 1).
/// 4. **Links**: each entry's `prev_hash` must equal the stored `hash` of the entry before it
///    (64 zeros before entry 1). When both entries are consistent with themselves but the link
///    between them is broken, the earlier entry was rewritten *and its hash recomputed*: that
///    is a [`ProblemKind::BrokenLink`] located at the **earlier** entry, the first one no later
///    hash vouches for (at 1 if entry 1 itself links to something other than zeros). When one
///    side already has a hash mismatch, the mismatch explains the broken link and nothing more
///    is reported.
/// 5. **Checkpoints**: with a verifier, each checkpoint's signature is checked first, by the
///    key that signs its stretch of the chain: the verifier's key, or one it hands over to or
///    takes over from through rotation entries (see [`crate::rotation`]). A forged or altered
///    checkpoint is [`ProblemKind::BadSignature`]; one signed by a key of the chain outside its
///    stretch, or by a key nothing trusted vouches for, is [`ProblemKind::UnknownKey`] at its
///    `seq`; checkpoints by keys the chain never names are one [`ProblemKind::UnknownKey`] per
///    key — or a single one in all when no checkpoint verifies (most likely the wrong public
///    key). Such checkpoints are then ignored. A checkpoint beyond the last entry means the
///    tail was cut: [`ProblemKind::Truncated`] at the first missing `seq`. A checkpoint whose
///    hash differs from the stored hash of the entry at its `seq` is a
///    [`ProblemKind::CheckpointMismatch`] at that `seq`.
/// 6. **Expected head**: checked like a checkpoint (truncation, hash), but it is trusted as
///    given. Entries *after* the expected head are allowed: the chain may have grown since the
///    head was taken, and they are still checked by 1–4.
///
/// Problems are returned sorted by `seq` (stable), so `problems[0]` is the first bad place.
///
/// # What can and cannot be detected
///
/// - From the chain alone, without a key: any edit that leaves the stored hash alone (always
///   visible, even on the last entry), any deletion or reordering, and any rewrite with a
///   recomputed hash that is followed by at least one untouched entry (its link breaks).
/// - Someone who can write the whole store can rewrite an entry **and every entry after it**,
///   recomputing all hashes and links. The chain is then self-consistent; only a signed
///   checkpoint at or after the rewritten entry exposes it, as a `CheckpointMismatch` at the
///   first checkpoint past the change (the change lies between the previous matching
///   checkpoint and that one). The signing key is kept out of the database for this reason.
/// - Likewise, cutting entries off the end leaves a valid shorter chain: it is detectable only
///   against a checkpoint or an expected head beyond the new end. That is why an export ends
///   with a fresh checkpoint of the head, and why entries after the last checkpoint are only
///   as trustworthy as the channel that delivered them.
/// - Without a verifier, checkpoints are compared with the chain but prove nothing: anyone can
///   write a checkpoint. `checkpoints_verified` counts only signature-checked ones.
pub fn verify<E: Borrow<AuditEntry>>(
    entries: impl IntoIterator<Item = E>,
    checkpoints: &[Checkpoint],
    verifier: Option<&AuditVerifier>,
    expected_head: Option<&ChainHead>,
) -> VerifyReport {
    let mut intake = Intake::default();
    let recs: Vec<Rec> = entries
        .into_iter()
        .map(|e| intake.take(e.borrow()))
        .collect();
    let chain = order(&recs, &mut intake.problems);
    let mut stored = Stored::new(checkpoints, expected_head);
    let mut links = Links::default();
    for rec in chain {
        stored.note(rec);
        links.link(rec);
    }
    finish(
        intake,
        links,
        &stored,
        checkpoints,
        verifier,
        expected_head,
        EXPECTED_HEAD,
    )
}

/// How problems name the expected head unless told otherwise.
const EXPECTED_HEAD: &str = "expected head";

/// [`verify()`] for a chain that arrives in `seq` order, one entry at a time, in memory that
/// does not grow with the chain: it keeps the previous entry's hash, the stored hashes at the
/// checkpoints' sequence numbers, and the rotation entries — not the entries.
///
/// The checkpoints (and the expected head) must be known before the first entry. For a chain
/// in `seq` order the report is exactly [`verify()`]'s. An entry out of order (a `seq` not
/// above every one before it) is refused with [`NotInOrder`]: sorting needs the whole chain,
/// so the caller verifies it with [`verify()`] instead — the live store reads by primary key
/// and never gets there; an export only when it was reordered.
pub struct ChainVerifier<'a> {
    checkpoints: &'a [Checkpoint],
    verifier: Option<&'a AuditVerifier>,
    expected_head: Option<&'a ChainHead>,
    head_label: &'static str,
    intake: Intake,
    stored: Stored,
    links: Links,
    max_seq: Option<i64>,
}

/// An entry reached [`ChainVerifier::push`] after one with the same or a higher `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "entry {seq} comes after entry {after}: the chain is not in sequence order, so it must be \
     verified as a whole"
)]
pub struct NotInOrder {
    pub seq: i64,
    pub after: i64,
}

impl<'a> ChainVerifier<'a> {
    /// Arguments as for [`verify()`].
    #[must_use]
    pub fn new(
        checkpoints: &'a [Checkpoint],
        verifier: Option<&'a AuditVerifier>,
        expected_head: Option<&'a ChainHead>,
    ) -> Self {
        Self {
            checkpoints,
            verifier,
            expected_head,
            head_label: EXPECTED_HEAD,
            intake: Intake::default(),
            stored: Stored::new(checkpoints, expected_head),
            links: Links::default(),
            max_seq: None,
        }
    }

    /// Checks the next entry of the chain.
    ///
    /// # Errors
    ///
    /// [`NotInOrder`] if its `seq` is not above every `seq` before it; the entry is then not
    /// taken, and this verifier's report would be incomplete.
    pub fn push(&mut self, entry: &AuditEntry) -> Result<(), NotInOrder> {
        if let Some(after) = self.max_seq.filter(|&max| entry.seq <= max) {
            return Err(NotInOrder {
                seq: entry.seq,
                after,
            });
        }
        self.max_seq = Some(entry.seq);
        let rec = self.intake.take(entry);
        self.stored.note(&rec);
        self.links.link(&rec);
        Ok(())
    }

    /// The report, as [`verify()`] gives it for the entries pushed.
    #[must_use]
    pub fn finish(self) -> VerifyReport {
        finish(
            self.intake,
            self.links,
            &self.stored,
            self.checkpoints,
            self.verifier,
            self.expected_head,
            self.head_label,
        )
    }

    /// Names the expected head in problems as `label` (e.g. "witness checkpoint") instead of
    /// "expected head".
    #[must_use]
    pub fn with_head_label(mut self, label: &'static str) -> Self {
        self.head_label = label;
        self
    }
}

/// What is learnt of each entry on its own, in arrival order.
#[derive(Default)]
struct Intake {
    problems: Vec<Problem>,
    last: Option<ChainHead>,
    rotations: Vec<(i64, AuditVerifier, AuditVerifier)>,
    entries: u64,
}

impl Intake {
    fn take(&mut self, entry: &AuditEntry) -> Rec {
        let self_ok = entry.hash_is_valid();
        if self_ok {
            if let Some((_, from, to)) = KeyRotation::of_entry(entry) {
                self.rotations.push((entry.seq, from, to));
            }
        }
        if !self_ok {
            self.problems.push(Problem {
                seq: entry.seq,
                kind: ProblemKind::HashMismatch,
                message: format!(
                    "entry {} was edited: its stored hash {} is not the hash of its content",
                    entry.seq,
                    short(&entry.hash)
                ),
            });
        }
        if self.last.as_ref().is_none_or(|l| entry.seq > l.seq) {
            self.last = Some(entry.head());
        }
        self.entries += 1;
        Rec {
            seq: entry.seq,
            hash: digest(&entry.hash),
            prev_hash: digest(&entry.prev_hash),
            self_ok,
        }
    }
}

/// The stored hashes of the entries that checkpoints and the expected head name, gathered as
/// the chain goes by in `seq` order: all that the checks after the chain need of it.
struct Stored {
    /// Sorted, without duplicates.
    wanted: Vec<i64>,
    /// `(seq, stored hash)` of each wanted entry present, in `seq` order.
    found: Vec<(i64, Option<Digest>)>,
}

impl Stored {
    fn new(checkpoints: &[Checkpoint], expected_head: Option<&ChainHead>) -> Self {
        let mut wanted: Vec<i64> = checkpoints
            .iter()
            .map(|c| c.seq)
            .chain(expected_head.map(|h| h.seq))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        Self {
            wanted,
            found: Vec::new(),
        }
    }

    /// Called for the first copy of each `seq`, in `seq` order.
    fn note(&mut self, rec: &Rec) {
        if self.wanted.binary_search(&rec.seq).is_ok() {
            self.found.push((rec.seq, rec.hash));
        }
    }

    /// `None` when there is no entry at `seq` (a hole), else its stored hash (if well-formed).
    fn at(&self, seq: i64) -> Option<Option<Digest>> {
        let i = self.found.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        self.found.get(i).map(|(_, h)| *h)
    }
}

/// Everything after the chain itself: checkpoints, keys, the expected head, truncation.
fn finish(
    intake: Intake,
    links: Links,
    stored: &Stored,
    checkpoints: &[Checkpoint],
    verifier: Option<&AuditVerifier>,
    expected_head: Option<&ChainHead>,
    head_label: &str,
) -> VerifyReport {
    let Intake {
        mut problems,
        last,
        rotations,
        entries,
    } = intake;
    problems.extend(links.problems);

    let chain_end = last.as_ref().map_or(0, |l| l.seq);
    let mut beyond_end: Option<(i64, String)> = None;
    let mut checkpoints_verified = 0;
    let mut signed: Option<SignedHead> = None;
    let keys = verifier.map(|v| KeyChain::build(&rotations, checkpoints, v, stored));
    let mut foreign: Vec<(String, Vec<i64>)> = Vec::new();
    for checkpoint in checkpoints {
        if let Some(keys) = &keys {
            match keys.check(checkpoint) {
                Ok(()) => checkpoints_verified += 1,
                Err(KeyCheck::Foreign) => {
                    match foreign.iter_mut().find(|(id, _)| *id == checkpoint.key_id) {
                        Some((_, seqs)) => seqs.push(checkpoint.seq),
                        None => foreign.push((checkpoint.key_id.clone(), vec![checkpoint.seq])),
                    }
                    continue;
                }
                Err(KeyCheck::Problem(kind, message)) => {
                    problems.push(Problem {
                        seq: checkpoint.seq,
                        kind,
                        message: format!("checkpoint at {}: {message}", checkpoint.seq),
                    });
                    continue;
                }
            }
        }
        let what = format!("checkpoint at {}", checkpoint.seq);
        let holds = compare_head(
            stored,
            chain_end,
            &checkpoint.head(),
            what,
            &mut problems,
            &mut beyond_end,
        );
        if holds && keys.is_some() && signed.as_ref().is_none_or(|s| checkpoint.seq > s.seq) {
            signed = Some(SignedHead {
                seq: checkpoint.seq,
                at: checkpoint.at,
            });
        }
    }
    if let Some(keys) = &keys {
        foreign_key_problems(keys, checkpoints_verified, foreign, &mut problems);
    }
    if let Some(head) = expected_head {
        let what = format!("{head_label} {}", head.seq);
        compare_head(
            stored,
            chain_end,
            head,
            what,
            &mut problems,
            &mut beyond_end,
        );
    }
    if let Some((seq, what)) = beyond_end {
        problems.push(Problem {
            seq: chain_end.saturating_add(1),
            kind: ProblemKind::Truncated,
            message: format!(
                "the chain ends at {chain_end}, before the {what}: \
                 entries {}..={seq} are missing (tail cut off)",
                chain_end.saturating_add(1)
            ),
        });
    }

    problems.sort_by_key(|p| p.seq);
    let unsigned_tail = u64::try_from(chain_end - signed.as_ref().map_or(0, |s| s.seq))
        .unwrap_or(0)
        .min(entries);
    VerifyReport {
        entries,
        checkpoints_verified,
        last,
        signed,
        unsigned_tail,
        problems,
    }
}

/// Reports duplicates and misplaced entries; returns the entries sorted by `seq`, first copy
/// of each `seq` only.
fn order<'a>(recs: &'a [Rec], problems: &mut Vec<Problem>) -> Vec<&'a Rec> {
    let mut by_seq: Vec<usize> = (0..recs.len()).collect();
    // Stable: the first copy of a duplicated `seq` (in file order) comes first.
    by_seq.sort_by_key(|&i| recs.get(i).map_or(0, |r| r.seq));
    let mut duplicate = vec![false; recs.len()];
    let mut chain = Vec::with_capacity(recs.len());
    let mut prev_seq = None;
    for &i in &by_seq {
        let Some(rec) = recs.get(i) else { continue };
        if prev_seq == Some(rec.seq) {
            if let Some(d) = duplicate.get_mut(i) {
                *d = true;
            }
            problems.push(Problem {
                seq: rec.seq,
                kind: ProblemKind::OutOfOrder,
                message: format!(
                    "entry {} appears more than once; the first copy is used",
                    rec.seq
                ),
            });
        } else {
            chain.push(rec);
        }
        prev_seq = Some(rec.seq);
    }

    // In file order, among first copies: the smallest seq that follows a larger one.
    let mut max_so_far: Option<i64> = None;
    let mut misplaced: Option<(i64, i64)> = None;
    let mut misplaced_count = 0u64;
    for (rec, _) in recs.iter().zip(&duplicate).filter(|(_, &dup)| !dup) {
        match max_so_far {
            Some(max) if rec.seq < max => {
                misplaced_count += 1;
                if misplaced.is_none_or(|(seq, _)| rec.seq < seq) {
                    misplaced = Some((rec.seq, max));
                }
            }
            _ => max_so_far = Some(rec.seq),
        }
    }
    if let Some((seq, after)) = misplaced {
        problems.push(Problem {
            seq,
            kind: ProblemKind::OutOfOrder,
            message: format!(
                "entry {seq} appears after entry {after}; \
                 {misplaced_count} entries are out of order"
            ),
        });
    }
    chain
}

/// Gaps and broken links over the entries sorted by `seq` (first copies only), one at a time.
struct Links {
    prev_seq: i64,
    prev_hash: Option<Digest>,
    prev_ok: bool,
    problems: Vec<Problem>,
}

impl Default for Links {
    fn default() -> Self {
        Self {
            prev_seq: 0,
            prev_hash: Some([0u8; 32]),
            prev_ok: true,
            problems: Vec::new(),
        }
    }
}

impl Links {
    fn link(&mut self, rec: &Rec) {
        let Self {
            prev_seq,
            prev_hash,
            prev_ok,
            problems,
        } = self;
        if rec.seq < 1 {
            problems.push(Problem {
                seq: rec.seq,
                kind: ProblemKind::OutOfOrder,
                message: format!("entry {}: sequence numbers start at 1", rec.seq),
            });
            return;
        }
        let expected = prev_seq.saturating_add(1);
        if rec.seq > expected {
            let missing = if rec.seq - 1 == expected {
                format!("entry {expected} is missing")
            } else {
                format!("entries {expected}..={} are missing", rec.seq - 1)
            };
            problems.push(Problem {
                seq: expected,
                kind: ProblemKind::Gap,
                message: format!("{missing} (deleted) before entry {}", rec.seq),
            });
        } else if (rec.prev_hash.is_none() || rec.prev_hash != *prev_hash)
            && rec.self_ok
            && *prev_ok
        {
            // Both ends match their own hashes, so one of them was rewritten with a
            // recomputed hash; the earlier one is the first that nothing vouches for.
            let seq = (*prev_seq).max(1);
            let message = if *prev_seq == 0 {
                "entry 1 does not link to the genesis hash (64 zeros): it was rewritten, \
                 or entries before it were removed and the rest renumbered"
                    .to_owned()
            } else {
                format!(
                    "entry {} does not link to entry {prev_seq}: entry {prev_seq} was rewritten \
                     with a recomputed hash (or entry {}'s link was)",
                    rec.seq, rec.seq
                )
            };
            problems.push(Problem {
                seq,
                kind: ProblemKind::BrokenLink,
                message,
            });
        }
        *prev_seq = rec.seq;
        *prev_hash = rec.hash;
        *prev_ok = rec.self_ok;
    }
}

/// Compares a trusted head (checkpoint or expected head) with the stored chain.
/// Returns whether the chain holds the head (the entry at its `seq` has its hash).
fn compare_head(
    stored: &Stored,
    chain_end: i64,
    head: &ChainHead,
    what: String,
    problems: &mut Vec<Problem>,
    beyond_end: &mut Option<(i64, String)>,
) -> bool {
    if head.seq > chain_end {
        if beyond_end.as_ref().is_none_or(|(seq, _)| head.seq > *seq) {
            *beyond_end = Some((head.seq, what));
        }
        return false;
    }
    let hash = if head.seq == 0 {
        Some([0u8; 32])
    } else if head.seq < 0 {
        None
    } else {
        match stored.at(head.seq) {
            Some(hash) => hash,
            // A hole in the chain: already reported as a gap.
            None => return false,
        }
    };
    let matches = hash.is_some() && hash == digest(&head.hash);
    if !matches {
        problems.push(Problem {
            seq: head.seq,
            kind: ProblemKind::CheckpointMismatch,
            message: format!(
                "{what} names hash {} but the entry there does not have it: \
                 the entry (or one before it, with every later hash recomputed) was rewritten",
                short(&head.hash)
            ),
        });
    }
    matches
}

fn stored_hash(stored: &Stored, seq: i64) -> Option<Digest> {
    stored.at(seq).flatten()
}

/// Why a checkpoint's signature is not accepted.
enum KeyCheck {
    /// Signed by a key that appears nowhere in the chain of keys: gathered per key.
    Foreign,
    Problem(ProblemKind, String),
}

/// Which key signs which stretch of the chain, and which of those keys are trusted.
///
/// Built from the rotation entries (see [`crate::rotation`]): a rotation at `s` counts when a
/// checkpoint at `s`, signed by its old key, vouches for it. The old key then signs up to `s`,
/// the new one after. Trust starts at the given key and spreads forward (the old key signed
/// the hand-over) and backward (a checkpoint by the new key after `s` vouches, through the
/// hash chain, for the entry naming the old key).
struct KeyChain {
    /// `(last seq it signs, key)`; the last stretch is open-ended.
    stretches: Vec<(i64, AuditVerifier)>,
    trusted: Vec<bool>,
    given: AuditVerifier,
}

impl KeyChain {
    fn build(
        rotations: &[(i64, AuditVerifier, AuditVerifier)],
        checkpoints: &[Checkpoint],
        given: &AuditVerifier,
        chain: &Stored,
    ) -> Self {
        let vouched_by = |key: &AuditVerifier, seq: i64| {
            checkpoints.iter().any(|c| {
                c.seq == seq
                    && key.verify(c).is_ok()
                    && stored_hash(chain, seq).is_some_and(|h| digest(&c.hash) == Some(h))
            })
        };
        let mut stretches: Vec<(i64, AuditVerifier)> = Vec::new();
        let mut sorted: Vec<_> = rotations.iter().collect();
        sorted.sort_by_key(|r| r.0);
        for (seq, from, to) in sorted {
            let follows = stretches.last().is_none_or(|(_, k)| k == from);
            if follows && vouched_by(from, *seq) {
                match stretches.last_mut() {
                    Some(last) => last.0 = *seq,
                    None => stretches.push((*seq, from.clone())),
                }
                stretches.push((i64::MAX, to.clone()));
            }
        }
        if stretches.is_empty() {
            stretches.push((i64::MAX, given.clone()));
        }
        let mut trusted = vec![false; stretches.len()];
        if let Some(start) = stretches.iter().position(|(_, k)| k == given) {
            // Forward: every hand-over after `start` was signed by a trusted old key.
            for t in trusted.iter_mut().skip(start) {
                *t = true;
            }
            // Backward: the next key signed a matching checkpoint within its own stretch.
            for i in (0..start).rev() {
                let (Some((end, _)), Some((next_end, next))) =
                    (stretches.get(i), stretches.get(i + 1))
                else {
                    break;
                };
                let covered = checkpoints.iter().any(|c| {
                    c.seq > *end
                        && c.seq <= *next_end
                        && next.verify(c).is_ok()
                        && stored_hash(chain, c.seq).is_some_and(|h| digest(&c.hash) == Some(h))
                });
                if !covered {
                    break;
                }
                if let Some(t) = trusted.get_mut(i) {
                    *t = true;
                }
            }
        }
        Self {
            stretches,
            trusted,
            given: given.clone(),
        }
    }

    fn stretch_of(&self, seq: i64) -> Option<usize> {
        self.stretches.iter().position(|(end, _)| seq <= *end)
    }

    fn check(&self, checkpoint: &Checkpoint) -> Result<(), KeyCheck> {
        if !self.any_trusted() {
            return Err(KeyCheck::Foreign);
        }
        let Some(i) = self.stretch_of(checkpoint.seq) else {
            return Err(KeyCheck::Foreign);
        };
        let (Some((_, key)), Some(&trusted)) = (self.stretches.get(i), self.trusted.get(i)) else {
            return Err(KeyCheck::Foreign);
        };
        if checkpoint.key_id == key.key_id() {
            if !trusted {
                return Err(KeyCheck::Problem(
                    ProblemKind::UnknownKey,
                    format!(
                        "signed by key {}, which nothing signed by the trusted key {} vouches for",
                        key.key_id(),
                        self.given.key_id()
                    ),
                ));
            }
            return key.verify(checkpoint).map_err(|e| {
                let kind = match e {
                    CheckpointError::UnknownKey { .. } => ProblemKind::UnknownKey,
                    CheckpointError::MalformedSignature | CheckpointError::BadSignature => {
                        ProblemKind::BadSignature
                    }
                };
                KeyCheck::Problem(kind, e.to_string())
            });
        }
        let elsewhere = self
            .stretches
            .iter()
            .enumerate()
            .find(|(_, (_, k))| k.key_id() == checkpoint.key_id);
        match elsewhere {
            Some((j, (end, _))) => {
                let start = j
                    .checked_sub(1)
                    .and_then(|p| self.stretches.get(p))
                    .map_or(1, |(e, _)| e.saturating_add(1));
                let range = if *end == i64::MAX {
                    format!("from entry {start} on")
                } else {
                    format!("entries {start}..={end} only")
                };
                Err(KeyCheck::Problem(
                    ProblemKind::UnknownKey,
                    format!(
                        "signed by key {}, which signs {range}; entry {} falls to key {}",
                        checkpoint.key_id,
                        checkpoint.seq,
                        key.key_id()
                    ),
                ))
            }
            None => Err(KeyCheck::Foreign),
        }
    }

    /// Whether any stretch's key is trusted: `false` means the given key is not part of this
    /// trail at all (most likely the wrong `--public-key`).
    fn any_trusted(&self) -> bool {
        self.trusted.iter().any(|t| *t)
    }
}

/// One problem per foreign key, or one in all when the given key signs nothing here.
fn foreign_key_problems(
    keys: &KeyChain,
    verified: u64,
    foreign: Vec<(String, Vec<i64>)>,
    problems: &mut Vec<Problem>,
) {
    if foreign.is_empty() {
        return;
    }
    if verified == 0 {
        let first = foreign
            .iter()
            .filter_map(|(_, seqs)| seqs.first().copied())
            .min()
            .unwrap_or(0);
        let ids: Vec<&str> = foreign.iter().map(|(id, _)| id.as_str()).collect();
        let count: usize = foreign.iter().map(|(_, s)| s.len()).sum();
        problems.push(Problem {
            seq: first,
            kind: ProblemKind::UnknownKey,
            message: format!(
                "none of the {count} checkpoint(s) is signed by the trusted key {} (or by a key it \
                 handed over to or took over from); they are signed by key {}: is this the \
                 public key of this trail?",
                keys.given.key_id(),
                ids.join(", key ")
            ),
        });
        return;
    }
    for (id, seqs) in foreign {
        let first = seqs.first().copied().unwrap_or(0);
        let list: Vec<String> = seqs.iter().take(5).map(ToString::to_string).collect();
        let more = if seqs.len() > 5 { ", …" } else { "" };
        problems.push(Problem {
            seq: first,
            kind: ProblemKind::UnknownKey,
            message: format!(
                "{} checkpoint(s) (at {}{more}) are signed by key {id}, which the trail never \
                 handed signing over to: they prove nothing",
                seqs.len(),
                list.join(", ")
            ),
        });
    }
}
