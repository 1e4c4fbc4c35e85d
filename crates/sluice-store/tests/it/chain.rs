//! Migrations, and the audited write transaction: commit, rollback, refusal, concurrency.

use crate::{backends, entry, opening, pending, t0};
use serde_json::json;
use sluice_audit::NewEntry;
use sluice_store::{Store, StoreError};
use std::future::Future as _;

async fn count(store: &Store, table: &str) -> i64 {
    // Only through the public API where there is one; the table name is a constant here.
    match table {
        "audit_entries" => store.audit_all().await.expect("audit").len() as i64,
        "principals" => store.principal_count().await.expect("count"),
        other => panic!("no counter for {other}"),
    }
}

#[tokio::test]
async fn migrations_are_idempotent() {
    for db in backends().await {
        let first = db.open().await;
        first
            .migrate()
            .await
            .expect("migrate again on the same handle");
        let second = db.open().await;
        assert_eq!(second.backend(), db.backend);
        assert_eq!(second.audit_head().await.expect("head").seq, 0);
        assert_eq!(count(&second, "principals").await, 0);
        assert!(second.ping().await);
        first.close().await;
        second.close().await;
    }
}

#[tokio::test]
async fn commit_writes_gap_free_chained_entries() {
    for db in backends().await {
        let store = db.open().await;
        let mut all = Vec::new();
        for round in 0..3 {
            let mut tx = store.begin().await.expect("begin");
            tx.insert_request(&pending(&format!("req-{round}"), "dave", t0()))
                .await
                .expect("insert");
            for k in 0..=round {
                tx.audit(t0(), entry(&format!("test.r{round}.{k}")))
                    .await
                    .expect("audit");
            }
            all.extend(tx.commit().await.expect("commit"));
        }
        let stored = store.audit_all().await.expect("audit");
        assert_eq!(
            stored, all,
            "{:?}: what commit returned is what is stored",
            db.backend
        );
        let seqs: Vec<i64> = stored.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
        for pair in stored.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash, "chained");
        }
        let head = store.audit_head().await.expect("head");
        assert_eq!(head.seq, 6);
        assert_eq!(head.hash, stored[5].hash);
        let report = sluice_audit::verify(&stored, &[], None, Some(&head));
        assert!(report.ok(), "{:?}: {:?}", db.backend, report.problems);
        store.close().await;
    }
}

#[tokio::test]
async fn a_dropped_transaction_leaves_nothing() {
    for db in backends().await {
        let store = db.open().await;
        {
            let _tx = opening(&store, "req-gone", "test.dropped").await;
            // Dropped without commit.
        }
        // The next write sees the old head and succeeds.
        let mut tx = store.begin().await.expect("begin after drop");
        tx.audit(t0(), entry("test.after")).await.expect("audit");
        let committed = tx.commit().await.expect("commit");
        assert_eq!(
            committed[0].seq, 1,
            "{:?}: the dropped entry took no seq",
            db.backend
        );
        assert!(store.request("req-gone").await.expect("read").is_none());
        assert_eq!(store.state_revs().await.expect("revs").access, 0);
        assert_eq!(count(&store, "audit_entries").await, 1);
        store.close().await;
    }
}

