//! Key rotation: verification follows the chain of keys from either end, and a forged
//! hand-over is not followed.

use sluice_audit::{
    expected_signer, verify, AuditEntry, AuditSigner, ChainHead, Checkpoint, KeyRotation,
    ProblemKind, VerifyReport,
};

use crate::{at, chain};

/// Entries 1..=5 signed by `old` (checkpoint at 3), the rotation at 6 (checkpoint by `old`),
/// the activation at 7 (checkpoint by `new`), entries 8..=10, checkpoint at 10 by `new`.
struct Rotated {
    old: AuditSigner,
    new: AuditSigner,
    entries: Vec<AuditEntry>,
    checkpoints: Vec<Checkpoint>,
}

fn append(entries: &mut Vec<AuditEntry>, new: sluice_audit::NewEntry) {
    let head = entries
        .last()
        .map_or_else(ChainHead::genesis, AuditEntry::head);
    let entry = head.append(at(entries.len() as i64 * 1000), new);
    entries.push(entry);
}

fn rotated() -> Rotated {
    let old = AuditSigner::generate();
    let new = AuditSigner::generate();
    let mut entries = chain(5);
    let mut checkpoints = vec![old.sign(&entries[2].head(), at(50_000))];
    let rotation = KeyRotation::new(&old.verifying_key(), &new.verifying_key());
    append(&mut entries, rotation.entry());
    checkpoints.push(old.sign(&entries[5].head(), at(60_000)));
    append(&mut entries, rotation.activation_entry());
    checkpoints.push(new.sign(&entries[6].head(), at(70_000)));
    for e in chain(3) {
        append(
            &mut entries,
            sluice_audit::NewEntry::new(e.actor, e.action).details(e.details),
        );
    }
    checkpoints.push(new.sign(&entries[9].head(), at(100_000)));
    Rotated {
        old,
        new,
        entries,
        checkpoints,
    }
}

fn found(report: &VerifyReport) -> Vec<(ProblemKind, i64)> {
    report.problems.iter().map(|p| (p.kind, p.seq)).collect()
}

#[test]
fn a_rotated_trail_verifies_with_the_old_key_and_with_the_new_key() {
    let r = rotated();
    for key in [r.old.verifying_key(), r.new.verifying_key()] {
        let report = verify(&r.entries, &r.checkpoints, Some(&key), None);
        assert!(report.ok(), "{:?}", report.problems);
        assert_eq!(report.checkpoints_verified, 4);
    }
}

#[test]
fn a_rotation_not_signed_by_the_old_key_is_not_followed() {
    let mut r = rotated();
    // The hand-over checkpoint is signed by the new key instead: nothing vouches for it.
    r.checkpoints[1] = r.new.sign(&r.entries[5].head(), at(60_000));
    let report = verify(
        &r.entries,
        &r.checkpoints,
        Some(&r.old.verifying_key()),
        None,
    );
    assert!(!report.ok());
    assert_eq!(report.checkpoints_verified, 1, "{:?}", report.problems);
    assert!(
        found(&report)
            .iter()
            .all(|(kind, _)| *kind == ProblemKind::UnknownKey),
        "{:?}",
        report.problems
    );
}

#[test]
fn the_old_key_signing_after_the_rotation_is_reported_at_that_checkpoint() {
    let mut r = rotated();
    r.checkpoints
        .push(r.old.sign(&r.entries[7].head(), at(80_000)));
    let report = verify(
        &r.entries,
        &r.checkpoints,
        Some(&r.new.verifying_key()),
        None,
    );
    assert_eq!(found(&report), [(ProblemKind::UnknownKey, 8)]);
    assert!(
        report.problems[0].message.contains("entries 1..=6 only"),
        "{}",
        report.problems[0].message
    );
}

#[test]
fn a_wrong_key_on_a_rotated_trail_is_one_verdict() {
    let r = rotated();
    let other = AuditSigner::generate().verifying_key();
    let report = verify(&r.entries, &r.checkpoints, Some(&other), None);
    assert_eq!(found(&report), [(ProblemKind::UnknownKey, 3)]);
}

#[test]
fn the_expected_signer_follows_a_vouched_rotation_only() {
    let r = rotated();
    let cps = &r.checkpoints;
    assert_eq!(expected_signer(None, None, None), None);
    // Before the rotation: the key of the latest checkpoint.
    let e = expected_signer(Some(&cps[0]), None, None).unwrap();
    assert_eq!(e.key_id, r.old.verifying_key().key_id());
    // Right after the hand-over checkpoint, and after the new key signed.
    for latest in [&cps[1], &cps[3]] {
        let e = expected_signer(Some(latest), Some(&r.entries[5]), Some(&cps[1])).unwrap();
        assert_eq!(e.key_id, r.new.verifying_key().key_id());
        assert_eq!(e.public_key, Some(r.new.verifying_key().to_base64()));
    }
    // A rotation entry without the old key's checkpoint hands nothing over.
    let e = expected_signer(Some(&cps[0]), Some(&r.entries[5]), None).unwrap();
    assert_eq!(e.key_id, r.old.verifying_key().key_id());
    let forged = r.new.sign(&r.entries[5].head(), at(60_000));
    let e = expected_signer(Some(&forged), Some(&r.entries[5]), Some(&forged)).unwrap();
    assert_eq!(e.key_id, r.new.verifying_key().key_id());
    assert_eq!(e.public_key, None);
}
