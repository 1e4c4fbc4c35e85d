use sluice_audit::{verify, AuditSigner, ChainHead, NewEntry, GENESIS_HASH};

use crate::{at, chain};

#[test]
fn append_links_entries_and_numbers_them_from_one() {
    let entries = chain(3);
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(entries[0].prev_hash, GENESIS_HASH);
    assert_eq!(entries[1].prev_hash, entries[0].hash);
    assert_eq!(entries[2].prev_hash, entries[1].hash);
    for e in &entries {
        assert_eq!(e.hash, e.compute_hash());
        assert_eq!(e.hash.len(), 64);
        assert!(e.hash_is_valid());
    }
    assert_eq!(
        entries[2].head(),
        ChainHead {
            seq: 3,
            hash: entries[2].hash.clone()
        }
    );
    assert_eq!(
        ChainHead::genesis(),
        ChainHead {
            seq: 0,
            hash: GENESIS_HASH.to_owned()
        }
    );
}

#[test]
fn same_input_same_hash_and_every_field_counts() {
    let make = |actor: &str, at_ms| {
        ChainHead::genesis().append(at(at_ms), NewEntry::new(actor, "access.approved"))
    };
    assert_eq!(make("alice", 5).hash, make("alice", 5).hash);
    assert_ne!(make("alice", 5).hash, make("bob", 5).hash);
    assert_ne!(make("alice", 5).hash, make("alice", 6).hash);
    // `None` and an empty string are different.
    let none = ChainHead::genesis().append(at(0), NewEntry::new("a", "b"));
    let empty = ChainHead::genesis().append(at(0), NewEntry::new("a", "b").resource(""));
    assert_ne!(none.hash, empty.hash);
    // The `hash` field itself is not hashed.
    let mut changed = none.clone();
    changed.hash = "x".into();
    assert_eq!(changed.compute_hash(), none.hash);
}

#[test]
fn an_intact_chain_verifies_with_checkpoints_and_expected_head() {
    let signer = AuditSigner::generate();
    let entries = chain(10);
    let checkpoints = [
        signer.sign(&entries[4].head(), at(60_000)),
        signer.sign(&entries[9].head(), at(61_000)),
    ];
    let verifier = signer.verifying_key();
    let head = entries[9].head();
    let report = verify(&entries, &checkpoints, Some(&verifier), Some(&head));
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.entries, 10);
    assert_eq!(report.checkpoints_verified, 2);
    assert_eq!(report.last, Some(head));
    assert_eq!(report.first_problem(), None);
}

#[test]
fn the_empty_chain_verifies_against_genesis() {
    let signer = AuditSigner::generate();
    let genesis = ChainHead::genesis();
    let checkpoint = signer.sign(&genesis, at(0));
    let report = verify(
        Vec::<sluice_audit::AuditEntry>::new(),
        &[checkpoint],
        Some(&signer.verifying_key()),
        Some(&genesis),
    );
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(
        (report.entries, report.checkpoints_verified, report.last),
        (0, 1, None)
    );
}

#[test]
fn entries_after_the_expected_head_are_allowed_and_still_checked() {
    let mut entries = chain(6);
    let report = verify(&entries, &[], None, Some(&entries[3].head()));
    assert!(report.ok(), "{:?}", report.problems);
    entries[5].actor = "mallory".into();
    let report = verify(&entries, &[], None, Some(&entries[3].head()));
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].seq, 6);
}

#[test]
fn verify_accepts_owned_entries_too() {
    let entries = chain(4);
    assert!(verify(entries, &[], None, None).ok());
}
