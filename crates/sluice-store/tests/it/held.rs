//! Writers that take no access revision send nothing themselves in a PostgreSQL batch: their
//! statements are held for the next call on the batch's connection (another writer's read or
//! commit, or the batch's commit). A held writer that fails there must be undone alone, the
//! writers held after it chained again on what really precedes them, and the writer whose
//! call carried them must get its own answer. On SQLite the same tests check the same
//! outcomes of its own batch.

use crate::{backends, entry, pending, t0, vote};
use sluice_store::{AuditEntry, Store, StoreError};
use std::time::Duration;

/// A writer that opens request `id` (no access revision) with one entry; `dup` also inserts
/// the already stored `req-taken`, which fails when its statements reach the server.
async fn open(store: &Store, id: &str, dup: bool) -> Result<Vec<AuditEntry>, StoreError> {
    let mut tx = store.begin().await?;
    tx.insert_request(&pending(id, "dave", t0())).await?;
    tx.audit(t0(), entry(&format!("test.open.{id}"))).await?;
    if dup {
        tx.insert_request(&pending("req-taken", "dave", t0()))
            .await?;
    }
    tx.commit().await
}

/// A writer that opens request `id` and takes an access revision, after reading a request
/// (`read`) or not; `dup` makes it fail as in [`open`]. Returns the revision it took.
async fn bumping(
    store: &Store,
    id: &str,
    read: bool,
    dup: bool,
) -> Result<(i64, Vec<AuditEntry>), StoreError> {
    let mut tx = store.begin().await?;
    if read {
        tx.lock_request("req-read").await?;
    }
    tx.insert_request(&pending(id, "dave", t0())).await?;
    let rev = tx.bump_access().await?;
    tx.audit(t0(), entry(&format!("test.open.{id}"))).await?;
    if dup {
        tx.insert_request(&pending("req-taken", "dave", t0()))
            .await?;
    }
    let stored = tx.commit().await?;
    Ok((rev.get(), stored))
}

async fn setup(store: &Store) {
    let mut tx = store.begin().await.expect("begin");
    tx.insert_request(&pending("req-taken", "dave", t0()))
        .await
        .expect("insert");
    tx.insert_request(&pending("req-read", "dave", t0()))
        .await
        .expect("insert");
    tx.audit(t0(), entry("test.setup")).await.expect("audit");
    tx.commit().await.expect("commit");
}

fn verified(stored: &[AuditEntry], head: &sluice_store::ChainHead) {
    let seqs: Vec<i64> = stored.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=stored.len() as i64).collect::<Vec<_>>(),
        "gap-free"
    );
    let report = sluice_audit::verify(stored, &[], None, Some(head));
    assert!(report.ok(), "{:?}", report.problems);
}

/// A reader holds the lease; three writers queue behind it and are held in turn (the middle
/// one fails); a last reader's call carries them: the failing one is undone alone, the one
/// after it is chained again, and the reader reads what it would have read anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_writer_that_fails_in_another_writers_call_is_undone_alone() {
    for db in backends().await {
        let store = db.open().await;
        setup(&store).await;
        // The first writer holds the batch lease while the others queue behind it.
        let mut first = store.begin().await.expect("begin");
        first.audit(t0(), entry("test.first")).await.expect("audit");
        let mut openers = Vec::new();
        for (k, dup) in [(0, false), (1, true), (2, false)] {
            let store = store.clone();
            openers.push(tokio::spawn(async move {
                open(&store, &format!("req-held-{k}"), dup).await
            }));
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let reader = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await.expect("begin");
                let read = tx
                    .lock_request("req-read")
                    .await
                    .expect("lock")
                    .expect("exists");
                tx.insert_vote("req-read", &vote("bob", t0()))
                    .await
                    .expect("vote");
                tx.bump_access().await.expect("bump");
                tx.audit(t0(), entry("test.reader")).await.expect("audit");
                (read.id, tx.commit().await.expect("commit"))
            })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        let first = first.commit().await.expect("first commit");
        let mut outcomes = Vec::new();
        for o in openers {
            outcomes.push(o.await.expect("task"));
        }
        let (read, reader) = reader.await.expect("reader");
        assert_eq!(read, "req-read");
        assert!(outcomes[0].is_ok(), "{:?}: {:?}", db.backend, outcomes[0]);
        assert!(
            matches!(outcomes[1], Err(StoreError::Conflict(_))),
            "{:?}: {:?}",
            db.backend,
            outcomes[1]
        );
        assert!(outcomes[2].is_ok(), "{:?}: {:?}", db.backend, outcomes[2]);

        let stored = store.audit_all().await.expect("audit");
        let head = store.audit_head().await.expect("head");
        verified(&stored, &head);
        let mut acked: Vec<AuditEntry> = first.into_iter().chain(reader).collect();
        for o in outcomes.into_iter().flatten() {
            acked.extend(o);
        }
        acked.sort_by_key(|e| e.seq);
        assert_eq!(acked, stored[1..], "{:?}: answered as stored", db.backend);
        for (id, kept) in [
            ("req-held-0", true),
            ("req-held-1", false),
            ("req-held-2", true),
        ] {
            assert_eq!(
                store.request(id).await.expect("read").is_some(),
                kept,
                "{:?}: {id}",
                db.backend
            );
        }
        assert_eq!(store.state_revs().await.expect("revs").access, 1);
        store.close().await;
    }
}

