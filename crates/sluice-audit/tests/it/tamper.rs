//! Each kind of tampering, with the exact problem kind and first bad sequence number.

use serde_json::json;
use sluice_audit::{
    verify, AuditEntry, AuditSigner, ChainHead, Checkpoint, ProblemKind, VerifyReport,
};

use crate::{at, chain, rehash};

const N: usize = 10;

struct Fixture {
    signer: AuditSigner,
    entries: Vec<AuditEntry>,
    /// Checkpoints at 5 and at the head (10).
    checkpoints: Vec<Checkpoint>,
}

fn fixture() -> Fixture {
    let signer = AuditSigner::generate();
    let entries = chain(N);
    let checkpoints = vec![
        signer.sign(&entries[4].head(), at(100_000)),
        signer.sign(&entries[N - 1].head(), at(101_000)),
    ];
    Fixture {
        signer,
        entries,
        checkpoints,
    }
}

impl Fixture {
    fn verify(&self) -> VerifyReport {
        verify(
            &self.entries,
            &self.checkpoints,
            Some(&self.signer.verifying_key()),
            None,
        )
    }
}

/// The report's problems as `(kind, seq)`.
fn found(report: &VerifyReport) -> Vec<(ProblemKind, i64)> {
    report.problems.iter().map(|p| (p.kind, p.seq)).collect()
}

#[test]
fn edited_details_is_a_hash_mismatch_at_that_entry() {
    let mut f = fixture();
    f.entries[3].details = json!({"reason": "nothing to see"});
    assert_eq!(found(&f.verify()), [(ProblemKind::HashMismatch, 4)]);
}

#[test]
fn edited_actor_of_the_first_entry_is_a_hash_mismatch_at_one() {
    let mut f = fixture();
    f.entries[0].actor = "someone-else".into();
    let report = f.verify();
    assert_eq!(found(&report), [(ProblemKind::HashMismatch, 1)]);
    assert!(
        report.problems[0].message.contains("entry 1"),
        "{}",
        report.problems[0]
    );
}

#[test]
fn edited_timestamp_resource_and_subject_are_each_detected() {
    let edits: [fn(&mut AuditEntry); 4] = [
        |e| e.at += chrono::Duration::milliseconds(1),
        |e| e.resource = None,
        |e| e.subject_id = Some("req_other".into()),
        |e| e.action = "access.denied".into(),
    ];
    for edit in edits {
        let mut f = fixture();
        edit(&mut f.entries[6]);
        assert_eq!(found(&f.verify()), [(ProblemKind::HashMismatch, 7)]);
    }
}

#[test]
fn deleted_middle_entry_is_a_gap_at_its_seq() {
    let mut f = fixture();
    f.entries.remove(4);
    let report = f.verify();
    assert_eq!(found(&report), [(ProblemKind::Gap, 5)]);
    assert!(
        report.problems[0].message.contains("entry 5 is missing"),
        "{}",
        report.problems[0]
    );
}

#[test]
fn deleted_run_of_entries_is_one_gap_at_the_first() {
    let mut f = fixture();
    f.entries.drain(5..8);
    let report = f.verify();
    assert_eq!(found(&report), [(ProblemKind::Gap, 6)]);
    assert!(
        report.problems[0].message.contains("6..=8"),
        "{}",
        report.problems[0]
    );
}

#[test]
fn deleted_first_entry_is_a_gap_at_one() {
    let mut f = fixture();
    f.entries.remove(0);
    assert_eq!(found(&f.verify()), [(ProblemKind::Gap, 1)]);
}

#[test]
fn swapped_entries_are_out_of_order_at_the_smaller_seq() {
    let mut f = fixture();
    f.entries.swap(2, 6);
    assert_eq!(found(&f.verify()), [(ProblemKind::OutOfOrder, 3)]);

    let mut f = fixture();
    f.entries.swap(7, 8);
    assert_eq!(found(&f.verify()), [(ProblemKind::OutOfOrder, 8)]);
}

#[test]
fn a_duplicated_entry_is_out_of_order_at_its_seq() {
    let mut f = fixture();
    let copy = f.entries[2].clone();
    f.entries.push(copy);
    assert_eq!(found(&f.verify()), [(ProblemKind::OutOfOrder, 3)]);
}

