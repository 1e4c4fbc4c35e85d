//! The call log: records written in batches, each sealed by one chained audit entry whose hash
//! `audit verify` recomputes; admissions of concurrent calls sharing commits; request bytes
//! counted as they pass.

use crate::harness::{Env, ADMIN_TOKEN};
use serde_json::Value;

/// Three calls and one refusal, all listed.
async fn some_calls(env: &Env) {
    let alice = env.token("alice").await;
    env.grant(&alice, "refunds-admin", "10m").await;
    for i in 0..3 {
        let r = env
            .call(&alice, "POST", &format!("/payments-admin/v1/refunds/{i}"))
            .await;
        assert_eq!(r.status(), 200);
    }
    let (status, _) = env
        .call_json(&alice, "DELETE", "/payments-admin/v1/refunds/1")
        .await;
    assert_eq!(status, 403);
    env.wait_calls(3).await;
    env.wait_refused(1).await;
}

async fn verify(env: &Env) -> Value {
    env.get(ADMIN_TOKEN, "/v1/audit/verify").await
}

async fn tamper(env: &Env, sql: &str) {
    let db = env.db().await;
    let done = sqlx::query(sql).execute(&db).await.unwrap();
    assert!(
        done.rows_affected() > 0,
        "the tampering changed nothing: {sql}"
    );
    db.close().await;
}

#[tokio::test]
async fn an_edited_call_record_fails_verification_at_its_batch() {
    let env = Env::start().await;
    some_calls(&env).await;
    assert_eq!(verify(&env).await["ok"], true);
    let seals = env.entries("http.calls.recorded").await;
    assert!(!seals.is_empty());
    let records: u64 = seals
        .iter()
        .map(|e| e["details"]["records"].as_u64().unwrap())
        .sum();
    // Three admitted, three ended, one refused.
    assert_eq!(records, 7);

    tamper(
        &env,
        "UPDATE http_calls SET details = replace(details, '\"status\":200', '\"status\":201') \
         WHERE event = 'ended' AND pos = (SELECT MIN(pos) FROM http_calls WHERE event = 'ended')",
    )
    .await;
    let v = verify(&env).await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["problems"][0]["kind"], "call_log_mismatch", "{v}");
    let seq = v["problems"][0]["seq"].as_i64().unwrap();
    assert!(seals.iter().any(|e| e["seq"] == seq), "{v}");
}

#[tokio::test]
async fn a_removed_or_forged_call_record_fails_verification() {
    let env = Env::start().await;
    some_calls(&env).await;
    tamper(&env, "DELETE FROM http_calls WHERE event = 'refused'").await;
    let v = verify(&env).await;
    assert_eq!(v["problems"][0]["kind"], "call_log_mismatch", "{v}");

    let env = Env::start().await;
    some_calls(&env).await;
    // A record under a batch number no entry seals.
    tamper(
        &env,
        "INSERT INTO http_calls (batch_seq, pos, call_id, event, at, principal, resource, details) \
         SELECT 1000000, pos, call_id, event, at, principal, resource, details FROM http_calls \
         WHERE event = 'ended' LIMIT 1",
    )
    .await;
    let v = verify(&env).await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["problems"][0]["kind"], "call_log_mismatch", "{v}");
    assert_eq!(v["problems"][0]["seq"], 1_000_000, "{v}");
}

#[tokio::test]
async fn concurrent_admissions_share_commits() {
    let env = Env::start().await;
    let alice = env.token("alice").await;
    env.grant(&alice, "refunds-admin", "10m").await;
    let calls = (0..32).map(|i| {
        let path = format!("/payments-admin/v1/refunds/{i}");
        let (env, alice) = (&env, &alice);
        async move { env.call(alice, "POST", &path).await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(env.records("admitted").await.len(), 32);
    // Each admission was durable before its call was forwarded, yet fewer commits than
    // calls: some batch sealed several admissions.
    let most = env
        .entries("http.calls.recorded")
        .await
        .iter()
        .map(|e| e["details"]["admitted"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(most > 1, "every admission had a commit of its own");
    env.wait_calls(32).await;
    assert_eq!(verify(&env).await["ok"], true);
}

#[tokio::test]
async fn request_bytes_are_counted_as_sent_and_a_body_over_the_limit_is_listed_refused() {
    let env = Env::start().await;
    let alice = env.token("alice").await;
    env.grant(&alice, "refunds-admin", "10m").await;
    let r = env
        .client
        .post(format!(
            "http://{}/payments-admin/v1/refunds/9",
            env.gateway
        ))
        .bearer_auth(&alice)
        .body(vec![b'x'; 700])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let calls = env.wait_calls(1).await;
    assert_eq!(calls[0]["bytes_in"], 700, "{}", calls[0]);
    assert!(calls[0]["bytes_out"].as_u64().unwrap() > 0);

    // Declared over the service's limit (1024 bytes): refused before anything is sent.
    let r = env
        .client
        .post(format!(
            "http://{}/payments-admin/v1/refunds/10",
            env.gateway
        ))
        .bearer_auth(&alice)
        .body(vec![b'x'; 2000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let refused = env.wait_refused(1).await;
    assert_eq!(refused[0]["status"], 413);
    assert_eq!(refused[0]["path"], "/v1/refunds/10");
    assert!(
        refused[0]["outcome"]
            .as_str()
            .unwrap()
            .starts_with("refused: request body is larger than"),
        "{}",
        refused[0]
    );
    assert_eq!(env.upstream.seen().len(), 1);
}
