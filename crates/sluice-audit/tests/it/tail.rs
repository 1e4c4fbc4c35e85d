//! The unsigned tail: what `verify` reports of it, the bound that refuses it, and the witness.

use chrono::TimeDelta;
use sluice_audit::{
    read_witness, verify, verify_export_against, write_checkpoint_line, write_export, AuditSigner,
    ProblemKind,
};

use crate::{at, chain};

#[test]
fn the_newest_signed_seq_and_the_tail_after_it_are_reported() {
    let signer = AuditSigner::generate();
    let entries = chain(10);
    let checkpoints = vec![signer.sign(&entries[5].head(), at(100_000))];
    let key = signer.verifying_key();
    let mut r = verify(&entries, &checkpoints, Some(&key), None);
    assert!(r.ok(), "{:?}", r.problems);
    let signed = r.signed.clone().expect("signed");
    assert_eq!((signed.seq, signed.at), (6, at(100_000)));
    assert_eq!(r.unsigned_tail, 4);

    // Within the bound: allowed. Past it: refused at the first unsigned entry.
    assert!(!r.refuse_stale_tail(at(100_000) + TimeDelta::seconds(10), TimeDelta::seconds(10)));
    assert!(r.ok());
    assert!(r.refuse_stale_tail(at(100_000) + TimeDelta::seconds(11), TimeDelta::seconds(10)));
    let p = r.first_problem().expect("refused");
    assert_eq!((p.kind, p.seq), (ProblemKind::UnsignedTail, 7));
    assert!(p.message.contains("entries 7..=10"), "{}", p.message);
}

#[test]
fn without_a_key_nothing_counts_as_signed_and_a_mismatching_checkpoint_never_does() {
    let signer = AuditSigner::generate();
    let entries = chain(4);
    let checkpoints = vec![signer.sign(&entries[3].head(), at(1_000))];
    let r = verify(&entries, &checkpoints, None, None);
    assert_eq!((r.signed.clone(), r.unsigned_tail), (None, 4));
    let mut r = verify(&entries, &checkpoints, None, None);
    assert!(r.refuse_stale_tail(at(1_000), TimeDelta::seconds(10)));

    // A checkpoint of another hash at the head signs nothing.
    let mut other = entries[3].head();
    other.hash = "ab".repeat(32);
    let forged = vec![signer.sign(&other, at(1_000))];
    let r = verify(&entries, &forged, Some(&signer.verifying_key()), None);
    assert_eq!((r.signed.clone(), r.unsigned_tail), (None, 4));
    assert!(!r.ok());
}

#[test]
fn an_export_that_ends_before_the_witness_is_truncated_and_one_that_differs_is_a_mismatch() {
    let signer = AuditSigner::generate();
    let key = signer.verifying_key();
    let entries = chain(8);
    let mut witness = Vec::new();
    for e in &entries[2..] {
        write_checkpoint_line(&mut witness, &signer.sign(&e.head(), at(5_000))).expect("line");
    }
    let newest = read_witness(std::io::Cursor::new(&witness))
        .expect("readable")
        .expect("a checkpoint");
    assert_eq!(newest.seq, 8);

    // An export of the first six entries, closed by its own checkpoint: whole on its own.
    let mut export = Vec::new();
    let closing = signer.sign(&entries[5].head(), at(4_000));
    write_export(&mut export, &entries[..6], &[closing]).expect("export");
    let alone =
        verify_export_against(std::io::Cursor::new(&export), Some(&key), None).expect("readable");
    assert!(alone.ok(), "{:?}", alone.problems);
    let against = verify_export_against(
        std::io::Cursor::new(&export),
        Some(&key),
        Some(&newest.head()),
    )
    .expect("readable");
    let p = against.first_problem().expect("cut");
    assert_eq!((p.kind, p.seq), (ProblemKind::Truncated, 7));
    assert!(p.message.contains("witness"), "{}", p.message);

    // The whole trail, but the witness saw another entry 8.
    let mut export = Vec::new();
    write_export(
        &mut export,
        &entries,
        &[signer.sign(&entries[7].head(), at(6_000))],
    )
    .expect("export");
    let mut forged = newest.clone();
    forged.hash = "ab".repeat(32);
    let r = verify_export_against(
        std::io::Cursor::new(&export),
        Some(&key),
        Some(&forged.head()),
    )
    .expect("readable");
    assert!(
        r.problems
            .iter()
            .any(|p| p.kind == ProblemKind::CheckpointMismatch && p.seq == 8),
        "{:?}",
        r.problems
    );

    // An export is not a witness.
    assert!(read_witness(std::io::Cursor::new(&export)).is_err());
}