#[tokio::test]
async fn commit_without_an_audit_entry_is_refused() {
    for db in backends().await {
        let store = db.open().await;
        let mut tx = store.begin().await.expect("begin");
        tx.insert_request(&pending("req-silent", "dave", t0()))
            .await
            .expect("insert");
        tx.bump_access().await.expect("bump");
        let err = tx.commit().await.expect_err("refused");
        assert!(matches!(err, StoreError::Database(_)), "{err:?}");
        assert!(store.request("req-silent").await.expect("read").is_none());
        assert_eq!(store.state_revs().await.expect("revs").access, 0);
        assert_eq!(store.audit_head().await.expect("head").seq, 0);
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_make_one_linear_chain() {
    const TASKS: usize = 24;
    const ROUNDS: usize = 5;
    for db in backends().await {
        let store = db.open().await;
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for r in 0..ROUNDS {
                    let mut tx = store.begin().await.expect("begin");
                    tx.insert_request(&pending(&format!("req-{t}-{r}"), "dave", t0()))
                        .await
                        .expect("insert");
                    tx.bump_access().await.expect("bump");
                    // Two entries per transaction: they must stay adjacent. The first holds
                    // text a literal must escape (PostgreSQL writes a batch's entries with
                    // their values written in), some fields left empty.
                    let awkward = NewEntry::new("o'neil \\ ünï", format!("test.{t}.{r}.a"))
                        .resource(format!("db:it's-{t}"))
                        .details(json!({"q": "'; DROP TABLE x; --", "b": "\\'\"", "n": t}));
                    tx.audit(t0(), awkward).await.expect("audit");
                    tx.audit(t0(), entry(&format!("test.{t}.{r}.b")))
                        .await
                        .expect("audit");
                    mine.extend(tx.commit().await.expect("commit"));
                }
                mine
            }));
        }
        let mut acked = Vec::new();
        for t in tasks {
            acked.extend(t.await.expect("task"));
        }
        let n = TASKS * ROUNDS * 2;
        let stored = store.audit_all().await.expect("audit");
        assert_eq!(stored.len(), n, "{:?}", db.backend);
        let seqs: Vec<i64> = stored.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=n as i64).collect::<Vec<_>>(), "gap-free");
        let head = store.audit_head().await.expect("head");
        let report = sluice_audit::verify(&stored, &[], None, Some(&head));
        assert!(report.ok(), "{:?}: {:?}", db.backend, report.problems);
        // Every acknowledged entry is stored exactly as acknowledged.
        acked.sort_by_key(|e| e.seq);
        assert_eq!(acked, stored);
        for pair in stored.chunks(2) {
            let a = pair[0].action.trim_end_matches(".a");
            let b = pair[1].action.trim_end_matches(".b");
            assert_eq!(a, b, "one transaction's entries are adjacent");
        }
        assert_eq!(
            store.state_revs().await.expect("revs").access,
            (TASKS * ROUNDS) as i64
        );
        store.close().await;
    }
}

/// Writers that fail half-way (a statement error, or dropped after writing) among concurrent
/// writers that commit: they share batch transactions (on both backends), and each failure
/// must undo only its own change.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_writers_among_concurrent_ones_undo_only_themselves() {
    const TASKS: usize = 32;
    for db in backends().await {
        let store = db.open().await;
        let mut tx = store.begin().await.expect("begin");
        tx.insert_request(&pending("req-taken", "dave", t0()))
            .await
            .expect("insert");
        tx.audit(t0(), entry("test.setup")).await.expect("audit");
        tx.commit().await.expect("commit");

        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut tx = opening(&store, &format!("req-{t}"), &format!("test.{t}")).await;
                match t % 4 {
                    // A statement fails after this writer wrote (held back, it fails with the
                    // commit): the writer's change is undone.
                    1 => {
                        let dup = match tx.insert_request(&pending("req-taken", "dave", t0())).await
                        {
                            Ok(()) => tx.commit().await.map(|_| ()),
                            Err(e) => Err(e),
                        };
                        assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
                        None
                    }
                    // Dropped after writing (a cancelled request handler).
                    2 => None,
                    _ => Some(tx.commit().await.expect("commit")),
                }
            }));
        }
        let mut acked = Vec::new();
        for (t, task) in tasks.into_iter().enumerate() {
            let kept = task.await.expect("task");
            let stored = store.request(&format!("req-{t}")).await.expect("read");
            assert_eq!(
                stored.is_some(),
                kept.is_some(),
                "{:?}: writer {t} kept exactly when it committed",
                db.backend
            );
            acked.extend(kept.into_iter().flatten());
        }
        let committed = TASKS / 2;
        let stored = store.audit_all().await.expect("audit");
        assert_eq!(stored.len(), 1 + committed, "{:?}", db.backend);
        let head = store.audit_head().await.expect("head");
        let report = sluice_audit::verify(&stored, &[], None, Some(&head));
        assert!(report.ok(), "{:?}: {:?}", db.backend, report.problems);
        acked.sort_by_key(|e| e.seq);
        assert_eq!(acked, stored[1..], "{:?}", db.backend);
        assert_eq!(
            store.state_revs().await.expect("revs").access,
            committed as i64,
            "{:?}: only committed writers bumped the counter",
            db.backend
        );
        store.close().await;
    }
}

