//! Two store handles on one PostgreSQL schema, as two instances have: each batches its own
//! audited writes, the batches take turns at the chain head, and the chain stays one
//! gap-free, verifiable chain, whatever fails or is cancelled on either side.

use crate::{entry, pending, postgres, t0};
use sluice_store::{Store, StoreError};
use std::future::Future as _;
use std::time::Duration;

/// What one writer did.
enum Outcome {
    Committed(Vec<sluice_store::AuditEntry>),
    Failed,
    Cancelled,
}

/// Writer `t` of `side`, round `r`: its change is request `req-{side}-{t}-{r}`, an access bump
/// (naming the request for even `t`) and two entries; what then happens to it depends on `t`
/// and `r`.
async fn write(store: Store, side: usize, t: usize, r: usize) -> (String, Outcome) {
    let id = format!("req-{side}-{t}-{r}");
    let mut tx = store.begin().await.expect("begin");
    tx.insert_request(&pending(&id, "dave", t0()))
        .await
        .expect("insert");
    if t.is_multiple_of(2) {
        tx.bump_grant(&id).await.expect("bump");
    } else {
        tx.bump_access().await.expect("bump");
    }
    tx.audit(t0(), entry(&format!("test.{id}.a")))
        .await
        .expect("audit");
    tx.audit(t0(), entry(&format!("test.{id}.b")))
        .await
        .expect("audit");
    let outcome = match (t + r) % 6 {
        // A statement that fails (a duplicate key) after the writer wrote: undone alone.
        1 => {
            let dup = match tx.insert_request(&pending("req-taken", "dave", t0())).await {
                Ok(()) => tx.commit().await.map(|_| ()),
                Err(e) => Err(e),
            };
            assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
            Outcome::Failed
        }
        // Dropped before committing (a handler whose client went away).
        2 => Outcome::Failed,
        // Cancelled at some point of its commit: it commits whole or not at all.
        3 => {
            let micros = ((t * 7 + r * 13) % 40) as u64 * 25;
            let _ = tokio::time::timeout(Duration::from_micros(micros), tx.commit()).await;
            Outcome::Cancelled
        }
        // Commit started, then dropped before it looks at the outcome.
        4 => {
            let mut commit = std::pin::pin!(tx.commit());
            let waker = std::task::Waker::noop();
            let _ = commit
                .as_mut()
                .poll(&mut std::task::Context::from_waker(waker));
            tokio::time::sleep(Duration::from_millis(1)).await;
            Outcome::Cancelled
        }
        _ => Outcome::Committed(tx.commit().await.expect("commit")),
    };
    (id, outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_writing_at_once_with_failures_and_cancellations_keep_one_chain() {
    const TASKS: usize = 12;
    const ROUNDS: usize = 6;
    let Some(db) = postgres().await else { return };
    let stores = [db.open().await, db.open().await];
    let mut tx = stores[0].begin().await.expect("begin");
    tx.insert_request(&pending("req-taken", "dave", t0()))
        .await
        .expect("insert");
    tx.audit(t0(), entry("test.setup")).await.expect("audit");
    tx.commit().await.expect("commit");

    let mut tasks = Vec::new();
    for (side, store) in stores.iter().enumerate() {
        for t in 0..TASKS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for r in 0..ROUNDS {
                    out.push(write(store.clone(), side, t, r).await);
                }
                out
            }));
        }
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.expect("task"));
    }
    // A later write on each side succeeds (no batch was left half-way), and returns once
    // the batch it joined committed, with whatever a cancelled writer left in it.
    for store in &stores {
        let mut tx = store.begin().await.expect("begin after");
        tx.audit(t0(), entry("test.after")).await.expect("audit");
        tx.commit().await.expect("a later write");
    }
    let mut acked = Vec::new();
    let mut kept = 0;
    for (id, outcome) in outcomes {
        let stored = stores[1].request(&id).await.expect("read").is_some();
        match outcome {
            Outcome::Committed(entries) => {
                assert!(stored, "{id}: acknowledged, so stored");
                acked.extend(entries);
            }
            Outcome::Failed => assert!(!stored, "{id}: failed, so not stored"),
            Outcome::Cancelled => {}
        }
        kept += usize::from(stored);
    }

    let stored = stores[0].audit_all().await.expect("audit");
    assert_eq!(
        stored.len(),
        1 + 2 * kept + 2,
        "two entries per kept change"
    );
    let seqs: Vec<i64> = stored.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=stored.len() as i64).collect::<Vec<_>>(),
        "gap-free"
    );
    let head = stores[1].audit_head().await.expect("head");
    let report = sluice_audit::verify(&stored, &[], None, Some(&head));
    assert!(report.ok(), "{:?}", report.problems);
    // Every acknowledged entry is stored exactly as acknowledged; a change's two entries are
    // adjacent; a change whose request is stored has its entries, and no other has.
    for e in &acked {
        assert_eq!(stored.get(e.seq as usize - 1), Some(e));
    }
    let changes: Vec<&str> = stored[1..stored.len() - 2]
        .chunks(2)
        .map(|pair| {
            let a = pair[0].action.trim_end_matches(".a");
            assert_eq!(a, pair[1].action.trim_end_matches(".b"), "adjacent");
            a.trim_start_matches("test.")
        })
        .collect();
    for id in &changes {
        assert!(stores[0].request(id).await.expect("read").is_some(), "{id}");
    }
    assert_eq!(changes.len(), kept);
    assert_eq!(
        stores[0].state_revs().await.expect("revs").access,
        kept as i64,
        "only kept changes bumped the counter"
    );
    // One record of what moved per revision given out, in order, each naming the request of
    // a kept writer that named it (and none of another): revisions and records are written
    // together whatever was cancelled.
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
    let records: Vec<(i64, Option<String>)> =
        sqlx::query_as("SELECT rev, request_id FROM access_changes ORDER BY rev")
            .fetch_all(&pool)
            .await
            .expect("records");
    pool.close().await;
    let revs: Vec<i64> = records.iter().map(|(rev, _)| *rev).collect();
    assert_eq!(revs, (1..=kept as i64).collect::<Vec<_>>());
    let mut named: Vec<&str> = records.iter().filter_map(|(_, id)| id.as_deref()).collect();
    named.sort_unstable();
    let mut expected: Vec<&str> = changes
        .iter()
        .copied()
        .filter(|id| {
            id.split('-')
                .nth(2)
                .is_some_and(|t| t.parse::<usize>().is_ok_and(|t| t.is_multiple_of(2)))
        })
        .collect();
    expected.sort_unstable();
    assert_eq!(named, expected);
    // A third of the writers commit and wait: two entries each.
    assert_eq!(acked.len(), 2 * 2 * ROUNDS * (TASKS / 3));
    for store in &stores {
        store.close().await;
    }
}

