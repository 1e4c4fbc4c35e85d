//! Audit-only writes (`Store::record`, what access decisions use): concurrent callers are
//! grouped into shared transactions, among ordinary writers, some of which fail or are
//! cancelled; every caller is answered with exactly its own entries, once they are stored, and
//! the chain stays one gap-free, verifiable chain.

use crate::{backends, entry, opening, pending, t0};
use sluice_store::{AuditEntry, StoreError};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grouped_records_among_writers_answer_each_caller_with_its_own_entries() {
    const RECORDERS: usize = 48;
    const ROUNDS: usize = 6;
    const WRITERS: usize = 8;
    for db in backends().await {
        let store = db.open().await;
        let mut tx = store.begin().await.expect("begin");
        tx.insert_request(&pending("req-taken", "dave", t0()))
            .await
            .expect("insert");
        tx.audit(t0(), entry("test.setup")).await.expect("audit");
        tx.commit().await.expect("commit");

        let mut recorders = Vec::new();
        for t in 0..RECORDERS {
            let store = store.clone();
            recorders.push(tokio::spawn(async move {
                let mut acked: Vec<AuditEntry> = Vec::new();
                for r in 0..ROUNDS {
                    // One, two or three entries per call, as a batch of decisions has.
                    let entries: Vec<_> = (0..=(t + r) % 3)
                        .map(|k| entry(&format!("test.record.{t}.{r}.{k}")))
                        .collect();
                    let n = entries.len();
                    if (t + r) % 7 == 3 {
                        // The caller goes away: its entries are written or not, whole.
                        let _ = tokio::time::timeout(
                            Duration::from_micros(((t * 13 + r) % 20) as u64 * 50),
                            store.record(t0(), entries),
                        )
                        .await;
                        continue;
                    }
                    let stored = store.record(t0(), entries).await.expect("record");
                    assert_eq!(stored.len(), n, "every entry of the call, none other");
                    for (k, e) in stored.iter().enumerate() {
                        assert_eq!(e.action, format!("test.record.{t}.{r}.{k}"));
                    }
                    acked.extend(stored);
                }
                acked
            }));
        }
        // Ordinary writers in the same batches: half of them fail after writing.
        let mut writers = Vec::new();
        for t in 0..WRITERS {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                let mut kept = 0;
                for r in 0..ROUNDS {
                    let mut tx = opening(
                        &store,
                        &format!("req-{t}-{r}"),
                        &format!("test.write.{t}.{r}"),
                    )
                    .await;
                    if (t + r) % 2 == 1 {
                        tx.insert_request(&pending("req-taken", "dave", t0()))
                            .await
                            .expect("held back");
                        let dup = tx.commit().await;
                        assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
                    } else {
                        tx.commit().await.expect("commit");
                        kept += 1;
                    }
                }
                kept
            }));
        }
        let mut acked = Vec::new();
        for t in recorders {
            acked.extend(t.await.expect("recorder"));
        }
        let mut kept = 0;
        for t in writers {
            kept += t.await.expect("writer");
        }
        // A later record is answered (no group was left half-way).
        acked.extend(
            store
                .record(t0(), vec![entry("test.after")])
                .await
                .expect("a later record"),
        );

        let stored = store.audit_all().await.expect("audit");
        let seqs: Vec<i64> = stored.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=stored.len() as i64).collect::<Vec<_>>(),
            "gap-free"
        );
        let head = store.audit_head().await.expect("head");
        let report = sluice_audit::verify(&stored, &[], None, Some(&head));
        assert!(report.ok(), "{:?}: {:?}", db.backend, report.problems);
        for e in &acked {
            assert_eq!(
                stored.get(e.seq as usize - 1),
                Some(e),
                "{:?}: acknowledged as stored",
                db.backend
            );
        }
        // A cancelled call's entries are all there or none is.
        for t in 0..RECORDERS {
            for r in 0..ROUNDS {
                let prefix = format!("test.record.{t}.{r}.");
                let n = stored
                    .iter()
                    .filter(|e| e.action.starts_with(&prefix))
                    .count();
                assert!(n == 0 || n == (t + r) % 3 + 1, "{prefix}: {n} entries");
            }
        }
        let writes = stored
            .iter()
            .filter(|e| e.action.starts_with("test.write."))
            .count();
        assert_eq!(
            writes, kept,
            "{:?}: failed writers undone alone",
            db.backend
        );
        assert_eq!(store.state_revs().await.expect("revs").access, kept as i64);
        store.close().await;
    }
}
