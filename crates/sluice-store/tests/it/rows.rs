//! Requests, votes, lapses, tokens, flags and change counters: the same answers on every
//! backend.

use crate::{activated, backends, entry, pending, t0, vote};
use chrono::TimeDelta;
use serde_json::json;
use sluice_core::access::RequestStatus;
use sluice_store::{PrincipalRow, Store, StoreError, TokenRow};

async fn commit_with<F>(store: &Store, f: F)
where
    F: AsyncFnOnce(&mut sluice_store::WriteTx),
{
    let mut tx = store.begin().await.expect("begin");
    f(&mut tx).await;
    tx.audit(t0(), entry("test.write")).await.expect("audit");
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn requests_insert_lock_update_round_trip() {
    for db in backends().await {
        let store = db.open().await;
        let r = pending("req-1", "dave", t0());
        commit_with(&store, async |tx| {
            tx.insert_request(&r).await.expect("insert")
        })
        .await;
        assert_eq!(store.request("req-1").await.expect("read"), Some(r.clone()));
        assert!(store.request("req-none").await.expect("read").is_none());

        let at = t0() + TimeDelta::minutes(5);
        let mut tx = store.begin().await.expect("begin");
        let locked = tx
            .lock_request("req-1")
            .await
            .expect("lock")
            .expect("exists");
        assert_eq!(locked, r, "{:?}", db.backend);
        assert!(tx.lock_request("req-none").await.expect("lock").is_none());
        let active = activated(locked, "bob", at);
        tx.insert_vote("req-1", &active.votes[0])
            .await
            .expect("vote");
        tx.update_request(&active).await.expect("update");
        tx.audit(at, entry("access.granted")).await.expect("audit");
        tx.commit().await.expect("commit");

        assert_eq!(
            store.request("req-1").await.expect("read"),
            Some(active.clone())
        );
        assert_eq!(
            store.active_requests().await.expect("active"),
            vec![active.clone()]
        );
        let filter = sluice_store::RequestFilter {
            status: Some(RequestStatus::Active),
            ..Default::default()
        };
        assert_eq!(store.requests(&filter).await.expect("list"), vec![active]);
        let filter = sluice_store::RequestFilter {
            status: Some(RequestStatus::Pending),
            ..Default::default()
        };
        assert!(store.requests(&filter).await.expect("list").is_empty());
        store.close().await;
    }
}

#[tokio::test]
async fn a_second_vote_by_one_approver_is_refused_by_the_key() {
    for db in backends().await {
        let store = db.open().await;
        let r = pending("req-v", "dave", t0());
        commit_with(&store, async |tx| {
            tx.insert_request(&r).await.expect("insert");
            tx.insert_vote("req-v", &vote("bob", t0()))
                .await
                .expect("vote");
        })
        .await;
        // Refused when the statement runs: at once on PostgreSQL, with the commit on SQLite.
        let mut tx = store.begin().await.expect("begin");
        let second = tx
            .insert_vote("req-v", &vote("bob", t0() + TimeDelta::seconds(1)))
            .await;
        let err = match second {
            Err(e) => {
                // The failed transaction still holds the chain head (PostgreSQL): end it.
                drop(tx);
                e
            }
            Ok(()) => {
                tx.audit(t0(), entry("test.vote")).await.expect("audit");
                tx.commit().await.expect_err("second vote")
            }
        };
        assert!(
            matches!(err, StoreError::Conflict(_)),
            "{:?}: {err:?}",
            db.backend
        );
        assert_eq!(
            store.audit_head().await.expect("head").seq,
            1,
            "{:?}: the refused vote left no entry",
            db.backend
        );
        // Another approver may still vote.
        commit_with(&store, async |tx| {
            tx.insert_vote("req-v", &vote("carol", t0()))
                .await
                .expect("vote");
        })
        .await;
        store.close().await;
    }
}

#[tokio::test]
async fn lapsed_request_ids_are_exactly_the_due_ones() {
    for db in backends().await {
        let store = db.open().await;
        let now = t0() + TimeDelta::hours(2);
        // Pending past its time-out: due.
        let old_pending = pending("req-a-old-pending", "dave", t0());
        // Pending, not yet timed out.
        let fresh_pending = pending("req-b-fresh-pending", "dave", now - TimeDelta::minutes(1));
        // Pending exactly at its time-out: due (the window is half-open).
        let edge_pending = pending("req-c-edge", "dave", now - TimeDelta::hours(1));
        // Active and expired (1 h grant from t0).
        let expired = activated(pending("req-d-expired", "dave", t0()), "bob", t0());
        // Active, not expired.
        let live = activated(
            pending("req-e-live", "dave", now - TimeDelta::minutes(10)),
            "bob",
            now - TimeDelta::minutes(10),
        );
        let mut ended = activated(pending("req-f-ended", "dave", t0()), "bob", t0());
        ended.status = RequestStatus::Revoked;
        commit_with(&store, async |tx| {
            for r in [
                &old_pending,
                &fresh_pending,
                &edge_pending,
                &expired,
                &live,
                &ended,
            ] {
                tx.insert_request(r).await.expect("insert");
            }
        })
        .await;
        let ids = store.lapsed_request_ids(now, 100).await.expect("lapsed");
        assert_eq!(
            ids,
            vec!["req-a-old-pending", "req-c-edge", "req-d-expired"],
            "{:?}",
            db.backend
        );
        assert_eq!(
            store
                .lapsed_request_ids(now, 1)
                .await
                .expect("lapsed")
                .len(),
            1
        );
        assert!(store
            .lapsed_request_ids(t0(), 100)
            .await
            .expect("lapsed")
            .is_empty());
        store.close().await;
    }
}

fn token_row(id: &str, principal: &str, expires_in: Option<TimeDelta>) -> TokenRow {
    TokenRow {
        id: id.into(),
        principal: principal.into(),
        kind: "api".into(),
        environment: None,
        name: id.into(),
        created_at: t0(),
        expires_at: expires_in.map(|d| t0() + d),
        revoked_at: None,
        context: None,
        database: None,
    }
}

#[tokio::test]
async fn tokens_by_hash_honour_revocation_and_expiry() {
    for db in backends().await {
        let store = db.open().await;
        let dave = PrincipalRow {
            name: "dave".into(),
            kind: "user".into(),
            admin: false,
            source: "policy".into(),
        };
        let (live, revoked, expiring) = (
            token_row("tok-live", "dave", None),
            token_row("tok-revoked", "dave", None),
            token_row("tok-expiring", "dave", Some(TimeDelta::minutes(30))),
        );
        commit_with(&store, async |tx| {
            tx.upsert_principal(&dave, t0()).await.expect("principal");
            tx.insert_token(&live, "h-live").await.expect("token");
            tx.insert_token(&revoked, "h-revoked").await.expect("token");
            tx.insert_token(&expiring, "h-expiring")
                .await
                .expect("token");
        })
        .await;
        let now = t0() + TimeDelta::minutes(1);
        commit_with(&store, async |tx| {
            assert!(tx.revoke_token("tok-revoked", now).await.expect("revoke"));
            assert!(
                !tx.revoke_token("tok-revoked", now).await.expect("revoke"),
                "only once"
            );
            assert!(!tx.revoke_token("tok-none", now).await.expect("revoke"));
        })
        .await;
        let (row, p) = store
            .token_by_hash("h-live", now)
            .await
            .expect("read")
            .expect("live");
        assert_eq!((row, p), (live, dave.clone()), "{:?}", db.backend);
        assert!(store
            .token_by_hash("h-revoked", now)
            .await
            .expect("read")
            .is_none());
        assert!(store
            .token_by_hash("h-none", now)
            .await
            .expect("read")
            .is_none());
        let before = t0() + TimeDelta::minutes(29);
        let at = t0() + TimeDelta::minutes(30);
        assert!(store
            .token_by_hash("h-expiring", before)
            .await
            .expect("read")
            .is_some());
        assert!(
            store
                .token_by_hash("h-expiring", at)
                .await
                .expect("read")
                .is_none(),
            "at expiry"
        );
        let stored = store
            .token("tok-revoked")
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(stored.revoked_at, Some(now));
        assert_eq!(store.tokens(Some("dave")).await.expect("list").len(), 3);
        // A duplicate hash is a conflict.
        let mut tx = store.begin().await.expect("begin");
        let err = tx
            .insert_token(&token_row("tok-dup", "dave", None), "h-live")
            .await
            .expect_err("duplicate hash");
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        drop(tx);
        store.close().await;
    }
}

#[tokio::test]
async fn flag_set_replace_keeps_unchanged_revisions() {
    for db in backends().await {
        let store = db.open().await;
        let def = |v: &str| json!({"state": "ENABLED", "variants": {"on": v, "off": "x"}, "defaultVariant": "on"});
        let doc = json!({"metadata": {"team": "checkout"}});
        let first = vec![("a".to_owned(), def("1")), ("b".to_owned(), def("1"))];
        commit_with(&store, async |tx| {
            let rev = tx
                .replace_flag_set("production", &doc, &first, "admin", t0())
                .await
                .expect("replace");
            assert_eq!(rev, 1);
        })
        .await;
        let second = vec![
            ("c".to_owned(), def("1")),
            ("a".to_owned(), def("1")),
            ("b".to_owned(), def("2")),
        ];
        let later = t0() + TimeDelta::minutes(1);
        commit_with(&store, async |tx| {
            let rev = tx
                .replace_flag_set("production", &doc, &second, "alice", later)
                .await
                .expect("replace");
            assert_eq!(rev, 2);
        })
        .await;
        let set = store
            .flag_set("production")
            .await
            .expect("read")
            .expect("set");
        assert_eq!(set.revision, 2);
        assert_eq!(set.document, doc);
        assert_eq!(set.updated_by, "alice");
        assert_eq!(set.updated_at, later);
        let got: Vec<(&str, i64)> = set
            .flags
            .iter()
            .map(|f| (f.key.as_str(), f.revision))
            .collect();
        assert_eq!(
            got,
            vec![("c", 1), ("a", 1), ("b", 2)],
            "{:?}: order and revisions",
            db.backend
        );
        assert_eq!(set.flags[2].definition, def("2"));
        // One flag with the set-level parts, read through a transaction.
        let mut tx = store.begin().await.expect("begin");
        let (parts, flag) = tx
            .flag_in("production", "b")
            .await
            .expect("read")
            .expect("environment");
        assert_eq!(parts, doc);
        let flag = flag.expect("flag b");
        assert_eq!((flag.key.as_str(), flag.revision), ("b", 2));
        assert_eq!(flag.definition, def("2"));
        let (_, none) = tx
            .flag_in("production", "nope")
            .await
            .expect("read")
            .expect("environment");
        assert_eq!(none, None);
        assert!(tx.flag_in("staging", "a").await.expect("read").is_none());
        drop(tx);
        // Removing a flag.
        commit_with(&store, async |tx| {
            tx.replace_flag_set("production", &doc, &second[..1], "alice", later)
                .await
                .expect("replace");
        })
        .await;
        let set = store
            .flag_set("production")
            .await
            .expect("read")
            .expect("set");
        assert_eq!(set.flags.len(), 1);
        assert!(store.flag_set("staging").await.expect("read").is_none());
        assert_eq!(store.state_revs().await.expect("revs").flags, 3);
        store.close().await;
    }
}

#[tokio::test]
async fn state_counters_bump_and_only_on_commit() {
    for db in backends().await {
        let store = db.open().await;
        assert_eq!(store.state_revs().await.expect("revs"), Default::default());
        commit_with(&store, async |tx| {
            tx.bump_access().await.expect("bump");
            tx.bump_access().await.expect("bump");
            tx.bump_flags().await.expect("bump");
        })
        .await;
        {
            let mut tx = store.begin().await.expect("begin");
            tx.bump_flags().await.expect("bump");
            tx.audit(t0(), entry("test.dropped")).await.expect("audit");
        }
        let revs = store.state_revs().await.expect("revs");
        assert_eq!((revs.access, revs.flags), (2, 1), "{:?}", db.backend);
        store.close().await;
    }
}

/// The access state is read in one consistent view: while writers add active grants, each
/// bumping the access revision once, every read sees exactly as many grants as its revision
/// says — never a grant without its revision or the other way round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_access_state_is_one_consistent_view() {
    for db in backends().await {
        let store = db.open().await;
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..150 {
                    let mut tx = store.begin().await.expect("begin");
                    tx.insert_request(&activated(
                        pending(&format!("req-{i}"), "dave", t0()),
                        "bob",
                        t0(),
                    ))
                    .await
                    .expect("insert");
                    tx.bump_access().await.expect("bump");
                    tx.audit(t0(), entry("test.grant")).await.expect("audit");
                    tx.commit().await.expect("commit");
                }
            })
        };
        let mut reads = 0;
        while !writer.is_finished() || reads == 0 {
            let state = store.access_state().await.expect("state");
            assert_eq!(
                state.active.len() as i64,
                state.revs.access,
                "{:?}: grants and revision from one view",
                db.backend
            );
            reads += 1;
        }
        writer.await.expect("writer");
        let state = store.access_state().await.expect("state");
        assert_eq!((state.active.len(), state.revs.access), (150, 150));
        store.close().await;
    }
}

