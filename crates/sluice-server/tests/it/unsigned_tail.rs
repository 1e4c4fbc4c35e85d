//! No unsigned tail: every commit is signed (and the head at start), `audit verify` reports
//! the newest signed sequence number and the unsigned tail, refuses a tail left unsigned past
//! the bound, and the witness catches what the database alone cannot show.

use crate::backend_tests;
use crate::harness::{Backend, Db, TestServer, ADMIN_TOKEN, POLICY};
use crate::sql::exec;
use chrono::TimeDelta;
use reqwest::StatusCode;
use serde_json::Value;
use sluice_server::checkpointer::AuditOptions;
use std::time::Duration;

async fn signing(b: Backend, audit: AuditOptions) -> Option<TestServer> {
    let db = Db::new(b).await?;
    let s = TestServer::start_signing(db, audit).await;
    s.apply(POLICY).await;
    Some(s)
}

/// Some audited work: `n` tokens created.
async fn work(s: &TestServer, n: usize) {
    let users = ["alice", "bob", "carol", "dave", "erin"];
    for i in 0..n {
        s.token(users[i % users.len()]).await;
    }
}

/// Waits until this instance has signed the head (the checkpointer's signal), at most 10 s.
async fn signed_head(s: &TestServer) -> i64 {
    let head = s.app.store.audit_head().await.expect("head").seq;
    let mut signed = s.app.signed_audit();
    tokio::time::timeout(Duration::from_secs(10), signed.wait_for(|&seq| seq >= head))
        .await
        .expect("the head is signed within 10 s")
        .expect("the server is running");
    head
}

async fn every_commit_is_signed_and_verify_reports_no_tail(b: Backend) {
    let Some(s) = signing(b, AuditOptions::default()).await else {
        return;
    };
    work(&s, 5).await;
    let head = signed_head(&s).await;
    let v = s.verify().await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["head_seq"], head, "{v}");
    assert_eq!(v["signed_seq"], head, "{v}");
    assert_eq!(v["unsigned_tail"], 0, "{v}");
    assert_eq!(v["unsigned_bound_secs"], 10, "{v}");
    // Not one checkpoint per commit of this sequential client, necessarily, but more than
    // the one a timer would have made.
    assert!(
        v["checkpoints_verified"].as_u64().expect("count") >= 2,
        "{v}"
    );
}

/// Entries after the last checkpoint rewritten with recomputed hashes and links, the later
/// checkpoints removed: within the bound the tail is reported but allowed (it could be a
/// commit being signed); past it, refused at the first unsigned entry.
async fn a_rewritten_unsigned_tail_is_refused_past_the_bound(b: Backend) {
    let Some(s) = signing(b, AuditOptions::default()).await else {
        return;
    };
    work(&s, 3).await;
    let kept = signed_head(&s).await;
    work(&s, 4).await;
    let head = signed_head(&s).await;
    // The attacker: no checkpoint after `kept`, entries after it rewritten consistently.
    let mut entries = s.app.store.audit_page(kept - 1, 1000).await.expect("read");
    let mut prev = entries.remove(0).hash;
    let mut sql = vec![format!("DELETE FROM audit_checkpoints WHERE seq > {kept}")];
    for mut e in entries {
        e.actor = "mallory".into();
        e.prev_hash = prev;
        e.hash = e.compute_hash();
        sql.push(format!(
            "UPDATE audit_entries SET actor = 'mallory', prev_hash = '{}', hash = '{}' WHERE seq = {}",
            e.prev_hash, e.hash, e.seq
        ));
        prev = e.hash;
    }
    sql.push(format!(
        "UPDATE audit_head SET hash = '{prev}' WHERE id = 1"
    ));
    let sql: Vec<&str> = sql.iter().map(String::as_str).collect();
    exec(&s.db, &sql).await;

    let v = s.verify().await;
    assert_eq!(v["ok"], true, "within the bound: {v}");
    assert_eq!(v["signed_seq"], kept, "{v}");
    assert_eq!(v["unsigned_tail"], head - kept, "{v}");

    s.advance(TimeDelta::seconds(11));
    let v = s.verify().await;
    assert_eq!(v["ok"], false, "past the bound: {v}");
    assert_eq!(v["problems"][0]["kind"], "unsigned_tail", "{v}");
    assert_eq!(v["problems"][0]["seq"], kept + 1, "{v}");
    assert_eq!(v["signed_seq"], kept, "{v}");
}

