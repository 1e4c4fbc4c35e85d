use std::io::Cursor;

use sluice_audit::{read_export, verify, write_export, AuditSigner, ExportError, ProblemKind};

use crate::{at, chain};

fn export(n: usize) -> (String, AuditSigner) {
    let signer = AuditSigner::generate();
    let entries = chain(n);
    let checkpoints = vec![
        // Given out of order on purpose: the writer places each after its entry.
        signer.sign(&entries[n - 1].head(), at(200_000)),
        signer.sign(&entries[1].head(), at(100_000)),
    ];
    let mut out = Vec::new();
    write_export(&mut out, &entries, &checkpoints).unwrap();
    (String::from_utf8(out).unwrap(), signer)
}

#[test]
fn export_read_verify_round_trip() {
    let signer = AuditSigner::generate();
    let entries = chain(5);
    let checkpoints = vec![signer.sign(&entries[4].head(), at(100_000))];
    let mut out = Vec::new();
    write_export(&mut out, entries.iter(), &checkpoints).unwrap();
    let (read_entries, read_checkpoints) = read_export(Cursor::new(&out)).unwrap();
    assert_eq!(read_entries, entries);
    assert_eq!(read_checkpoints, checkpoints);
    let report = verify(
        read_entries,
        &read_checkpoints,
        Some(&signer.verifying_key()),
        None,
    );
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.checkpoints_verified, 1);
}

#[test]
fn lines_are_typed_json_objects_with_checkpoints_after_their_entry() {
    let (text, _) = export(4);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6);
    let kinds: Vec<(String, i64)> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["type"].as_str().unwrap().to_owned(),
                v["seq"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("entry", 1),
        ("entry", 2),
        ("checkpoint", 2),
        ("entry", 3),
        ("entry", 4),
        ("checkpoint", 4),
    ];
    assert_eq!(kinds, expected.map(|(t, s)| (t.to_owned(), s)));
    assert!(
        lines[0].starts_with(r#"{"type":"entry","seq":1,"at":"2026-11-27T07:00:00.007Z","actor":"#),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains(r#""prev_hash":"0000"#) && lines[0].contains(r#""subject_id":"req_0""#)
    );
    assert!(lines[2].contains(r#""key_id":"#) && lines[2].contains(r#""signature":"#));
}

#[test]
fn a_bad_line_is_reported_with_its_number() {
    let (text, _) = export(3);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.insert(2, String::new()); // blank lines are ignored
    lines.insert(3, r#"{"type":"entry","seq":"three"}"#.to_owned());
    let err = read_export(Cursor::new(lines.join("\n"))).unwrap_err();
    assert!(matches!(err, ExportError::Line { line: 4, .. }), "{err:?}");
    assert!(err.to_string().contains("line 4"), "{err}");

    for bad in [r#"{"type":"comment","seq":1}"#, "not json", r#"{"seq":1}"#] {
        let input = format!("{}\n{bad}\n", text.lines().next().unwrap());
        let err = read_export(Cursor::new(input)).unwrap_err();
        assert!(
            matches!(err, ExportError::Line { line: 2, .. }),
            "{bad}: {err:?}"
        );
    }
}

#[test]
fn unknown_fields_are_rejected() {
    let (text, _) = export(2);
    let first = text.lines().next().unwrap();
    let smuggled = first.replacen(r#""seq":1,"#, r#""seq":1,"note":"hi","#, 1);
    let err = read_export(Cursor::new(smuggled)).unwrap_err();
    assert!(matches!(err, ExportError::Line { line: 1, .. }), "{err:?}");
}

#[test]
fn reformatting_a_line_keeps_it_valid_but_editing_a_value_does_not() {
    let (text, signer) = export(3);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // Re-serialise entry 2 pretty-printed on one line with its keys reversed.
    let value: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&lines[1]).unwrap();
    let reversed: serde_json::Map<_, _> = value.into_iter().rev().collect();
    lines[1] = serde_json::to_string(&reversed)
        .unwrap()
        .replace(",\"", ", \"");
    let (entries, checkpoints) = read_export(Cursor::new(lines.join("\n"))).unwrap();
    assert!(verify(&entries, &checkpoints, Some(&signer.verifying_key()), None).ok());

    lines[1] = lines[1].replace("\"minutes\":30", "\"minutes\":31");
    assert!(lines[1].contains("\"minutes\":31"));
    let (entries, checkpoints) = read_export(Cursor::new(lines.join("\n"))).unwrap();
    let report = verify(&entries, &checkpoints, Some(&signer.verifying_key()), None);
    assert_eq!(
        report
            .problems
            .iter()
            .map(|p| (p.kind, p.seq))
            .collect::<Vec<_>>(),
        [(ProblemKind::HashMismatch, 2)]
    );
}

#[test]
fn a_cut_export_is_truncated_against_its_final_checkpoint() {
    let (text, signer) = export(6);
    // Drop entries 5 and 6 but keep the trailing checkpoint line.
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            !l.contains(r#""type":"entry","seq":5"#) && !l.contains(r#""type":"entry","seq":6"#)
        })
        .collect();
    assert_eq!(kept.len(), 6);
    let (entries, checkpoints) = read_export(Cursor::new(kept.join("\n"))).unwrap();
    let report = verify(&entries, &checkpoints, Some(&signer.verifying_key()), None);
    assert_eq!(
        report
            .problems
            .iter()
            .map(|p| (p.kind, p.seq))
            .collect::<Vec<_>>(),
        [(ProblemKind::Truncated, 5)]
    );
}