/// Each read of the access state sees every change since the last one — a grant extended,
/// one added, one ended — though PostgreSQL's reads fetch again only the requests whose row
/// changed, and a second handle (another instance) sees the changes of the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_state_follows_every_change_to_the_requests_it_read() {
    for db in backends().await {
        let store = db.open().await;
        let other = db.open().await;
        let write = |r: sluice_core::access::AccessRequest, new: bool| {
            let store = store.clone();
            async move {
                let mut tx = store.begin().await.expect("begin");
                if new {
                    tx.insert_request(&r).await.expect("insert");
                } else {
                    tx.update_request(&r).await.expect("update");
                }
                tx.bump_access().await.expect("bump");
                tx.audit(t0(), entry("test.grant")).await.expect("audit");
                tx.commit().await.expect("commit");
            }
        };
        let expiries = |state: &sluice_store::AccessState| {
            let mut v: Vec<(String, Option<chrono::DateTime<chrono::Utc>>)> = state
                .active
                .iter()
                .map(|r| (r.id.clone(), r.expires_at))
                .collect();
            v.sort();
            v
        };
        let a = activated(pending("req-a", "dave", t0()), "bob", t0());
        let b = activated(pending("req-b", "erin", t0()), "bob", t0());
        write(a.clone(), true).await;
        write(b.clone(), true).await;
        for s in [&store, &other] {
            let state = s.access_state().await.expect("state");
            assert_eq!(
                expiries(&state),
                vec![
                    ("req-a".into(), a.expires_at),
                    ("req-b".into(), b.expires_at)
                ],
                "{:?}",
                db.backend
            );
        }

        let mut longer = a.clone();
        longer.expires_at = a.expires_at.map(|e| e + chrono::TimeDelta::hours(2));
        write(longer.clone(), false).await;
        let c = activated(pending("req-c", "dave", t0()), "bob", t0());
        write(c.clone(), true).await;
        let mut ended = b.clone();
        ended.status = sluice_core::access::RequestStatus::Revoked;
        write(ended, false).await;
        for s in [&store, &other] {
            let state = s.access_state().await.expect("state");
            assert_eq!(
                expiries(&state),
                vec![
                    ("req-a".into(), longer.expires_at),
                    ("req-c".into(), c.expires_at)
                ],
                "{:?}",
                db.backend
            );
            assert_eq!(state.revs.access, 5, "{:?}", db.backend);
        }
        store.close().await;
        other.close().await;
    }
}

