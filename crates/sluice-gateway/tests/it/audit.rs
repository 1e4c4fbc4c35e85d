//! Every session is in the audit trail before it is admitted; its statements are in the
//! session log, whose hash the session-end entry holds, so an edit is found by verify.

use crate::harness::{Env, ADMIN_TOKEN};
use serde_json::Value;
use sluice_gateway::LogMode;
use std::time::Duration;

/// Waits for the session-end entry of the only session; returns all entries of the trail.
async fn wait_ended(env: &Env, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let v = env.get(ADMIN_TOKEN, "/v1/audit?limit=1000").await;
        let entries = v["entries"].as_array().cloned().unwrap_or_default();
        if entries
            .iter()
            .filter(|e| e["action"] == "gateway.session.ended")
            .count()
            >= n
        {
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no session-end entry");
}

/// Rewrites the stored session logs: `edit` gets each chunk's lines (one statement each) and
/// must change at least one of them.
async fn tamper_log(env: &Env, edit: impl Fn(&mut Vec<String>)) {
    let url = format!("sqlite://{}", env.dir.path().join("sluice.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open sqlite");
    let chunks: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT session_id, first_seq, body FROM gateway_statement_chunks")
            .fetch_all(&pool)
            .await
            .expect("read chunks");
    let mut changed = false;
    for (session, first, body) in chunks {
        let mut lines: Vec<String> = body.lines().map(str::to_owned).collect();
        edit(&mut lines);
        let edited = lines.join("\n");
        if edited != body {
            changed = true;
            sqlx::query(
                "UPDATE gateway_statement_chunks SET body = ? WHERE session_id = ? AND first_seq = ?",
            )
            .bind(edited)
            .bind(session)
            .bind(first)
            .execute(&pool)
            .await
            .expect("tamper");
        }
    }
    assert!(
        changed,
        "the tampering found the statement it meant to change"
    );
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_are_logged_in_order_and_an_edit_fails_verify() {
    let env = crate::env!();
    let alice = env.token("alice").await;
    let grant = env.grant(&alice, "orders-db-read", "10m").await;
    let (client, conn) = env.connect("alice", &alice).await.expect("admitted");
    client
        .batch_execute("SELECT count(*) FROM orders")
        .await
        .expect("simple query");
    // Extended protocol: a prepared statement with parameters, run twice.
    let stmt = client
        .prepare("SELECT item FROM orders WHERE id = $1 AND item <> $2")
        .await
        .expect("prepare");
    for id in [1i32, 2] {
        let rows = client.query(&stmt, &[&id, &"x"]).await.expect("execute");
        assert_eq!(rows.len(), 1);
    }
    let long = format!("SELECT '{}'", "y".repeat(500));
    client.batch_execute(&long).await.expect("long query");
    drop(client);
    let _ = conn.await;
    let entries = wait_ended(&env, 1).await;

    let started = entries
        .iter()
        .find(|e| e["action"] == "gateway.session.started")
        .expect("start entry");
    let ended = entries
        .iter()
        .find(|e| e["action"] == "gateway.session.ended")
        .expect("end entry");
    assert!(started["seq"].as_i64() < ended["seq"].as_i64());
    assert_eq!(started["details"]["grant_id"], grant.as_str());
    assert_eq!(started["details"]["role"], env.up.reader.as_str());
    assert_eq!(started["actor"], "alice");
    let session = started["details"]["session"].as_str().expect("session id");
    assert_eq!(ended["details"]["session"], session);
    assert_eq!(ended["details"]["statements"], 4, "{ended}");
    assert!(ended["details"]["bytes_in"].as_i64() > Some(0));

    let log = env
        .app
        .store
        .gateway_statements(session)
        .await
        .expect("log");
    let kinds: Vec<&str> = log.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["query", "parse", "bind", "execute", "bind", "execute", "query"],
        "{log:#?}"
    );
    assert_eq!(log[0].text, "SELECT count(*) FROM orders");
    assert_eq!(
        log[1].text,
        "SELECT item FROM orders WHERE id = $1 AND item <> $2"
    );
    // tokio-postgres binds in binary: the int as hex, the text as its bytes.
    assert_eq!(log[2].params.as_deref(), Some(r#"["\\x00000001","\\x78"]"#));
    assert_eq!(log[4].params.as_deref(), Some(r#"["\\x00000002","\\x78"]"#));
    assert!(log.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    assert_eq!(log[6].text.len(), 200, "truncated at the configured size");

    let v = env.get(ADMIN_TOKEN, "/v1/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");

    tamper_log(&env, |lines| {
        for l in lines.iter_mut().filter(|l| l.starts_with(r#"{"seq":1,"#)) {
            *l = l.replace("SELECT count(*) FROM orders", "SELECT 1");
        }
    })
    .await;
    let v = env.get(ADMIN_TOKEN, "/v1/audit/verify").await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["problems"][0]["kind"], "session_log_mismatch", "{v}");
    assert_eq!(v["problems"][0]["seq"], ended["seq"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_statement_fails_verify() {
    let env = crate::env!();
    let alice = env.token("alice").await;
    env.grant(&alice, "orders-db-read", "10m").await;
    let (client, conn) = env.connect("alice", &alice).await.expect("admitted");
    client.batch_execute("SELECT 1").await.expect("q1");
    client.batch_execute("SELECT 2").await.expect("q2");
    drop(client);
    let _ = conn.await;
    wait_ended(&env, 1).await;
    assert_eq!(env.get(ADMIN_TOKEN, "/v1/audit/verify").await["ok"], true);
    tamper_log(&env, |lines| {
        lines.retain(|l| !l.starts_with(r#"{"seq":2,"#))
    })
    .await;
    let v = env.get(ADMIN_TOKEN, "/v1/audit/verify").await;
    assert_eq!(v["problems"][0]["kind"], "session_log_mismatch", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_records_each_statement_in_the_chain() {
    let env = crate::env!(LogMode::Strict);
    let alice = env.token("alice").await;
    env.grant(&alice, "orders-db-read", "10m").await;
    let (client, conn) = env.connect("alice", &alice).await.expect("admitted");
    client
        .batch_execute("SELECT count(*) FROM orders")
        .await
        .expect("query");
    // Already in the chain when the answer arrived: written before forwarding.
    let v = env
        .get(ADMIN_TOKEN, "/v1/audit?action=gateway.statement&limit=100")
        .await;
    let texts: Vec<&str> = v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["details"]["text"].as_str())
        .collect();
    assert_eq!(texts, ["SELECT count(*) FROM orders"], "{v}");
    drop(client);
    let _ = conn.await;
    wait_ended(&env, 1).await;
    assert_eq!(env.get(ADMIN_TOKEN, "/v1/audit/verify").await["ok"], true);
}