/// A caller that goes away while its commit is under way (a client hanging up, a time-out, a
/// task aborted at shutdown) must leave the store whole: its change commits entirely or not at
/// all, and the chain head stays in step with the entries, so every later write succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_cancelled_during_commit_leaves_the_chain_whole() {
    for db in backends().await {
        let store = db.open().await;
        for round in 0..40u64 {
            let mut tx = store.begin().await.expect("begin");
            tx.bump_access().await.expect("bump");
            tx.audit(t0(), entry("test.cancelled"))
                .await
                .expect("audit");
            if round % 2 == 0 {
                // Cancelled at a different point each round.
                let _ =
                    tokio::time::timeout(std::time::Duration::from_micros(round * 25), tx.commit())
                        .await;
            } else {
                // Started, given time for the database to run everything it was sent, then
                // dropped before it looks at the outcome.
                let mut commit = std::pin::pin!(tx.commit());
                let waker = std::task::Waker::noop();
                let polled = commit
                    .as_mut()
                    .poll(&mut std::task::Context::from_waker(waker));
                std::thread::sleep(std::time::Duration::from_millis(5));
                drop(polled);
            }
            let mut tx = store.begin().await.expect("begin after");
            tx.audit(t0(), entry("test.after")).await.expect("audit");
            tx.commit()
                .await
                .unwrap_or_else(|e| panic!("{:?} round {round}: {e}", db.backend));
        }
        // The same, with another writer waiting in the same batch for the commit, so the
        // batch is committed rather than dropped: writer 1 holds the lock, the cancelled
        // writer queues behind it, writer 1 commits and waits, the cancelled writer joins the
        // batch, sends everything and goes away before it looks at the outcome.
        let mut first = store.begin().await.expect("begin");
        first.audit(t0(), entry("test.after")).await.expect("audit");
        let other = store.clone();
        let cancelled = tokio::spawn(async move {
            let mut tx = other.begin().await.expect("begin");
            tx.bump_access().await.expect("bump");
            tx.audit(t0(), entry("test.cancelled"))
                .await
                .expect("audit");
            let mut commit = std::pin::pin!(tx.commit());
            let waker = std::task::Waker::noop();
            let polled = commit
                .as_mut()
                .poll(&mut std::task::Context::from_waker(waker));
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(polled);
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let first = tokio::spawn(async move { first.commit().await });
        cancelled.await.expect("cancelled writer's task");
        first
            .await
            .expect("task")
            .unwrap_or_else(|e| panic!("{:?}: the waiting writer: {e}", db.backend));
        for _ in 0..2 {
            let mut tx = store.begin().await.expect("begin after");
            tx.audit(t0(), entry("test.after")).await.expect("audit");
            tx.commit()
                .await
                .unwrap_or_else(|e| panic!("{:?}: a later write: {e}", db.backend));
        }

        let stored = store.audit_all().await.expect("audit");
        let head = store.audit_head().await.expect("head");
        let report = sluice_audit::verify(&stored, &[], None, Some(&head));
        assert!(report.ok(), "{:?}: {:?}", db.backend, report.problems);
        assert_eq!(
            stored.iter().filter(|e| e.action == "test.after").count(),
            43
        );
        let cancelled = stored
            .iter()
            .filter(|e| e.action == "test.cancelled")
            .count();
        assert_eq!(
            store.state_revs().await.expect("revs").access,
            cancelled as i64,
            "{:?}: a cancelled change is all there or not at all",
            db.backend
        );
        store.close().await;
    }
}
