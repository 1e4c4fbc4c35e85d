//! The HTTP gateway's call log: a batch of rows written in the transaction of the entry that
//! seals it, read back per service (newest first) and per batch (in order).

use crate::backends;
use sluice_store::{http_call_batch_hash, CallRow, NewEntry};

fn row(pos: i64, event: &str, principal: &str, resource: &str) -> CallRow {
    CallRow {
        batch_seq: 0,
        pos,
        call_id: format!("htc-{pos}"),
        event: event.to_owned(),
        at: 1_700_000_000_000 + pos,
        principal: principal.to_owned(),
        resource: resource.to_owned(),
        details: format!(r#"{{"status":200,"note":"é \" {pos}"}}"#),
    }
}

#[tokio::test]
async fn a_sealed_batch_reads_back_exactly() {
    for db in backends().await {
        let store = db.open().await;
        // Many rows, with quotes and non-ASCII text in their details.
        let mut rows: Vec<CallRow> = (0..250)
            .map(|i| {
                let event = ["admitted", "ended", "refused"][(i % 3) as usize];
                let who = if i % 2 == 0 { "alice" } else { "ci-bot" };
                let svc = if i < 200 {
                    "http:payments-admin"
                } else {
                    "http:ledger"
                };
                row(i, event, who, svc)
            })
            .collect();
        let hash = http_call_batch_hash(&rows);
        let mut tx = store.begin().await.expect("begin");
        // An entry before the seal: the rows must name the seal's `seq`, not the first.
        tx.audit(
            chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
            NewEntry::new("system:http-gateway", "test.before"),
        )
        .await
        .expect("entry");
        tx.audit(
            chrono::DateTime::from_timestamp_millis(1_700_000_001_000).unwrap(),
            NewEntry::new("system:http-gateway", "http.calls.recorded")
                .details(serde_json::json!({"records": rows.len(), "hash": hash})),
        )
        .await
        .expect("seal");
        tx.insert_http_calls(&rows).await.expect("insert");
        let seal = tx.commit().await.expect("commit").pop().expect("the seal");
        assert_eq!(seal.action, "http.calls.recorded");
        for r in &mut rows {
            r.batch_seq = seal.seq;
        }

        let back = store.http_call_batch(seal.seq).await.expect("batch");
        assert_eq!(back, rows, "{:?}", db.backend);
        assert_eq!(http_call_batch_hash(&back), hash);

        let ended = store
            .http_calls("http:payments-admin", &["ended", "refused"], None, 1000)
            .await
            .expect("list");
        let want: Vec<_> = rows[..200]
            .iter()
            .rev()
            .filter(|r| r.event != "admitted")
            .cloned()
            .collect();
        assert_eq!(ended, want);
        let own = store
            .http_calls("http:payments-admin", &["ended"], Some("ci-bot"), 5)
            .await
            .expect("list");
        assert_eq!(own.len(), 5);
        assert!(own
            .iter()
            .all(|r| r.principal == "ci-bot" && r.event == "ended"));
        assert!(store
            .unsealed_http_call_batches(10)
            .await
            .expect("unsealed")
            .is_empty());
    }
}
