//! `sluice store copy`: a SQLite installation with thousands of audit entries moves to
//! PostgreSQL, and the target verifies and keeps working.

use crate::harness::{get_json, offline, pg_url, post_json, Serve, ADMIN_TOKEN, POLICY};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_installation_copies_to_postgres_and_verifies() {
    let Some(target) = pg_url().await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    let http = reqwest::Client::new();
    s.apply_policy(&http, POLICY).await;
    let dave = s.api_token(&http, "dave").await;
    let bob = s.api_token(&http, "bob").await;
    let body = json!({"entitlement": "orders-db-read", "duration": "2h", "reason": "copy"});
    let (st, v) = post_json(&http, &s.url("/v1/requests"), &dave, &body).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().expect("id").to_owned();
    let (st, _) = post_json(
        &http,
        &s.url(&format!("/v1/requests/{id}/approve")),
        &bob,
        &json!({}),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    // Three thousand audited decisions, a thousand per call.
    let one = json!({"subject": {"type": "user", "id": "carol"}, "action": {"name": "read"}, "resource": {"type": "db", "id": "orders"}});
    let batch = json!({"evaluations": vec![one; 1000]});
    for _ in 0..3 {
        let (st, v) = post_json(&http, &s.url("/access/v1/evaluations"), ADMIN_TOKEN, &batch).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(v["evaluations"].as_array().map(Vec::len), Some(1000));
    }
    let n = s.verify_gap_free(&http).await;
    assert!(n > 3000, "{n} entries");
    s.kill().await;

    let from = format!("sqlite://{}", dir.path().join("sluice.db").display());
    let r = offline(
        &["store", "copy", "--from", &from, "--to", &target],
        dir.path(),
    )
    .await;
    assert!(r.success, "copy failed:\n{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("audit_entries"), "{}", r.stdout);
    // A second copy into the now non-empty target is refused.
    let again = offline(
        &["store", "copy", "--from", &from, "--to", &target],
        dir.path(),
    )
    .await;
    assert!(!again.success, "a copy into a non-empty target must fail");

    let dir2 = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("audit-signing.pem");
    let key = key.display().to_string();
    let t = Serve::start_with(
        dir2.path(),
        &["--database-url", &target, "--signing-key", &key],
    )
    .await;
    let m = t.verify_gap_free(&http).await;
    assert_eq!(m, n + 1, "every entry plus `store.copied`");
    let last = t.audit_entries(&http, Some("store.")).await;
    assert_eq!(
        last.last().map(|e| e["action"].clone()),
        Some(json!("store.copied"))
    );
    let out = t.ok(Some(ADMIN_TOKEN), &["audit", "verify"]).await;
    assert!(out.starts_with("ok:"), "{out}");

    // Grants and tokens still work.
    let (st, who) = get_json(&http, &t.url("/v1/whoami"), &dave).await;
    assert_eq!((st, who["name"].as_str()), (StatusCode::OK, Some("dave")));
    let q = json!({"subject": {"type": "user", "id": "dave"}, "action": {"name": "read"}, "resource": {"type": "db", "id": "orders"}});
    let (st, v) = post_json(&http, &t.url("/access/v1/evaluation"), ADMIN_TOKEN, &q).await;
    assert_eq!(
        (st, v["decision"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{v}"
    );
    let (st, v) = get_json(&http, &t.url(&format!("/v1/requests/{id}")), &bob).await;
    assert_eq!((st, v["status"].as_str()), (StatusCode::OK, Some("active")));
    // And the target takes new writes.
    let (st, v) = post_json(&http, &t.url("/v1/requests"), &dave, &body).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    t.verify_gap_free(&http).await;
}