#[test]
fn renumbered_and_rehashed_entries_still_break_the_chain() {
    // Delete entry 5 and renumber the rest, recomputing each hash but not the links.
    let mut f = fixture();
    f.entries.remove(4);
    for e in &mut f.entries[4..] {
        e.seq -= 1;
        rehash(e);
    }
    let report = f.verify();
    assert_eq!(
        report.first_problem().map(|p| (p.kind, p.seq)),
        Some((ProblemKind::BrokenLink, 4))
    );
    assert!(found(&report).contains(&(ProblemKind::Truncated, 10)));
}

#[test]
fn truncated_tail_is_detected_against_a_checkpoint() {
    let mut f = fixture();
    f.entries.truncate(7);
    let report = f.verify();
    assert_eq!(found(&report), [(ProblemKind::Truncated, 8)]);
    assert!(
        report.problems[0].message.contains("8..=10"),
        "{}",
        report.problems[0]
    );
}

#[test]
fn truncated_tail_is_detected_against_the_expected_head() {
    let entries = chain(N);
    let head = entries[N - 1].head();
    let report = verify(&entries[..6], &[], None, Some(&head));
    assert_eq!(found(&report), [(ProblemKind::Truncated, 7)]);
}

#[test]
fn truncated_tail_after_the_last_checkpoint_is_not_detectable_without_a_head() {
    // The documented limit: a shorter chain is a valid chain. Exports therefore end with a
    // fresh checkpoint, and the store passes its head.
    let f = fixture();
    let report = verify(
        &f.entries[..7],
        &f.checkpoints[..1],
        Some(&f.signer.verifying_key()),
        None,
    );
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.last.map(|h| h.seq), Some(7));
}

#[test]
fn rewritten_entry_with_recomputed_hash_is_a_broken_link_at_that_entry() {
    let mut f = fixture();
    f.entries[5].details = json!({"reason": "rewritten"});
    rehash(&mut f.entries[5]);
    let report = f.verify();
    assert_eq!(found(&report), [(ProblemKind::BrokenLink, 6)]);
    assert!(report.problems[0]
        .message
        .contains("entry 7 does not link to entry 6"));
}

#[test]
fn rewritten_first_entry_with_recomputed_hash_is_a_broken_link_at_one() {
    let mut f = fixture();
    f.entries[0].actor = "mallory".into();
    rehash(&mut f.entries[0]);
    assert_eq!(found(&f.verify()), [(ProblemKind::BrokenLink, 1)]);
}

#[test]
fn rewritten_last_entry_with_recomputed_hash_is_a_checkpoint_mismatch() {
    let mut f = fixture();
    f.entries[N - 1].actor = "mallory".into();
    rehash(&mut f.entries[N - 1]);
    assert_eq!(found(&f.verify()), [(ProblemKind::CheckpointMismatch, 10)]);

    // Same against the expected head, without checkpoints.
    let head = chain(N)[N - 1].head();
    let report = verify(&f.entries, &[], None, Some(&head));
    assert_eq!(found(&report), [(ProblemKind::CheckpointMismatch, 10)]);
}

#[test]
fn rewritten_suffix_with_relinked_hashes_is_caught_by_the_next_checkpoint() {
    // Rewrite entry 3 and relink everything after it: the chain is self-consistent.
    let mut f = fixture();
    f.entries[2].details = json!({"reason": "rewritten"});
    rehash(&mut f.entries[2]);
    for i in 3..N {
        f.entries[i].prev_hash = f.entries[i - 1].hash.clone();
        rehash(&mut f.entries[i]);
    }
    let report = f.verify();
    assert_eq!(
        found(&report),
        [
            (ProblemKind::CheckpointMismatch, 5),
            (ProblemKind::CheckpointMismatch, 10)
        ]
    );
    // Without checkpoints it is invisible: the reason the signing key is not in the database.
    assert!(verify(&f.entries, &[], None, None).ok());
}

#[test]
fn edited_hash_field_alone_is_a_hash_mismatch_and_checkpoint_mismatch_at_that_entry() {
    let mut f = fixture();
    f.entries[4].hash = "ab".repeat(32);
    assert_eq!(
        found(&f.verify()),
        [
            (ProblemKind::HashMismatch, 5),
            (ProblemKind::CheckpointMismatch, 5)
        ]
    );
}