/// Many writers at once: openers (held on PostgreSQL) of which some fail and some are
/// dropped or cancelled, and readers that lock a request and bump the access revision (sent
/// with whatever is held). Every acknowledged writer is stored exactly as acknowledged, every
/// failed one is not, and the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn held_writers_among_readers_with_failures_and_cancellations_keep_one_chain() {
    const TASKS: usize = 24;
    const ROUNDS: usize = 6;
    for db in backends().await {
        let store = db.open().await;
        setup(&store).await;
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                let mut revs = Vec::new();
                for r in 0..ROUNDS {
                    let id = format!("req-{t}-{r}");
                    let outcome = match (t + r) % 6 {
                        // Fails when its held statements are sent.
                        1 => {
                            let failed = open(&store, &id, true).await;
                            assert!(matches!(failed, Err(StoreError::Conflict(_))), "{failed:?}");
                            Some(false)
                        }
                        // Cancelled at some point of its commit: all or nothing.
                        2 => {
                            let micros = ((t * 7 + r * 13) % 30) as u64 * 40;
                            let _ = tokio::time::timeout(
                                Duration::from_micros(micros),
                                open(&store, &id, false),
                            )
                            .await;
                            None
                        }
                        // Take an access revision (a held writer that took one is sent
                        // first), with or without a read before; one of them fails.
                        3..=5 => {
                            let (read, dup) = ((t + r) % 6 == 3, (t + r) % 6 == 4);
                            match bumping(&store, &id, read, dup).await {
                                Ok((rev, entries)) => {
                                    revs.push(rev);
                                    out.push((id, Some(true), entries));
                                }
                                Err(e) => {
                                    assert!(dup && matches!(e, StoreError::Conflict(_)), "{e:?}");
                                    out.push((id, Some(false), Vec::new()));
                                }
                            }
                            continue;
                        }
                        _ => {
                            let kept = open(&store, &id, false).await.expect("commit");
                            out.push((id, Some(true), kept));
                            continue;
                        }
                    };
                    out.push((id, outcome, Vec::new()));
                }
                (out, revs)
            }));
        }
        let mut acked = Vec::new();
        let mut kept = 0;
        let mut revs = Vec::new();
        for task in tasks {
            let (out, taken) = task.await.expect("task");
            revs.extend(taken);
            for (id, outcome, entries) in out {
                let stored = store.request(&id).await.expect("read").is_some();
                if let Some(expected) = outcome {
                    assert_eq!(stored, expected, "{:?}: {id}", db.backend);
                }
                kept += usize::from(stored);
                acked.extend(entries);
            }
        }
        // A later write is answered (no batch was left half-way).
        let mut tx = store.begin().await.expect("begin after");
        tx.audit(t0(), entry("test.after")).await.expect("audit");
        acked.extend(tx.commit().await.expect("a later write"));

        let stored = store.audit_all().await.expect("audit");
        let head = store.audit_head().await.expect("head");
        verified(&stored, &head);
        assert_eq!(
            stored.len(),
            1 + kept + 1,
            "{:?}: one entry per kept change",
            db.backend
        );
        for e in &acked {
            assert_eq!(stored.get(e.seq as usize - 1), Some(e), "{:?}", db.backend);
        }
        for e in &stored[1..stored.len() - 1] {
            let id = e.action.trim_start_matches("test.open.");
            assert!(
                store.request(id).await.expect("read").is_some(),
                "{id}: entry without change"
            );
        }
        store.close().await;
    }
}

