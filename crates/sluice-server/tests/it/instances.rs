//! Two instances on one PostgreSQL database: what one changes, the other takes. A change of
//! grants alone is taken by reading those requests; anything else by a whole reload; either
//! way the other instance decides as the writer does.

use crate::harness::{Backend, Db, TestServer, ADMIN_TOKEN};
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

const POLICY: &str = r#"
users: [req, lead]
entitlements:
  - name: orders-read
    scopes: [{ resource: "db:orders", actions: [read] }]
    requesters: [req]
    max_duration: 1h
    approval: { required: 1, approvers: [lead] }
"#;

/// Waits (at most 5 s) until `b` decides `allowed` for `req` reading `db:orders`.
async fn until_decided(b: &TestServer, allowed: bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while b.allowed("req", "read", "db", "orders").await != allowed {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other instance still decides {}",
            !allowed
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_instance_takes_grants_alone_and_reloads_whole_for_anything_else() {
    let Some(db) = Db::new(Backend::Postgres).await else {
        return;
    };
    let a = TestServer::start(db).await;
    a.apply(POLICY).await;
    let (req, lead) = (a.token("req").await, a.token("lead").await);
    let b = TestServer::start(Db {
        url: a.db.url.clone(),
        key: a.db.key.clone(),
        _dir: tempfile::tempdir().expect("tempdir"),
    })
    .await;
    assert!(!b.allowed("req", "read", "db", "orders").await);
    let (grants, whole) = b.app.access_syncs();

    // Granted on A: B reads that request alone.
    let (st, v) = a.request(&req, "orders-read", "30m", "incident").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().expect("id").to_owned();
    let (st, v) = a
        .post(&lead, &format!("/v1/requests/{id}/approve"), json!({}))
        .await;
    assert_eq!((st, v["status"].as_str()), (StatusCode::OK, Some("active")));
    until_decided(&b, true).await;
    let after_grant = b.app.access_syncs();
    assert!(after_grant.0 > grants, "{after_grant:?}");
    assert_eq!(after_grant.1, whole, "a grant alone reloaded whole");

    // Revoked on A: refused on B, again by that request alone.
    let (st, v) = a
        .post(
            ADMIN_TOKEN,
            &format!("/v1/requests/{id}/revoke"),
            json!({"reason": "done"}),
        )
        .await;
    assert_eq!(
        (st, v["status"].as_str()),
        (StatusCode::OK, Some("revoked"))
    );
    until_decided(&b, false).await;
    let after_revoke = b.app.access_syncs();
    assert!(after_revoke.0 > after_grant.0, "{after_revoke:?}");
    assert_eq!(after_revoke.1, whole, "a revocation alone reloaded whole");

    // A token revoked on A is not a grant: B reloads whole, and the token no longer works
    // there either.
    let (st, v) = b.get(&req, "/v1/requests").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = a.get(ADMIN_TOKEN, "/v1/tokens?principal=req").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let token_id = v[0]["id"].as_str().expect("token id").to_owned();
    let (st, v) = a
        .send(
            reqwest::Method::DELETE,
            ADMIN_TOKEN,
            &format!("/v1/tokens/{token_id}"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while b.get(&req, "/v1/requests").await.0 != StatusCode::UNAUTHORIZED {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the revoked token still works on B"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(b.app.access_syncs().1 > whole, "{:?}", b.app.access_syncs());

    // And grants after it are taken alone again, with B deciding as A does (once B has
    // taken the new token, which is not a grant).
    let whole = b.app.access_syncs().1;
    let req = a.token("req").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while b.app.access_syncs().1 == whole {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B never took the new token"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (st, v) = a.request(&req, "orders-read", "30m", "again").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().expect("id").to_owned();
    let before = b.app.access_syncs();
    let (st, _) = a
        .post(&lead, &format!("/v1/requests/{id}/approve"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK);
    until_decided(&b, true).await;
    let last = b.app.access_syncs();
    assert!(last.0 > before.0, "{last:?}");
    assert!(a.allowed("req", "read", "db", "orders").await);
    assert_eq!(b.verify().await["ok"], true);
}
