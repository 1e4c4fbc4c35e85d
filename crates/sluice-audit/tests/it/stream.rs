//! The streaming checks give exactly the reports of the whole-chain ones: [`ChainVerifier`]
//! against [`verify()`] for chains in `seq` order, and [`verify_export`] against reading the
//! export whole, for any damage (reordered exports included).

use std::io::Cursor;

use proptest::prelude::*;
use sluice_audit::{
    export_end_problem, read_export, verify, verify_export, write_export, AuditEntry, AuditSigner,
    ChainHead, ChainVerifier, Checkpoint, NotInOrder, VerifyReport,
};

use crate::{at, chain, rehash};

#[derive(Debug, Clone)]
enum Damage {
    Delete(usize),
    Edit(usize),
    EditRehashed(usize),
    Duplicate(usize),
    Swap(usize),
    CutTail(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0usize..40).prop_map(Damage::Delete),
        (0usize..40).prop_map(Damage::Edit),
        (0usize..40).prop_map(Damage::EditRehashed),
        (0usize..40).prop_map(Damage::Duplicate),
        (0usize..40).prop_map(Damage::Swap),
        (0usize..5).prop_map(Damage::CutTail),
    ]
}

fn apply(entries: &mut Vec<AuditEntry>, d: &Damage) {
    let n = entries.len();
    if n == 0 {
        return;
    }
    match *d {
        Damage::Delete(i) => {
            entries.remove(i % n);
        }
        Damage::Edit(i) => entries[i % n].actor.push('!'),
        Damage::EditRehashed(i) => {
            entries[i % n].action.push('!');
            rehash(&mut entries[i % n]);
        }
        Damage::Duplicate(i) => {
            let e = entries[i % n].clone();
            entries.insert(i % n, e);
        }
        Damage::Swap(i) if n > 1 => entries.swap(i % (n - 1), i % (n - 1) + 1),
        Damage::Swap(_) => {}
        Damage::CutTail(k) => entries.truncate(n.saturating_sub(k)),
    }
}

fn streamed(
    entries: &[AuditEntry],
    checkpoints: &[Checkpoint],
    signer: &AuditSigner,
    head: &ChainHead,
) -> Result<VerifyReport, NotInOrder> {
    let key = signer.verifying_key();
    let mut v = ChainVerifier::new(checkpoints, Some(&key), Some(head));
    for e in entries {
        v.push(e)?;
    }
    Ok(v.finish())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn streaming_reports_equal_whole_chain_reports(
        n in 1usize..20,
        every in 1usize..8,
        damages in proptest::collection::vec(damage(), 0..4),
    ) {
        let signer = AuditSigner::generate();
        let original = chain(n);
        let head = original.last().unwrap().head();
        let mut checkpoints: Vec<Checkpoint> = original
            .iter()
            .filter(|e| e.seq as usize % every == 0)
            .map(|e| signer.sign(&e.head(), at(99_000_000)))
            .collect();
        checkpoints.push(signer.sign(&head, at(99_000_001)));
        let mut entries = original.clone();
        for d in &damages {
            apply(&mut entries, d);
        }

        let whole = verify(&entries, &checkpoints, Some(&signer.verifying_key()), Some(&head));
        let in_order = entries.windows(2).all(|w| w[0].seq < w[1].seq);
        match streamed(&entries, &checkpoints, &signer, &head) {
            Ok(report) => {
                prop_assert!(in_order);
                prop_assert_eq!(report, whole);
            }
            Err(_) => prop_assert!(!in_order),
        }

        // The export file, verified streaming, against reading it whole.
        let mut file = Vec::new();
        write_export(&mut file, &entries, &checkpoints).unwrap();
        let key = signer.verifying_key();
        let got = verify_export(Cursor::new(&file), Some(&key)).unwrap();
        let (read_entries, read_checkpoints) = read_export(Cursor::new(&file)).unwrap();
        let mut want = verify(&read_entries, &read_checkpoints, Some(&key), None);
        if let Some(cut) = export_end_problem(&read_entries, &read_checkpoints) {
            want.problems.push(cut);
            want.problems.sort_by_key(|p| p.seq);
        }
        prop_assert_eq!(got, want);
    }
}

#[test]
fn an_entry_out_of_order_is_refused_not_skipped() {
    let entries = chain(3);
    let mut v = ChainVerifier::new(&[], None, None);
    v.push(&entries[1]).unwrap();
    let err = v.push(&entries[0]).unwrap_err();
    assert_eq!(err, NotInOrder { seq: 1, after: 2 });
    assert_eq!(
        v.push(&entries[1]).unwrap_err().seq,
        2,
        "a repeat is refused too"
    );
    v.push(&entries[2]).unwrap();
    assert_eq!(v.finish().entries, 2);
}

#[test]
fn a_cut_off_export_is_still_an_error() {
    let signer = AuditSigner::generate();
    let entries = chain(4);
    let checkpoints = [signer.sign(&entries[3].head(), at(9_000))];
    let mut file = Vec::new();
    write_export(&mut file, &entries, &checkpoints).unwrap();
    let cut = &file[..file.len() - 20];
    let err = verify_export(Cursor::new(cut), Some(&signer.verifying_key())).unwrap_err();
    assert!(
        matches!(
            err,
            sluice_audit::ExportError::CutOff {
                line: 5,
                last_entry: Some(4)
            }
        ),
        "{err}"
    );
}
