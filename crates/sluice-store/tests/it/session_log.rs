//! Gateway session logs: statements written in chunks read back exactly, in order, beside
//! logs written one row per statement before chunks existed.

use crate::{backends, t0};
use chrono::TimeDelta;
use sluice_store::{LoggedStatement, StatementChunk};

fn stmt(session: &str, seq: i64, kind: &str, text: &str, params: Option<&str>) -> LoggedStatement {
    LoggedStatement {
        session_id: session.into(),
        seq,
        at: t0() + TimeDelta::milliseconds(seq),
        kind: kind.into(),
        text: text.into(),
        params: params.map(Into::into),
    }
}

fn chunk(rows: &[LoggedStatement]) -> StatementChunk {
    let mut c = StatementChunk::new(&rows[0].session_id);
    for r in rows {
        c.push(r.seq, r.at, &r.kind, &r.text, r.params.as_deref())
            .expect("encode");
    }
    c
}

#[tokio::test]
async fn chunked_logs_read_back_exactly_and_in_order() {
    for db in backends().await {
        let store = db.open().await;
        let log = vec![
            stmt("s1", 1, "query", "SELECT 'a\nb', \"q\", 'é' -- \\ \t", None),
            stmt("s1", 2, "parse", "SELECT $1", None),
            stmt("s1", 3, "bind", "", Some(r#"["\\x00000001",null]"#)),
            stmt("s1", 4, "execute", "", None),
        ];
        let other = vec![stmt("s2", 1, "query", "SELECT 2", None)];
        // Written as two batches, the later one first: reading orders by seq.
        store
            .insert_statement_chunks(&[chunk(&log[2..]), chunk(&other)])
            .await
            .expect("second batch");
        store
            .insert_statement_chunks(&[chunk(&log[..2])])
            .await
            .expect("first batch");
        assert_eq!(
            store.gateway_statements("s1").await.expect("read"),
            log,
            "{:?}",
            db.backend
        );
        // Pages cut across chunks the same way whatever their size.
        for size in [1, 2, 3] {
            let mut paged = Vec::new();
            loop {
                let after = paged.last().map_or(0, |s: &LoggedStatement| s.seq);
                let page = store
                    .gateway_statements_page("s1", after, size)
                    .await
                    .expect("page");
                assert!(page.len() <= size as usize);
                if page.is_empty() {
                    break;
                }
                paged.extend(page);
            }
            assert_eq!(paged, log, "pages of {size}");
        }
        assert_eq!(store.gateway_statements("s2").await.expect("read"), other);
        assert!(store
            .gateway_statements("s3")
            .await
            .expect("read")
            .is_empty());

        // A log stored one row per statement (before chunks) still reads back.
        let pool = sqlx::AnyPool::connect(&db.url).await.expect("connect");
        sqlx::query(
            "INSERT INTO gateway_statements (session_id, seq, at, kind, text, params) \
             VALUES ('s0', 1, $1, 'query', 'SELECT 0', NULL)",
        )
        .bind(sluice_core::clock::to_ms(t0()))
        .execute(&pool)
        .await
        .expect("legacy row");
        pool.close().await;
        assert_eq!(
            store.gateway_statements("s0").await.expect("read"),
            vec![LoggedStatement {
                at: t0(),
                ..stmt("s0", 1, "query", "SELECT 0", None)
            }]
        );
    }
}