#[test]
fn checkpoint_forged_with_another_key_is_an_unknown_key() {
    let mut f = fixture();
    let mallory = AuditSigner::generate();
    f.entries.truncate(7);
    // Replace the real head checkpoint with one over the truncated head.
    f.checkpoints[1] = mallory.sign(&f.entries[6].head(), at(101_000));
    let report = f.verify();
    assert_eq!(found(&report), [(ProblemKind::UnknownKey, 7)]);
    assert_eq!(report.checkpoints_verified, 1);
}

#[test]
fn checkpoint_forged_under_the_trusted_key_id_is_a_bad_signature() {
    let mut f = fixture();
    let mallory = AuditSigner::generate();
    let mut forged = mallory.sign(
        &ChainHead {
            seq: 10,
            hash: "cd".repeat(32),
        },
        at(101_000),
    );
    forged.key_id = f.signer.verifying_key().key_id().to_owned();
    f.checkpoints[1] = forged;
    // The forged checkpoint is ignored for hash comparison, so only the signature is reported.
    assert_eq!(found(&f.verify()), [(ProblemKind::BadSignature, 10)]);
}

#[test]
fn checkpoint_altered_after_signing_is_a_bad_signature() {
    let alterations: [fn(&mut Checkpoint); 4] = [
        |c| c.hash = "00".repeat(32),
        |c| c.at += chrono::Duration::milliseconds(1),
        |c| c.signature = "not base64!".into(),
        |c| c.signature = "AAAA".into(),
    ];
    for alter in alterations {
        let mut f = fixture();
        alter(&mut f.checkpoints[0]);
        assert_eq!(found(&f.verify()), [(ProblemKind::BadSignature, 5)]);
    }
    // Moving a checkpoint to another seq breaks its signature too.
    let mut f = fixture();
    f.checkpoints[0].seq = 6;
    assert_eq!(found(&f.verify()), [(ProblemKind::BadSignature, 6)]);
}

#[test]
fn wrong_public_key_is_one_unknown_key_verdict_naming_both_keys() {
    let f = fixture();
    let other = AuditSigner::generate().verifying_key();
    let report = verify(&f.entries, &f.checkpoints, Some(&other), None);
    assert_eq!(found(&report), [(ProblemKind::UnknownKey, 5)]);
    let message = &report.problems[0].message;
    assert!(message.contains(other.key_id()), "{message}");
    assert!(
        message.contains(f.signer.verifying_key().key_id()),
        "{message}"
    );
    assert_eq!(report.checkpoints_verified, 0);
}

#[test]
fn without_a_verifier_checkpoints_are_compared_but_not_counted() {
    let mut f = fixture();
    let report = verify(&f.entries, &f.checkpoints, None, None);
    assert!(report.ok());
    assert_eq!(report.checkpoints_verified, 0);
    f.entries.truncate(8);
    let report = verify(&f.entries, &f.checkpoints, None, None);
    assert_eq!(found(&report), [(ProblemKind::Truncated, 9)]);
}

#[test]
fn a_changed_link_with_recomputed_hash_is_located_at_the_earliest_unvouched_entry() {
    // Entry 6's prev_hash is changed and its hash recomputed: both links around it break.
    // Nothing vouches for entry 5 any more, so the first bad seq is 5 (conservative).
    let mut f = fixture();
    f.entries[5].prev_hash = "ef".repeat(32);
    rehash(&mut f.entries[5]);
    assert_eq!(
        found(&f.verify()),
        [(ProblemKind::BrokenLink, 5), (ProblemKind::BrokenLink, 6)]
    );
}

#[test]
fn problems_come_sorted_by_seq() {
    let mut f = fixture();
    f.entries[8].actor = "x".into();
    f.entries.remove(2);
    f.entries.truncate(8);
    let report = f.verify();
    let seqs: Vec<i64> = report.problems.iter().map(|p| p.seq).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(seqs, sorted);
    assert_eq!(
        report.first_problem().map(|p| (p.kind, p.seq)),
        Some((ProblemKind::Gap, 3))
    );
}