/// Writes left unsigned (as after a crash between a commit and its checkpoint) are signed
/// when a server starts, before it serves.
async fn a_restart_signs_the_head_before_serving(b: Backend) {
    let Some(db) = Db::new(b).await else {
        return;
    };
    let s = TestServer::start(db).await;
    s.apply(POLICY).await;
    work(&s, 3).await;
    let head = s.app.store.audit_head().await.expect("head").seq;
    let db = s.into_db().await;
    // A clean stop signs the head; the crash did not.
    exec(&db, &["DELETE FROM audit_checkpoints"]).await;
    let s = TestServer::start_signing(db, AuditOptions::default()).await;
    // The first answer comes after the start's checkpoint: nothing was written since.
    let v = s.verify().await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["signed_seq"], head, "{v}");
    assert_eq!(v["unsigned_tail"], 0, "{v}");
    let latest = s.app.store.latest_checkpoint().await.expect("read");
    assert_eq!(latest.map(|c| c.seq), Some(head));
}

/// The newest entries, the head row and the checkpoints of them deleted: the database is a
/// shorter trail, signed to its end, that nothing in it contradicts. The witness file (on
/// another volume) holds the removed head, and an export checked against it is refused.
async fn a_cut_tail_with_its_checkpoints_is_caught_by_the_witness(b: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let witness = dir.path().join("witness.jsonl");
    let audit = AuditOptions {
        witness_file: Some(witness.clone()),
        ..AuditOptions::default()
    };
    let Some(s) = signing(b, audit).await else {
        return;
    };
    work(&s, 3).await;
    let kept = signed_head(&s).await;
    work(&s, 3).await;
    let head = signed_head(&s).await;
    let newest = sluice_audit::read_witness(std::io::BufReader::new(
        std::fs::File::open(&witness).expect("witness file"),
    ))
    .expect("readable witness")
    .expect("a checkpoint");
    assert_eq!(newest.seq, head);
    assert_eq!(
        Some(&newest),
        s.app
            .store
            .latest_checkpoint()
            .await
            .expect("read")
            .as_ref()
    );

    let kept_hash = s
        .app
        .store
        .audit_entry_at(kept)
        .await
        .expect("read")
        .expect("entry")
        .hash;
    exec(
        &s.db,
        &[
            &format!("DELETE FROM audit_entries WHERE seq > {kept}"),
            &format!("DELETE FROM audit_checkpoints WHERE seq > {kept}"),
            &format!("UPDATE audit_head SET seq = {kept}, hash = '{kept_hash}' WHERE id = 1"),
        ],
    )
    .await;
    // What the database alone says: a whole, signed trail.
    let v = s.verify().await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["signed_seq"], kept, "{v}");

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
    let alone =
        sluice_audit::verify_export(std::io::Cursor::new(&text), Some(&key)).expect("readable");
    assert!(alone.ok(), "{:?}", alone.problems);
    let against = sluice_audit::verify_export_against(
        std::io::Cursor::new(&text),
        Some(&key),
        Some(&newest.head()),
    )
    .expect("readable");
    let p = against
        .first_problem()
        .expect("the witness catches the cut");
    assert_eq!(
        (p.seq, p.kind),
        (kept + 1, sluice_audit::ProblemKind::Truncated)
    );
    assert!(p.message.contains("witness"), "{}", p.message);
}

/// A witness URL receives the checkpoints as JSON, the newest at least.
async fn checkpoints_are_posted_to_the_witness_url(b: Backend) {
    use axum::routing::post;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let app = axum::Router::new().route(
        "/witness",
        post(move |axum::Json(v): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(v);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let audit = AuditOptions {
        witness_url: Some(format!("http://{addr}/witness")),
        ..AuditOptions::default()
    };
    let Some(s) = signing(b, audit).await else {
        return;
    };
    work(&s, 3).await;
    let head = signed_head(&s).await;
    let cp = s
        .app
        .store
        .latest_checkpoint()
        .await
        .expect("read")
        .expect("checkpoint");
    loop {
        let v = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a POST within 10 s")
            .expect("the witness runs");
        let got: sluice_audit::Checkpoint = serde_json::from_value(v).expect("a checkpoint");
        if got.seq == head {
            assert_eq!(got, cp);
            break;
        }
        assert!(got.seq < head, "{got:?}");
    }
}

backend_tests!(
    every_commit_is_signed_and_verify_reports_no_tail,
    a_rewritten_unsigned_tail_is_refused_past_the_bound,
    a_restart_signs_the_head_before_serving,
    a_cut_tail_with_its_checkpoints_is_caught_by_the_witness,
    checkpoints_are_posted_to_the_witness_url,
);