/// A writer of `store` alone, with a deadline well under the lock timeout: the chain head
/// must not be kept from it by the other handle's idle batch.
async fn alone(store: &Store, action: &str) -> Vec<sluice_store::AuditEntry> {
    let write = async {
        let mut tx = store.begin().await.expect("begin");
        tx.audit(t0(), entry(action)).await.expect("audit");
        tx.commit().await.expect("commit")
    };
    tokio::time::timeout(Duration::from_secs(2), write)
        .await
        .expect("the chain head was let go")
}

/// A checkpoint is stored while a write batch holds the chain head (it signs a head already
/// committed and does not wait for the next), and concurrent checkpoint writers are still
/// serialised: of several that expect the same latest checkpoint, one is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkpoints_do_not_wait_for_the_chain_head_and_one_wins_a_race() {
    let Some(db) = postgres().await else { return };
    let (a, b) = (db.open().await, db.open().await);
    for k in 0..8 {
        alone(&a, &format!("test.{k}")).await;
    }
    let checkpoint = |seq: i64| sluice_store::Checkpoint {
        seq,
        hash: format!("{seq:064x}"),
        at: t0(),
        key_id: "0011223344556677".into(),
        signature: "c2lnbmF0dXJl".into(),
    };
    let mut open = a.begin().await.expect("begin");
    open.audit(t0(), entry("test.open")).await.expect("audit");
    let stored = tokio::time::timeout(
        Duration::from_secs(2),
        b.insert_checkpoint_after(&checkpoint(1), 0),
    )
    .await
    .expect("not behind the write batch")
    .expect("insert");
    assert!(stored);
    open.commit().await.expect("commit");

    let mut racing = Vec::new();
    for seq in 2..=8 {
        let store = if seq % 2 == 0 { a.clone() } else { b.clone() };
        let cp = checkpoint(seq);
        racing.push(tokio::spawn(async move {
            store.insert_checkpoint_after(&cp, 1).await.expect("insert")
        }));
    }
    let mut won = 0;
    for r in racing {
        won += usize::from(r.await.expect("task"));
    }
    assert_eq!(
        won, 1,
        "one of the checkpoints expecting seq 1 as the latest"
    );
    assert_eq!(a.checkpoints().await.expect("checkpoints").len(), 2);
    for store in [&a, &b] {
        store.close().await;
    }
}

