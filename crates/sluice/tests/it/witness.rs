//! The witness file: `sluice serve --witness-file` appends every checkpoint, and
//! `sluice audit verify --witness` finds a live trail cut below the witness's newest one —
//! entries, head row and checkpoints removed together, which the database alone cannot show.

use crate::harness::{Serve, ADMIN_TOKEN};
use std::time::{Duration, Instant};

/// The newest `seq` in the witness file, once it has reached `at_least` (within 10 s).
async fn witnessed(path: &std::path::Path, at_least: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let newest = std::fs::File::open(path)
            .ok()
            .and_then(|f| sluice_audit::read_witness(std::io::BufReader::new(f)).ok())
            .flatten()
            .map_or(0, |c| c.seq);
        if newest >= at_least {
            return newest;
        }
        assert!(
            Instant::now() < deadline,
            "the witness reached {newest}, not {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_with_the_witness_finds_a_tail_cut_with_its_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let witness = elsewhere.path().join("witness.jsonl");
    let w = witness.to_str().expect("utf-8").to_owned();
    let s = Serve::start_with(d, &["--witness-file", &w]).await;
    for i in 0..3 {
        s.ok(
            Some(ADMIN_TOKEN),
            &["tokens", "create", "--name", &format!("a{i}")],
        )
        .await;
    }
    let v = s.json(Some(ADMIN_TOKEN), &["audit", "verify"]).await;
    let kept = v["head_seq"].as_i64().expect("head");
    witnessed(&witness, kept).await;
    for i in 0..3 {
        s.ok(
            Some(ADMIN_TOKEN),
            &["tokens", "create", "--name", &format!("b{i}")],
        )
        .await;
    }
    let v = s.json(Some(ADMIN_TOKEN), &["audit", "verify"]).await;
    let head = v["head_seq"].as_i64().expect("head");
    let newest = witnessed(&witness, head).await;
    let out = s
        .ok(Some(ADMIN_TOKEN), &["audit", "verify", "--witness", &w])
        .await;
    assert!(
        out.contains(&format!(
            "the witness's newest checkpoint (seq {newest}) is held"
        )),
        "{out}"
    );
    assert!(out.contains("unsigned tail: 0 entries"), "{out}");

    // Someone with the database file removes the newest entries, their checkpoints and the
    // head row's memory of them.
    let db = format!("sqlite://{}", d.join("sluice.db").display());
    let pool = sqlx::SqlitePool::connect(&db)
        .await
        .expect("open the database");
    let hash: String = sqlx::query_scalar("SELECT hash FROM audit_entries WHERE seq = ?")
        .bind(kept)
        .fetch_one(&pool)
        .await
        .expect("entry");
    for sql in [
        format!("DELETE FROM audit_entries WHERE seq > {kept}"),
        format!("DELETE FROM audit_checkpoints WHERE seq > {kept}"),
        format!("UPDATE audit_head SET seq = {kept}, hash = '{hash}' WHERE id = 1"),
    ] {
        sqlx::query(&sql).execute(&pool).await.expect("tamper");
    }
    pool.close().await;

    // The database alone: a whole trail, signed to its end.
    let out = s.ok(Some(ADMIN_TOKEN), &["audit", "verify"]).await;
    assert!(out.starts_with("ok:"), "{out}");
    // Against the witness: cut.
    let r = s
        .cli(Some(ADMIN_TOKEN), &["audit", "verify", "--witness", &w])
        .await;
    assert!(!r.success, "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("seq {}: truncated", kept + 1)),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("witness"), "{}", r.stdout);
}