/// A writer that moved flags and access and then failed moves no counter, and the writer after
/// it is not told of a change that did not happen (on PostgreSQL the counters are written at
/// the batch's commit, from the writers it keeps).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_writer_moves_no_counter() {
    for db in backends().await {
        let store = db.open().await;
        setup(&store).await;
        let before = store.state_revs().await.expect("revs");
        let mut tx = store.begin().await.expect("begin");
        tx.bump_flags().await.expect("bump");
        tx.bump_access().await.expect("bump");
        tx.audit(t0(), entry("test.failing")).await.expect("audit");
        tx.insert_request(&pending("req-taken", "dave", t0()))
            .await
            .expect("held until the commit");
        let failed = tx.commit().await;
        assert!(
            matches!(failed, Err(StoreError::Conflict(_))),
            "{:?}: {failed:?}",
            db.backend
        );
        open(&store, "req-after", false)
            .await
            .expect("the next writer");
        let after = store.state_revs().await.expect("revs");
        assert_eq!(
            (after.access, after.flags),
            (before.access, before.flags),
            "{:?}",
            db.backend
        );
        store.close().await;
    }
}

/// PostgreSQL batches sign the head they commit inside that commit (see
/// `Store::sign_commits_with`): once a write returns, a stored checkpoint covers it, and every
/// checkpoint verifies against the chain, with failing writers among the batch's. SQLite signs
/// in checkpoint rounds of its own (they share its batch), so its store keeps no signer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_sign_their_head_inside_the_commit() {
    for db in backends().await {
        let store = db.open().await;
        setup(&store).await;
        let signer = sluice_audit::AuditSigner::generate();
        let verifier = signer.verifying_key();
        let pg = db.backend == sluice_store::Backend::Postgres;
        assert_eq!(store.sign_commits_with(move |h| signer.sign(h, t0())), pg);

        let mut writers = tokio::task::JoinSet::new();
        for i in 0..48 {
            let store = store.clone();
            writers.spawn(async move {
                let dup = i % 7 == 3;
                let stored = open(&store, &format!("req-s{i}"), dup).await;
                let covered = match &stored {
                    Ok(entries) => {
                        let last = entries.last().map_or(0, |e| e.seq);
                        let signed = store
                            .latest_checkpoint()
                            .await
                            .expect("read")
                            .map_or(0, |c| c.seq);
                        Some((last, signed))
                    }
                    Err(_) => None,
                };
                (dup, stored.is_ok(), covered)
            });
        }
        let mut kept = 0;
        while let Some(w) = writers.join_next().await {
            let (dup, ok, covered) = w.expect("writer");
            assert_eq!(ok, !dup, "only the writers with a duplicate fail");
            if let (true, Some((last, signed))) = (pg, covered) {
                assert!(
                    signed >= last,
                    "a write (up to seq {last}) returned before a checkpoint covered it (signed {signed})"
                );
            }
            kept += usize::from(ok);
        }
        assert_eq!(kept, 41);

        let head = store.audit_head().await.expect("head");
        let stored = store.audit_page(0, 1000).await.expect("entries");
        let checkpoints = store.checkpoints().await.expect("checkpoints");
        if pg {
            assert_eq!(
                checkpoints.last().map(|c| c.seq),
                Some(head.seq),
                "{checkpoints:?}"
            );
            assert_eq!(
                *store.signed_in_commit().borrow(),
                checkpoints.last().cloned()
            );
        } else {
            assert!(checkpoints.is_empty(), "{checkpoints:?}");
        }
        let report = sluice_audit::verify(&stored, &checkpoints, Some(&verifier), Some(&head));
        assert!(report.ok(), "{:?}", report.problems);

        if pg {
            // Another handle on the database signing with another key (an instance started
            // with the wrong key): its commits go in, and store no checkpoint.
            let other = db.open().await;
            let wrong = sluice_audit::AuditSigner::generate();
            assert!(other.sign_commits_with(move |h| wrong.sign(h, t0())));
            open(&other, "req-other", false).await.expect("write");
            assert_eq!(store.checkpoints().await.expect("checkpoints"), checkpoints);
            assert!(other.signed_in_commit().borrow().is_none());
        }
    }
}