/// The reaper's read runs once a second on every instance: with many live grants it must
/// read the due rows through `requests_due`, not every active request. Each database's
/// planner is asked; PostgreSQL with sequential scans priced out, since on a handful of rows
/// it would rightly prefer one.
#[tokio::test]
async fn the_reapers_read_goes_through_its_index() {
    use sluice_store::{Backend, LAPSED_REQUESTS_SQL};
    for db in backends().await {
        let store = db.open().await;
        store.close().await;
        let plan: Vec<String> = match db.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&db.url).await.expect("connect");
                let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {LAPSED_REQUESTS_SQL}"))
                    .bind(0_i64)
                    .bind(500_i64)
                    .fetch_all(&pool)
                    .await
                    .expect("explain");
                pool.close().await;
                rows.iter()
                    .map(|r| sqlx::Row::get::<String, _>(r, "detail"))
                    .collect()
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
                let mut conn = pool.acquire().await.expect("acquire");
                sqlx::query("SET enable_seqscan = off")
                    .execute(&mut *conn)
                    .await
                    .expect("set");
                let rows = sqlx::query(&format!("EXPLAIN {LAPSED_REQUESTS_SQL}"))
                    .bind(0_i64)
                    .bind(500_i64)
                    .fetch_all(&mut *conn)
                    .await
                    .expect("explain");
                drop(conn);
                pool.close().await;
                rows.iter()
                    .map(|r| sqlx::Row::get::<String, _>(r, 0))
                    .collect()
            }
        };
        let plan = plan.join("\n");
        let expected = match db.backend {
            // A search (not a scan) of the index, on both of its columns.
            Backend::Sqlite => "SEARCH requests USING INDEX requests_due (status=? AND <expr><?)",
            Backend::Postgres => "Index Cond: ((status = ANY",
        };
        assert!(plan.contains(expected), "{:?}:\n{plan}", db.backend);
        if db.backend == Backend::Postgres {
            assert!(
                plan.contains("requests_due") && plan.contains("CASE WHEN"),
                "{plan}"
            );
        }
    }
}
