//! `copy_into`: everything, exactly, into an empty store only.

use crate::{activated, entry, pending, postgres, sqlite, t0, vote, TestDb};
use chrono::TimeDelta;
use serde_json::json;
use sluice_store::{Checkpoint, PrincipalRow, Store, StoreError, TokenRow};
use sqlx::any::AnyRow;
use sqlx::Row;

/// Every table, every column, typed as the migrations declare them.
const TABLES: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "principals",
        "name",
        &["name", "kind", "source"],
        &["admin", "created_at"],
    ),
    (
        "tokens",
        "id",
        &["id", "principal", "kind", "environment", "name", "hash"],
        &["created_at", "expires_at", "revoked_at"],
    ),
    (
        "policies",
        "version",
        &["hash", "source", "applied_by"],
        &["version", "applied_at"],
    ),
    (
        "requests",
        "id",
        &["id", "requester", "entitlement", "status", "body"],
        &["needs_review", "created_at", "pending_until", "expires_at"],
    ),
    (
        "votes",
        "request_id, approver",
        &["request_id", "approver"],
        &["approve", "at"],
    ),
    (
        "audit_entries",
        "seq",
        &[
            "actor",
            "action",
            "resource",
            "subject_id",
            "details",
            "prev_hash",
            "hash",
        ],
        &["seq", "at"],
    ),
    (
        "audit_checkpoints",
        "seq",
        &["hash", "key_id", "signature"],
        &["seq", "at"],
    ),
    ("audit_head", "id", &["hash"], &["id", "seq"]),
    (
        "sluice_state",
        "id",
        &[],
        &["id", "access_rev", "flags_rev"],
    ),
    (
        "flag_environments",
        "name",
        &["name", "document", "updated_by"],
        &["revision", "updated_at"],
    ),
    (
        "flags",
        "environment, key",
        &["environment", "key", "definition", "updated_by"],
        &["position", "revision", "updated_at"],
    ),
];

/// The whole database as text, table by table, rows in key order.
async fn dump(url: &str) -> Vec<(String, Vec<Vec<String>>)> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("connect");
    let mut out = Vec::new();
    for (table, key, texts, ints) in TABLES {
        let cols: Vec<&str> = texts.iter().chain(ints.iter()).copied().collect();
        let sql = format!("SELECT {} FROM {table} ORDER BY {key}", cols.join(", "));
        let rows: Vec<AnyRow> = sqlx::query(&sql).fetch_all(&pool).await.expect("select");
        let mut dumped = Vec::new();
        for row in &rows {
            let mut cells = Vec::new();
            for c in texts.iter() {
                let v: Option<String> = row.try_get(*c).expect("text column");
                cells.push(format!("{c}={v:?}"));
            }
            for c in ints.iter() {
                let v: Option<i64> = row.try_get(*c).expect("int column");
                cells.push(format!("{c}={v:?}"));
            }
            dumped.push(cells);
        }
        out.push(((*table).to_owned(), dumped));
    }
    pool.close().await;
    out
}