/// The chain as `a` reads it, checked to verify up to the head as `b` reads it.
async fn one_chain(a: &Store, b: &Store) -> Vec<sluice_store::AuditEntry> {
    let stored = a.audit_all().await.expect("audit");
    let head = b.audit_head().await.expect("head");
    let report = sluice_audit::verify(&stored, &[], None, Some(&head));
    assert!(report.ok(), "{:?}", report.problems);
    stored
}

/// A writer of `store` that takes an access revision; its entry and revision.
async fn bumping(store: &Store, action: &str) -> (sluice_store::AuditEntry, i64) {
    let mut tx = store.begin().await.expect("begin");
    let rev = tx.bump_access().await.expect("bump");
    tx.audit(t0(), entry(action)).await.expect("audit");
    let mut stored = tx.commit().await.expect("commit");
    (stored.remove(0), rev.get())
}

/// The chain head is locked at a batch's commit, not while the batch fills: while a writer
/// of A's batch is at work (a request written and its row locked, nothing committed), B's
/// writers commit, and A's writer then commits after them on the same chain, with the next
/// access revision. A writer that reads anything but rows it locks takes the head's lock at
/// that read, and then B waits for A's commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_holds_the_chain_head_only_for_its_commit_unless_a_writer_reads_under_it() {
    let Some(db) = postgres().await else { return };
    let (a, b) = (db.open().await, db.open().await);
    let mut tx = a.begin().await.expect("begin");
    tx.insert_request(&pending("req-a", "dave", t0()))
        .await
        .expect("insert");
    let locked = tx.lock_request("req-a").await.expect("lock");
    assert!(locked.is_some(), "its own insert, locked");
    let rev_a = tx.bump_access().await.expect("bump");
    tx.audit(t0(), entry("test.a")).await.expect("audit");
    let (b1, rev_b1) = tokio::time::timeout(Duration::from_secs(2), bumping(&b, "test.b.1"))
        .await
        .expect("B commits while A's batch fills");
    let (b2, rev_b2) = tokio::time::timeout(Duration::from_secs(2), bumping(&b, "test.b.2"))
        .await
        .expect("and again");
    let a1 = tx.commit().await.expect("A commits after");
    assert_eq!((b1.seq, b2.seq, a1[0].seq), (1, 2, 3), "in commit order");
    assert_eq!((rev_b1, rev_b2, rev_a.get()), (1, 2, 3), "revisions too");

    // A writer of A reads under the head's lock: B's commit waits for A's.
    let mut tx = a.begin().await.expect("begin");
    let open = tx.open_request_ids_of("dave").await.expect("read");
    assert_eq!(open, ["req-a"]);
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move { bumping(&b, "test.b.3").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "B waits for the head A holds");
    tx.audit(t0(), entry("test.a.2")).await.expect("audit");
    let a2 = tx.commit().await.expect("commit");
    let (b3, rev_b3) = waiting.await.expect("B, once A committed");
    assert_eq!((a2[0].seq, b3.seq, rev_b3), (4, 5, 4));

    let stored = one_chain(&a, &b).await;
    assert_eq!(stored.len(), 5);
    assert_eq!(a.state_revs().await.expect("revs").access, 4);
    a.close().await;
    b.close().await;
}

