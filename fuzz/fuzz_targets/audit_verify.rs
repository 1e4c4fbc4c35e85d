//! The offline verifier (`sluice audit verify`) fed export files: arbitrary bytes, and —
//! from the committed seed, a valid export signed by the fixture key — mutations of a valid
//! one. Besides "no panic":
//! - the streaming verifier (`verify_export`, constant memory) reports exactly what
//!   verifying the whole file in memory (`read_export` + `verify` + `export_end_problem`) does;
//! - a report without problems is only ever given for the fixture's own entries, unchanged
//!   (compared by sequence number, hash and canonical bytes: reformatting a line is fine),
//!   whole or cut exactly after one of its checkpoints (the documented limit: a cut at a
//!   checkpoint line reads as a shorter export) — so no edit, insertion, deletion, reordering
//!   or forged checkpoint is ever called ok.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_audit::{
    export_end_problem, read_export, verify, verify_export, AuditEntry, AuditVerifier, Checkpoint,
};
use std::io::Cursor;
use std::sync::OnceLock;

struct Fixture {
    verifier: AuditVerifier,
    entries: Vec<AuditEntry>,
    checkpoints: Vec<Checkpoint>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SLUICE_FUZZ_WRITE_SEEDS") {
            sluice_fuzz::write_seeds(dir.as_ref()).expect("the seeds are written");
        }
        let (entries, checkpoints) =
            read_export(Cursor::new(sluice_fuzz::audit_export())).expect("the fixture reads");
        Fixture {
            verifier: sluice_fuzz::audit_verifier(),
            entries,
            checkpoints,
        }
    })
}

fn same(a: &AuditEntry, b: &AuditEntry) -> bool {
    a.seq == b.seq && a.hash == b.hash && a.canonical_bytes() == b.canonical_bytes()
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Ok(report) = verify_export(Cursor::new(data), Some(&f.verifier)) else {
        assert!(
            read_export(Cursor::new(data)).is_err(),
            "the streaming reader refused a file that reads"
        );
        return;
    };
    let (entries, checkpoints) =
        read_export(Cursor::new(data)).expect("a file the streaming verifier read reads whole");
    let mut whole = verify(&entries, &checkpoints, Some(&f.verifier), None);
    if let Some(cut) = export_end_problem(&entries, &checkpoints) {
        whole.problems.push(cut);
        whole.problems.sort_by_key(|p| p.seq);
    }
    assert_eq!(
        report, whole,
        "streaming and whole-file verification disagree"
    );

    if report.ok() {
        let k = entries.len();
        let cut_points: Vec<usize> = std::iter::once(0)
            .chain(f.checkpoints.iter().map(|c| c.seq as usize))
            .collect();
        assert!(
            cut_points.contains(&k) && entries.iter().zip(&f.entries).all(|(a, b)| same(a, b)),
            "verified ok but is not the fixture's chain (or a cut at a checkpoint): {} entries, \
             {} checkpoints",
            k,
            checkpoints.len()
        );
    }
});
