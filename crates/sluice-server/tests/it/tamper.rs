//! Tampering with the stored audit trail is detected and located: an edit, a deletion, a
//! reordering and a cut tail, each on a fresh server; and the same offline, from an export.

use crate::harness::{Backend, TestServer, ADMIN_TOKEN};
use crate::sql::exec;
use crate::{backend_tests, server};
use reqwest::StatusCode;
use serde_json::Value;

/// About twenty entries of ordinary work, then a signed checkpoint of the head. Returns the
/// head's sequence number.
async fn trail(s: &TestServer) -> i64 {
    let (alice, dave, bob, carol) = (
        s.token("alice").await,
        s.token("dave").await,
        s.token("bob").await,
        s.token("carol").await,
    );
    let (_, g) = s
        .request(&alice, "flags-prod-operator", "30m", "INC-7")
        .await;
    let (_, p) = s.request(&dave, "orders-db-read", "1h", "").await;
    for t in [&bob, &carol] {
        let (st, v) = s
            .post(
                t,
                &format!("/v1/requests/{}/approve", p["id"].as_str().expect("id")),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    assert!(s.allowed("alice", "toggle", "flag", "production/x").await);
    for who in ["erin", "mallory", "nobody"] {
        assert!(!s.allowed(who, "toggle", "flag", "production/x").await);
    }
    s.token("erin").await;
    s.token("mallory").await;
    let (st, _) = s
        .post(
            &alice,
            &format!("/v1/requests/{}/relinquish", g["id"].as_str().expect("id")),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let seq = sluice_server::audit::checkpoint(&s.app)
        .await
        .expect("checkpoint")
        .expect("the head moved");
    assert!(seq >= 18, "a trail of about twenty entries, got {seq}");
    let report = s.verify().await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checkpoints_verified"], 1, "{report}");
    seq
}

/// The first problem the live verification reports: (seq, kind).
async fn first_problem(s: &TestServer) -> (i64, String) {
    let (st, v) = s.get(ADMIN_TOKEN, "/v1/audit/verify").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["ok"], false, "tampering went unnoticed: {v}");
    let p = &v["problems"][0];
    assert!(p["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    (
        p["seq"].as_i64().expect("seq"),
        p["kind"].as_str().expect("kind").to_owned(),
    )
}

async fn an_edited_entry_is_a_hash_mismatch_at_its_seq(b: Backend) {
    let s = server!(b);
    trail(&s).await;
    exec(
        &s.db,
        &[r#"UPDATE audit_entries SET details = '{"reason":"nothing to see"}' WHERE seq = 7"#],
    )
    .await;
    assert_eq!(first_problem(&s).await, (7, "hash_mismatch".into()));
}

async fn a_deleted_entry_is_a_gap(b: Backend) {
    let s = server!(b);
    trail(&s).await;
    exec(&s.db, &["DELETE FROM audit_entries WHERE seq = 10"]).await;
    assert_eq!(first_problem(&s).await, (10, "gap".into()));
}

async fn swapped_entries_are_located_at_the_first(b: Backend) {
    let s = server!(b);
    trail(&s).await;
    // Entries 5 and 6 trade places; each now sits at the other's sequence number.
    exec(
        &s.db,
        &[
            "UPDATE audit_entries SET seq = -5 WHERE seq = 5",
            "UPDATE audit_entries SET seq = 5 WHERE seq = 6",
            "UPDATE audit_entries SET seq = 6 WHERE seq = -5",
        ],
    )
    .await;
    // The sequence number is hashed, so a moved entry no longer matches its hash.
    assert_eq!(first_problem(&s).await, (5, "hash_mismatch".into()));
}

async fn a_cut_tail_is_truncation_even_with_the_head_row_rewound(b: Backend) {
    let s = server!(b);
    let head = trail(&s).await;
    exec(
        &s.db,
        &[&format!(
            "DELETE FROM audit_entries WHERE seq > {}",
            head - 3
        )],
    )
    .await;
    assert_eq!(first_problem(&s).await, (head - 2, "truncated".into()));
    // Rewinding the head row to the new end does not help: the signed checkpoint remembers.
    let new_end = s
        .app
        .store
        .audit_page(head - 4, 1)
        .await
        .expect("read")
        .pop()
        .expect("entry");
    exec(
        &s.db,
        &[&format!(
            "UPDATE audit_head SET seq = {}, hash = '{}' WHERE id = 1",
            new_end.seq, new_end.hash
        )],
    )
    .await;
    assert_eq!(first_problem(&s).await, (head - 2, "truncated".into()));
}

fn verify_file(text: &str, key: &sluice_audit::AuditVerifier) -> sluice_audit::VerifyReport {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("export.jsonl");
    std::fs::write(&path, text).expect("write export");
    let f = std::fs::File::open(&path).expect("open export");
    let (entries, checkpoints) =
        sluice_audit::read_export(std::io::BufReader::new(f)).expect("readable export");
    sluice_audit::verify(&entries, &checkpoints, Some(key), None)
}

fn entry_line(lines: &[String], seq: i64) -> usize {
    lines
        .iter()
        .position(|l| {
            let v: Value = serde_json::from_str(l).expect("json line");
            v["type"] == "entry" && v["seq"] == seq
        })
        .expect("line of that entry")
}

async fn an_export_verifies_offline_and_an_edited_line_is_located(b: Backend) {
    let s = server!(b);
    let head = trail(&s).await;
    let resp = s
        .http
        .get(s.url("/v1/audit/export"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("export");
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.expect("body");
    let key = s.app.signer.verifying_key();

    let clean = verify_file(&text, &key);
    assert!(clean.ok(), "{:?}", clean.problems);
    assert_eq!(clean.entries, u64::try_from(head).expect("positive"));
    assert!(clean.checkpoints_verified >= 1);

    let lines: Vec<String> = text.lines().map(str::to_owned).collect();

    // One value changed on one line.
    let mut edited = lines.clone();
    let i = entry_line(&edited, 12);
    let mut v: Value = serde_json::from_str(&edited[i]).expect("json");
    v["actor"] = Value::String("someone-else".into());
    edited[i] = v.to_string();
    let r = verify_file(&edited.join("\n"), &key);
    let p = r.first_problem().expect("detected");
    assert_eq!(
        (p.seq, p.kind),
        (12, sluice_audit::ProblemKind::HashMismatch),
        "{:?}",
        r.problems
    );

    // Two lines swapped: out of order, at the smaller sequence number.
    let mut swapped = lines.clone();
    let (a, z) = (entry_line(&swapped, 8), entry_line(&swapped, 9));
    swapped.swap(a, z);
    let r = verify_file(&swapped.join("\n"), &key);
    let p = r.first_problem().expect("detected");
    assert_eq!(
        (p.seq, p.kind),
        (8, sluice_audit::ProblemKind::OutOfOrder),
        "{:?}",
        r.problems
    );

    // The last entries cut off: the final signed checkpoint exposes it.
    let cut: Vec<String> = lines
        .iter()
        .filter(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            !(v["type"] == "entry" && v["seq"].as_i64().is_some_and(|q| q > head - 2))
        })
        .cloned()
        .collect();
    let r = verify_file(&cut.join("\n"), &key);
    let p = r.first_problem().expect("detected");
    assert_eq!(
        (p.seq, p.kind),
        (head - 1, sluice_audit::ProblemKind::Truncated),
        "{:?}",
        r.problems
    );

    // Someone else's key proves nothing.
    let other = sluice_audit::AuditSigner::generate().verifying_key();
    let r = verify_file(&text, &other);
    assert!(!r.ok() && r.checkpoints_verified == 0, "{:?}", r.problems);
}

/// A trail of several pages (the server reads and exports it 1,000 rows at a time), with
/// checkpoints on either side of the page boundaries: the streamed export verifies, each
/// checkpoint line follows the entry it signs, and the paged live verification still
/// locates an edit deep in the chain.
async fn a_trail_of_several_pages_streams_and_still_locates_an_edit(b: Backend) {
    let s = server!(b);
    trail(&s).await;
    for _ in 0..3 {
        let mut tx = s.app.store.begin().await.expect("begin");
        for i in 0..800 {
            tx.audit(
                s.clock_now(),
                sluice_audit::NewEntry::new("alice", "bench.note")
                    .details(serde_json::json!({"i": i, "\u{fb33}": 1, "\u{1f600}": 0.5})),
            )
            .await
            .expect("audit");
        }
        tx.commit().await.expect("commit");
        sluice_server::audit::checkpoint(&s.app)
            .await
            .expect("checkpoint")
            .expect("the head moved");
    }
    let head = s.app.store.audit_head().await.expect("head").seq;
    assert!(head > 2_400, "{head}");

    let resp = s
        .http
        .get(s.url("/v1/audit/export"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("export");
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.expect("body");
    let key = s.app.signer.verifying_key();
    let report = sluice_audit::verify_export(std::io::Cursor::new(&text), Some(&key))
        .expect("readable export");
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.entries, u64::try_from(head).expect("positive"));
    // The export carries the closing checkpoint only (and those at key rotations): the
    // intermediate ones stay in the store, so lines cut off an export's end show.
    assert_eq!(report.checkpoints_verified, 1);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    for (i, line) in lines.iter().enumerate() {
        if line["type"] == "checkpoint" {
            let before = &lines[i - 1];
            assert_eq!(before["seq"], line["seq"], "a checkpoint follows its entry");
        }
    }
    assert_eq!(lines.last().expect("lines")["type"], "checkpoint");
    assert_eq!(lines.last().expect("lines")["seq"], head);

    assert_eq!(s.verify().await["ok"], true);
    exec(
        &s.db,
        &["UPDATE audit_entries SET actor = 'mallory' WHERE seq = 1500"],
    )
    .await;
    assert_eq!(first_problem(&s).await, (1500, "hash_mismatch".into()));
}

backend_tests!(
    a_trail_of_several_pages_streams_and_still_locates_an_edit,
    an_edited_entry_is_a_hash_mismatch_at_its_seq,
    a_deleted_entry_is_a_gap,
    swapped_entries_are_located_at_the_first,
    a_cut_tail_is_truncation_even_with_the_head_row_rewound,
    an_export_verifies_offline_and_an_edited_line_is_located,
);
