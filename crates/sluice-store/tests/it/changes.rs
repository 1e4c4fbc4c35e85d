//! The record of what each access revision moved (`access_changes`): an instance behind by
//! grants alone reads those requests, and anything else, or a missing record, sends it back
//! to a whole reload.

use crate::{activated, backends, entry, pending, t0};
use sluice_store::Store;
use std::sync::Arc;

/// Writes `req` (inserted, or updated when `update`) as one audited change that moved its
/// grant; returns the revision it took.
async fn grant(store: &Store, req: &sluice_core::access::AccessRequest, update: bool) -> i64 {
    let mut tx = store.begin().await.expect("begin");
    if update {
        tx.update_request(req).await.expect("update");
    } else {
        tx.insert_request(req).await.expect("insert");
    }
    let rev = tx.bump_grant(&req.id).await.expect("bump");
    tx.audit(t0(), entry(&format!("test.{}", req.id)))
        .await
        .expect("audit");
    tx.commit().await.expect("commit");
    rev.get()
}

/// The requests read, by id (the order they are read in is not the point: each is applied
/// as it stands).
fn ids(changes: &sluice_store::GrantChanges) -> Vec<(&str, &str)> {
    let mut ids: Vec<(&str, &str)> = changes
        .requests
        .iter()
        .map(|r: &Arc<_>| (r.id.as_str(), r.status.as_str()))
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn an_instance_behind_by_grants_alone_reads_only_those_requests() {
    for db in backends().await {
        let store = db.open().await;
        let at = t0();
        let r1 = activated(pending("req-1", "dave", at), "erin", at);
        assert_eq!(grant(&store, &r1, false).await, 1);
        let r2 = pending("req-2", "dave", at);
        assert_eq!(grant(&store, &r2, false).await, 2);
        let r2 = activated(r2, "erin", at);
        assert_eq!(grant(&store, &r2, true).await, 3);

        let all = store
            .access_changes_since(0)
            .await
            .expect("read")
            .expect("grants alone");
        assert_eq!(all.rev, 3);
        // Each request once, as it stands now.
        assert_eq!(ids(&all), [("req-1", "active"), ("req-2", "active")]);
        let last = store
            .access_changes_since(2)
            .await
            .expect("read")
            .expect("grants alone");
        assert_eq!((last.rev, ids(&last)), (3, vec![("req-2", "active")]));
        let none = store.access_changes_since(3).await.expect("read");
        assert_eq!(none.map(|c| (c.rev, c.requests.len())), Some((3, 0)));

        // Something other than a grant: whoever is behind it reloads whole.
        let mut tx = store.begin().await.expect("begin");
        tx.bump_access().await.expect("bump");
        tx.audit(t0(), entry("test.policy")).await.expect("audit");
        tx.commit().await.expect("commit");
        assert!(store.access_changes_since(2).await.expect("read").is_none());
        assert_eq!(
            store
                .access_changes_since(4)
                .await
                .expect("read")
                .map(|c| c.rev),
            Some(4)
        );

        // Grants again after it: read alone by whoever is past it.
        let mut r1 = r1;
        r1.status = sluice_core::access::RequestStatus::Revoked;
        assert_eq!(grant(&store, &r1, true).await, 5);
        let after = store
            .access_changes_since(4)
            .await
            .expect("read")
            .expect("grants alone");
        assert_eq!((after.rev, ids(&after)), (5, vec![("req-1", "revoked")]));

        // A revision without its record (pruned, or taken before the record existed): a
        // whole reload for whoever is behind it, never a snapshot missing a change.
        let pool = sqlx::AnyPool::connect(&db.url).await.expect("connect");
        sqlx::query("DELETE FROM access_changes WHERE rev = 5")
            .execute(&pool)
            .await
            .expect("a record pruned");
        pool.close().await;
        assert!(store.access_changes_since(4).await.expect("read").is_none());
        assert_eq!(grant(&store, &r2, true).await, 6);
        assert!(store.access_changes_since(3).await.expect("read").is_none());
        let last = store
            .access_changes_since(5)
            .await
            .expect("read")
            .expect("grants alone");
        assert_eq!((last.rev, ids(&last)), (6, vec![("req-2", "active")]));
        // Nothing is this far behind here: nothing to prune.
        assert_eq!(store.prune_access_changes().await.expect("prune"), 0);

        // 10,010 revisions on: the records more than 10,000 behind (revisions 1 to 10) go;
        // whoever is behind them reloads whole.
        let pool = sqlx::AnyPool::connect(&db.url).await.expect("connect");
        sqlx::query(
            "INSERT INTO access_changes (rev, request_id) \
             WITH RECURSIVE n(x) AS (SELECT 7 UNION ALL SELECT x + 1 FROM n WHERE x < 10010) \
             SELECT x, NULL FROM n",
        )
        .execute(&pool)
        .await
        .expect("later records");
        sqlx::query("UPDATE sluice_state SET access_rev = 10010 WHERE id = 1")
            .execute(&pool)
            .await
            .expect("later revision");
        pool.close().await;
        // Revisions 1 to 10 less the one deleted by hand above.
        assert_eq!(store.prune_access_changes().await.expect("prune"), 9);
        assert_eq!(store.prune_access_changes().await.expect("prune"), 0);
        assert!(store
            .access_changes_since(9_500)
            .await
            .expect("read")
            .is_none());
        store.close().await;
    }
}