/// A small installation touching every table.
async fn populate(store: &Store) {
    let mut tx = store.begin().await.expect("begin");
    for (name, admin) in [("admin", true), ("dave", false), ("bob", false)] {
        let p = PrincipalRow {
            name: name.into(),
            kind: "user".into(),
            admin,
            source: "policy".into(),
        };
        tx.upsert_principal(&p, t0()).await.expect("principal");
    }
    let token = TokenRow {
        id: "tok-1".into(),
        principal: "dave".into(),
        kind: "client".into(),
        environment: Some("production".into()),
        name: "web".into(),
        created_at: t0(),
        expires_at: Some(t0() + TimeDelta::days(90)),
        revoked_at: None,
        context: None,
        database: None,
    };
    tx.insert_token(&token, "hash-1").await.expect("token");
    tx.insert_policy("phash", "users: [dave, bob]\n", "admin", t0())
        .await
        .expect("policy");
    tx.bump_access().await.expect("bump");
    tx.audit(t0(), entry("policy.applied"))
        .await
        .expect("audit");
    tx.commit().await.expect("commit");

    for i in 0..20 {
        let at = t0() + TimeDelta::seconds(i);
        let mut tx = store.begin().await.expect("begin");
        let r = pending(&format!("req-{i:02}"), "dave", at);
        tx.insert_request(&r).await.expect("insert");
        tx.audit(at, entry("access.requested").subject_id(&r.id))
            .await
            .expect("audit");
        if i % 2 == 0 {
            let r = activated(r, "bob", at);
            tx.insert_vote(&r.id, &vote("bob", at)).await.expect("vote");
            tx.update_request(&r).await.expect("update");
            tx.audit(at, entry("access.granted").subject_id(&r.id))
                .await
                .expect("audit");
            tx.bump_access().await.expect("bump");
        }
        tx.commit().await.expect("commit");
    }
    let mut tx = store.begin().await.expect("begin");
    let flags = vec![(
        "checkout-v2".to_owned(),
        json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}),
    )];
    tx.replace_flag_set(
        "production",
        &json!({"metadata": {}}),
        &flags,
        "admin",
        t0(),
    )
    .await
    .expect("flags");
    tx.audit(t0(), entry("flags.imported"))
        .await
        .expect("audit");
    tx.commit().await.expect("commit");
    let head = store.audit_head().await.expect("head");
    store
        .insert_checkpoint(&Checkpoint {
            seq: head.seq,
            hash: head.hash.clone(),
            at: t0(),
            key_id: "0011223344556677".into(),
            signature: "c2lnbmF0dXJl".into(),
        })
        .await
        .expect("checkpoint");
}

async fn copies_exactly(from: TestDb, to: TestDb) {
    let source = from.open().await;
    populate(&source).await;
    let target = to.open().await;
    let report = source.copy_into(&target).await.expect("copy");
    let rows: u64 = report.rows.iter().map(|(_, n)| n).sum();
    assert!(rows > 40, "{report:?}");
    assert_eq!(
        dump(&from.url).await,
        dump(&to.url).await,
        "{:?} → {:?}",
        from.backend,
        to.backend
    );
    assert_eq!(
        source.audit_head().await.expect("head"),
        target.audit_head().await.expect("head")
    );
    assert_eq!(
        source.state_revs().await.expect("revs"),
        target.state_revs().await.expect("revs")
    );
    let entries = target.audit_all().await.expect("audit");
    let head = target.audit_head().await.expect("head");
    assert!(sluice_audit::verify(&entries, &[], None, Some(&head)).ok());
    // The target continues the chain.
    let mut tx = target.begin().await.expect("begin");
    tx.audit(t0(), entry("store.copied")).await.expect("audit");
    let next = tx.commit().await.expect("commit");
    assert_eq!(next[0].seq, head.seq + 1);
    assert_eq!(next[0].prev_hash, head.hash);

    // A non-empty target is refused, and left as it was.
    let before = dump(&to.url).await;
    let err = source
        .copy_into(&target)
        .await
        .expect_err("non-empty target");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    // The message reads as a sentence, not "… not empty already exists".
    let msg = err.to_string();
    assert!(
        msg.starts_with("the target store is not empty (") && !msg.contains("already exists"),
        "{msg}"
    );
    assert_eq!(dump(&to.url).await, before);
    // So is one that only has principals (no audit entries yet).
    let third = sqlite();
    let third_store = third.open().await;
    let mut tx = third_store.begin().await.expect("begin");
    tx.upsert_principal(
        &PrincipalRow {
            name: "x".into(),
            kind: "user".into(),
            admin: false,
            source: "policy".into(),
        },
        t0(),
    )
    .await
    .expect("principal");
    tx.audit(t0(), entry("test.principal"))
        .await
        .expect("audit");
    tx.commit().await.expect("commit");
    assert!(matches!(
        source.copy_into(&third_store).await,
        Err(StoreError::Conflict(_))
    ));
    source.close().await;
    target.close().await;
    third_store.close().await;
}

#[tokio::test]
async fn copy_sqlite_to_sqlite() {
    copies_exactly(sqlite(), sqlite()).await;
}

#[tokio::test]
async fn copy_sqlite_to_postgres() {
    if let Some(pg) = postgres().await {
        copies_exactly(sqlite(), pg).await;
    }
}

#[tokio::test]
async fn copy_postgres_to_sqlite() {
    if let Some(pg) = postgres().await {
        copies_exactly(pg, sqlite()).await;
    }
}
