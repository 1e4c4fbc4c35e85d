//! Calls in progress are the HTTP gateway's sessions: listed with principal, grant, service,
//! method, path, start and time left (each caller its own, administrators and auditors all),
//! and killed by an administrator — audited first, then the stream is cut at once.

use crate::harness::{Env, ADMIN_TOKEN};
use futures_util::StreamExt;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Waits until the caller sees `n` calls in progress; returns them.
pub async fn wait_live(env: &Env, token: &str, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let v = env.get(token, "/v1/http/sessions").await;
        let calls = v["calls"].as_array().unwrap().clone();
        if calls.len() == n {
            return calls;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{} calls in progress after 5 s, wanted {n}: {v}",
            calls.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_progress_is_listed_and_an_administrator_kills_it_at_once() {
    let env = Env::start().await;
    let (alice, bob) = (env.token("alice").await, env.token("bob").await);
    let (grant, expires_at) = env.grant(&alice, "stream-read", "1h").await;
    let r = env.call(&alice, "GET", "/payments-admin/stream").await;
    assert_eq!(r.status(), 200);
    let reading = tokio::spawn(async move {
        let mut body = r.bytes_stream();
        let mut n = 0;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), body.next()).await {
                Ok(Some(Ok(chunk))) => n += chunk.len(),
                Ok(Some(Err(_))) => return (n, true),
                Ok(None) => return (n, false),
                Err(_) => panic!("the stream was not cut within 5 s"),
            }
        }
    });

    let calls = wait_live(&env, &alice, 1).await;
    let c = &calls[0];
    assert_eq!(c["principal"], "alice");
    assert_eq!(c["grant_id"], grant.as_str());
    assert_eq!(c["service"], "payments-admin");
    assert_eq!(
        (c["method"].as_str(), c["path"].as_str()),
        (Some("GET"), Some("/stream"))
    );
    assert_eq!(c["websocket"], false);
    let listed_end: chrono::DateTime<chrono::Utc> =
        c["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(listed_end, expires_at);
    let left = c["seconds_left"].as_i64().unwrap();
    assert!((3590..=3600).contains(&left), "{c}");
    assert!(
        c["started_at"].is_string() && c["client_addr"].is_string(),
        "{c}"
    );
    let id = c["id"].as_str().unwrap().to_owned();

    // Least privilege: bob sees none of alice's calls, nor may he end one; alice neither.
    assert!(wait_live(&env, &bob, 0).await.is_empty());
    assert_eq!(wait_live(&env, ADMIN_TOKEN, 1).await[0]["id"], id.as_str());
    for who in [&alice, &bob] {
        let (status, v) = env
            .api(who, "POST", &format!("/v1/http/sessions/{id}/kill"), None)
            .await;
        assert_eq!(
            (status, v["code"].as_str()),
            (403, Some("forbidden")),
            "{v}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!reading.is_finished(), "the stream ended before the kill");

    let (status, v) = env
        .api(
            ADMIN_TOKEN,
            "POST",
            &format!("/v1/http/sessions/{id}/kill"),
            None,
        )
        .await;
    let killed = Instant::now();
    assert_eq!(
        (status, v["killed"].as_str()),
        (200, Some(id.as_str())),
        "{v}"
    );
    let (bytes, cut) = reading.await.unwrap();
    assert!(cut, "the stream ended as if complete");
    assert!(bytes > 0);
    assert!(
        killed.elapsed() < Duration::from_millis(500),
        "cut {:?} after the kill",
        killed.elapsed()
    );

    // Audited before it was cut; recorded as cut; no longer in progress.
    let entries = env.entries("http.call.killed").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(e["actor"], "admin");
    assert_eq!(e["resource"], "http:payments-admin");
    assert_eq!(e["subject_id"], id.as_str());
    assert_eq!(e["details"]["principal"], "alice");
    assert_eq!(e["details"]["grant_id"], grant.as_str());
    let ended = env.wait_calls(1).await;
    assert_eq!(ended[0]["id"], id.as_str());
    assert_eq!(ended[0]["outcome"], "cut: killed by admin");
    wait_live(&env, ADMIN_TOKEN, 0).await;
    let (status, v) = env
        .api(
            ADMIN_TOKEN,
            "POST",
            &format!("/v1/http/sessions/{id}/kill"),
            None,
        )
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );

    // The grant is untouched: the next call goes through.
    let r = env.call(&alice, "GET", "/payments-admin/stream").await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_for_the_upstream_is_listed_and_killed_before_its_response() {
    let env = Env::start().await;
    let alice = env.token("alice").await;
    env.grant(&alice, "payments-read", "1h").await;
    // `/slow` answers after 3 s.
    let gateway = env.gateway;
    let caller = alice.clone();
    let waiting = tokio::spawn(async move {
        let r = reqwest::Client::new()
            .get(format!("http://{gateway}/payments-admin/v1/orders/slow"))
            .bearer_auth(caller)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap_or(Value::Null))
    });
    let calls = wait_live(&env, ADMIN_TOKEN, 1).await;
    let id = calls[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(calls[0]["path"], "/v1/orders/slow");
    let (status, _) = env
        .api(
            ADMIN_TOKEN,
            "POST",
            &format!("/v1/http/sessions/{id}/kill"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let killed = Instant::now();
    let (status, v) = waiting.await.unwrap();
    assert!(
        killed.elapsed() < Duration::from_millis(500),
        "{:?}",
        killed.elapsed()
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("access_ended")),
        "{v}"
    );
    assert!(
        v["message"].as_str().unwrap().contains("ended by admin"),
        "{v}"
    );
    let ended = env.wait_calls(1).await;
    assert_eq!(ended[0]["outcome"], "cut: killed by admin");
}