/// Two instances' batches in a cycle: B's writer holds the chain head (it read under it) and
/// then waits for a request A's batch has locked, while A's commit waits for the head.
/// PostgreSQL fails whichever waited first (A's commit); A waits for the head once more, so
/// that the cycle is broken on B's side, by failing B's one writer, and A's batch commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deadlock_between_instances_fails_one_writer_not_a_whole_batch() {
    let Some(db) = postgres().await else { return };
    let (a, b) = (db.open().await, db.open().await);
    let mut tx = a.begin().await.expect("begin");
    tx.insert_request(&pending("req-x", "dave", t0()))
        .await
        .expect("insert");
    tx.audit(t0(), entry("test.setup")).await.expect("audit");
    tx.commit().await.expect("commit");

    let mut reader = b.begin().await.expect("begin");
    reader.open_request_ids_of("dave").await.expect("read");
    let writer = {
        let a = a.clone();
        tokio::spawn(async move {
            let mut tx = a.begin().await.expect("begin");
            tx.lock_request("req-x")
                .await
                .expect("lock")
                .expect("exists");
            tx.audit(t0(), entry("test.a")).await.expect("audit");
            tx.commit().await
        })
    };
    // A's commit is now waiting for the head B holds.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), reader.lock_request("req-x"))
        .await
        .expect("the cycle is broken");
    assert!(matches!(closed, Err(StoreError::Busy(_))), "{closed:?}");
    drop(reader);
    let committed = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("A commits once B's writer is gone")
        .expect("task")
        .expect("A's writer is not failed with the cycle");
    assert_eq!(committed[0].action, "test.a");
    let stored = one_chain(&a, &b).await;
    assert_eq!(stored.len(), 2);
    a.close().await;
    b.close().await;
}

/// What PostgreSQL cannot store (a NUL character) fails the writer that brings it at once, not
/// at the batch's commit, where it would fail every writer of the batch with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nul_character_fails_its_writer_before_the_batch_commits() {
    let Some(db) = postgres().await else { return };
    let store = db.open().await;
    let mut other = store.begin().await.expect("begin");
    other.audit(t0(), entry("test.other")).await.expect("audit");
    let other = tokio::spawn(async move { other.commit().await });

    let mut tx = store.begin().await.expect("begin");
    let refused = tx
        .audit(t0(), sluice_store::NewEntry::new("tester", "test.\0nul"))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Database(_))),
        "{refused:?}"
    );
    tx.audit(t0(), entry("test.seal")).await.expect("audit");
    let row = sluice_store::CallRow {
        batch_seq: 0,
        pos: 0,
        call_id: "htc-1".into(),
        event: "ended".into(),
        at: 0,
        principal: "alice\0".into(),
        resource: "http:payments-admin".into(),
        details: "{}".into(),
    };
    let refused = tx.insert_http_calls(&[row]).await;
    assert!(
        matches!(refused, Err(StoreError::Database(_))),
        "{refused:?}"
    );
    drop(tx);

    let stored = other
        .await
        .expect("task")
        .expect("the other writer commits");
    assert_eq!(stored[0].action, "test.other");
    assert_eq!(store.audit_all().await.expect("audit").len(), 1);
    store.close().await;
}

/// Writes `r` (inserted or updated) with one entry through `store`.
async fn store_request(store: &Store, r: &sluice_core::access::AccessRequest, insert: bool) {
    let mut tx = store.begin().await.expect("begin");
    if insert {
        tx.insert_request(r).await.expect("insert");
    } else {
        tx.update_request(r).await.expect("update");
    }
    tx.audit(t0(), entry(&format!("test.{}", r.id)))
        .await
        .expect("audit");
    tx.commit().await.expect("commit");
}

