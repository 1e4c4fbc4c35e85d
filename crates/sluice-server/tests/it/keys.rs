//! Instances that share a database sign with one key: when two start at once with different
//! keys (before either signed), the second one's checkpoint is refused, loudly, and the
//! trail keeps verifying.

use crate::harness::{Backend, Db, TestServer, ADMIN_TOKEN};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_by_a_second_key_on_a_shared_database_is_refused() {
    let Some(db) = Db::new(Backend::Postgres).await else {
        return;
    };
    let other_dir = tempfile::tempdir().expect("tempdir");
    let second_db = Db {
        url: db.url.clone(),
        key: other_dir.path().join("other-signing.pem"),
        _dir: other_dir,
    };
    // Both start before any checkpoint exists, each making its own key.
    let first = TestServer::start(db).await;
    let second = TestServer::start(second_db).await;
    let (k1, k2) = (
        first.app.signer.verifying_key(),
        second.app.signer.verifying_key(),
    );
    assert_ne!(k1.key_id(), k2.key_id());

    let signed = sluice_server::audit::checkpoint(&first.app)
        .await
        .expect("the first key signs");
    assert!(signed.is_some());
    first.apply(crate::harness::POLICY).await;
    let err = sluice_server::audit::checkpoint(&second.app)
        .await
        .expect_err("the second key must not sign");
    assert_eq!(err.code(), "signing_key_mismatch");
    assert!(err.to_string().contains(k1.key_id()), "{err}");
    // The same through the API: an export needs a checkpoint.
    let (st, v) = second.get(ADMIN_TOKEN, "/v1/audit/export").await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "signing_key_mismatch", "{v}");

    let (st, v) = first.get(ADMIN_TOKEN, "/v1/audit/verify").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["ok"], true, "{v}");
}
