//! SIGKILL in the middle of a stream of writes: whatever the client saw acknowledged is in the
//! audit trail exactly once after a restart, and the chain still verifies.

use crate::harness::{Serve, ADMIN_TOKEN, POLICY};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 3;
const MAX_ROUNDS: usize = 200;
const KILL_AFTER_ACKS: usize = 80;

#[derive(Debug, Default)]
struct Seen {
    requested: Vec<String>,
    approved: Vec<String>,
}

async fn post(http: &reqwest::Client, url: String, token: &str, body: Value) -> Option<Value> {
    let resp = http
        .post(url)
        .bearer_auth(token)
        .timeout(Duration::from_secs(5))
        .json(&body)
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// Requests and approvals in a loop, bounded in rounds and time, until the server goes away.
async fn client(base: String, requester: String, approver: String, acks: Arc<AtomicUsize>) -> Seen {
    let http = reqwest::Client::new();
    let mut seen = Seen::default();
    let deadline = Instant::now() + Duration::from_secs(15);
    for round in 0..MAX_ROUNDS {
        if Instant::now() > deadline {
            break;
        }
        let body = json!({"entitlement": "orders-db-read", "duration": "1h", "reason": format!("round {round}")});
        let Some(v) = post(&http, format!("{base}/v1/requests"), &requester, body).await else {
            break;
        };
        let id = v["id"].as_str().expect("id").to_owned();
        seen.requested.push(id.clone());
        acks.fetch_add(1, Ordering::SeqCst);
        let url = format!("{base}/v1/requests/{id}/approve");
        if post(&http, url, &approver, json!({})).await.is_none() {
            break;
        }
        seen.approved.push(id);
        acks.fetch_add(1, Ordering::SeqCst);
    }
    seen
}

async fn token(http: &reqwest::Client, s: &Serve, principal: &str) -> String {
    let resp = http
        .post(s.url("/v1/tokens"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"principal": principal, "name": "crash"}))
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let v: Value = resp.json().await.expect("json");
    v["token"].as_str().expect("token").to_owned()
}

/// `subject_id` → how many entries with this action.
async fn counts(http: &reqwest::Client, s: &Serve, action: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut after = 0i64;
    loop {
        let page: Value = http
            .get(s.url(&format!(
                "/v1/audit?action={action}&after={after}&limit=1000"
            )))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("audit")
            .json()
            .await
            .expect("json");
        for e in page["entries"].as_array().expect("entries") {
            if e["action"] == action {
                let id = e["subject_id"].as_str().expect("subject").to_owned();
                *out.entry(id).or_insert(0) += 1;
            }
        }
        match page["next_after"].as_i64() {
            Some(n) => after = n,
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_sigkill_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    let http = reqwest::Client::new();
    let resp = http
        .post(s.url("/v1/policy"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"source": POLICY}))
        .send()
        .await
        .expect("apply");
    assert_eq!(resp.status(), StatusCode::OK);
    let (dave, alice, bob) = (
        token(&http, &s, "dave").await,
        token(&http, &s, "alice").await,
        token(&http, &s, "bob").await,
    );

    let acks = Arc::new(AtomicUsize::new(0));
    let base = format!("http://{}", s.addr);
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let requester = if i % 2 == 0 { &dave } else { &alice };
        clients.push(tokio::spawn(client(
            base.clone(),
            requester.clone(),
            bob.clone(),
            acks.clone(),
        )));
    }
    // Let the stream get going, then pull the plug while requests are in flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    while acks.load(Ordering::SeqCst) < KILL_AFTER_ACKS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        acks.load(Ordering::SeqCst) >= KILL_AFTER_ACKS,
        "the clients made progress before the kill"
    );
    s.kill().await;
    let mut seen = Seen::default();
    for c in clients {
        let one = c.await.expect("client");
        seen.requested.extend(one.requested);
        seen.approved.extend(one.approved);
    }
    assert!(!seen.requested.is_empty() && !seen.approved.is_empty());
    eprintln!(
        "acknowledged before the kill: {} requests, {} approvals",
        seen.requested.len(),
        seen.approved.len()
    );

    // Restart over the same data directory.
    let s = Serve::start(dir.path()).await;
    let requested = counts(&http, &s, "access.requested").await;
    let approved = counts(&http, &s, "access.approved").await;
    let granted = counts(&http, &s, "access.granted").await;
    for id in &seen.requested {
        assert_eq!(requested.get(id), Some(&1), "acknowledged request {id}");
    }
    for id in &seen.approved {
        assert_eq!(approved.get(id), Some(&1), "acknowledged approval of {id}");
        assert_eq!(granted.get(id), Some(&1), "grant of {id}");
    }
    // Whatever was in flight at the kill is there completely or not at all.
    for (id, n) in requested.iter().chain(&approved).chain(&granted) {
        assert_eq!(*n, 1, "{id} recorded once");
    }
    for id in approved.keys() {
        assert!(
            granted.contains_key(id),
            "{id}: approval and grant commit together"
        );
    }
    for id in requested.keys() {
        let resp = http
            .get(s.url(&format!("/v1/requests/{id}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("show");
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "the audited request {id} exists"
        );
        let v: Value = resp.json().await.expect("json");
        let expected = if approved.contains_key(id) {
            "active"
        } else {
            "pending"
        };
        assert_eq!(v["status"], expected, "{v}");
    }

    let out = s.ok(Some(ADMIN_TOKEN), &["audit", "verify"]).await;
    assert!(out.starts_with("ok:"), "{out}");
}