/// A vote made from the request as this handle last wrote it, guarded on that: it commits
/// when nothing changed the request since, and fails alone with `Stale` (nothing of it kept,
/// the other writers of its batch untouched) when another instance did. Only pending
/// requests are remembered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vote_from_a_remembered_request_is_refused_once_another_instance_changed_it() {
    let Some(db) = postgres().await else { return };
    let (a, b) = (db.open().await, db.open().await);
    let first = pending("req-1", "dave", t0());
    store_request(&a, &first, true).await;
    let seen = a.seen_request("req-1").expect("a remembers what it wrote");
    assert_eq!(seen.request.id, "req-1");
    assert!(b.seen_request("req-1").is_none(), "b wrote nothing");

    // Nothing changed it: the vote commits, and an active request is no longer remembered.
    let mut approved = seen.request.clone();
    approved = crate::activated(approved, "erin", t0());
    let mut tx = a.begin().await.expect("begin");
    tx.vote_on_seen(&seen, &approved).await.expect("vote");
    tx.audit(t0(), entry("test.vote.1")).await.expect("audit");
    tx.commit()
        .await
        .expect("an unchanged request takes the vote");
    let stored = a.request("req-1").await.expect("read").expect("there");
    assert_eq!(stored.status, sluice_core::access::RequestStatus::Active);
    assert_eq!(stored.votes.len(), 1);
    assert!(a.seen_request("req-1").is_none(), "active: forgotten");

    // B votes on a request A remembers; A's vote from what it remembers is refused alone.
    let second = pending("req-2", "dave", t0());
    store_request(&a, &second, true).await;
    let seen = a.seen_request("req-2").expect("remembered");
    let mut by_b = second.clone();
    by_b.votes.push(crate::vote("frank", t0()));
    store_request(&b, &by_b, false).await;
    let mut from_seen = seen.request.clone();
    from_seen.votes.push(crate::vote("erin", t0()));
    let (stale, beside) = tokio::join!(
        async {
            let mut tx = a.begin().await.expect("begin");
            tx.vote_on_seen(&seen, &from_seen).await.expect("vote");
            tx.audit(t0(), entry("test.vote.stale"))
                .await
                .expect("audit");
            tx.commit().await
        },
        alone(&a, "test.beside")
    );
    assert!(
        matches!(stale, Err(StoreError::Stale(_))),
        "a vote on a changed request: {stale:?}"
    );
    assert_eq!(beside.len(), 1, "the writer beside it committed");
    let stored = a.request("req-2").await.expect("read").expect("there");
    let voters: Vec<&str> = stored.votes.iter().map(|v| v.approver.as_str()).collect();
    assert_eq!(voters, ["frank"], "b's vote kept, a's not written");
    let chain = one_chain(&a, &b).await;
    assert!(chain.iter().all(|e| e.action != "test.vote.stale"));
    assert!(chain.iter().any(|e| e.action == "test.beside"));
    for store in [&a, &b] {
        store.close().await;
    }
}

/// A batch commits in one call on the chain head and access revision its last commit left,
/// unless it heard of another instance's commit since. These handles do not listen, so B's
/// commits go unheard by A: each of A's commits must find the head moved, and chain its entry
/// and give out its revision after B's, not after its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_after_an_unheard_one_of_another_instance_follows_it() {
    let Some(db) = postgres().await else { return };
    let (a, b) = (db.open().await, db.open().await);
    let mut last_rev = 0;
    let mut last_seq = 0;
    // A alone long enough to commit on the head it expects; then B once, unheard; and so on.
    let turns = [
        (&a, 8),
        (&b, 1),
        (&a, 2),
        (&b, 1),
        (&a, 8),
        (&b, 1),
        (&a, 1),
    ];
    for (turn, (store, commits)) in turns.into_iter().enumerate() {
        for k in 0..commits {
            let (e, rev) = bumping(store, &format!("test.{turn}.{k}")).await;
            assert_eq!(e.seq, last_seq + 1, "turn {turn}, commit {k}");
            assert_eq!(rev, last_rev + 1, "turn {turn}, commit {k}");
            (last_seq, last_rev) = (e.seq, rev);
        }
    }
    let chain = one_chain(&a, &b).await;
    assert_eq!(chain.len(), 22);
    for store in [&a, &b] {
        store.close().await;
    }
}
