//! Notifications through the real binary, on the real clock: `sluice serve` with a
//! `notifications:` section (the secret from the environment) delivers to a real receiver;
//! SIGKILLed while the receiver is down and every notification pending, then restarted with
//! the receiver back, it delivers every one of them, none lost, each under its own id; and
//! `sluice notifications list|show|retry` tell the story. On SQLite and on PostgreSQL.

use crate::harness::{pg_url, Serve, ADMIN_TOKEN, POLICY};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Clone, Default)]
struct Receiver {
    ids: Arc<Mutex<Vec<String>>>,
    down: Arc<AtomicBool>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap) -> StatusCode {
    if r.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    r.ids.lock().expect("lock").push(id);
    StatusCode::NO_CONTENT
}

async fn receiver() -> (String, Receiver) {
    let r = Receiver::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, r)
}

async fn outbox(s: &Serve) -> Value {
    s.json(
        Some(ADMIN_TOKEN),
        &["notifications", "list", "--limit", "1000"],
    )
    .await
}

async fn until(s: &Serve, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let v = outbox(s).await;
        if f(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}: {}", outbox(s).await);
}

async fn killed_with_notifications_pending_delivers_them_after_restart(dir: &Path, extra: &[&str]) {
    let (url, rx) = receiver().await;
    rx.down.store(true, Ordering::SeqCst);
    let config = dir.join("sluice.yaml");
    std::fs::write(
        &config,
        format!(
            "notifications:\n  max_attempts: 100\n  backoff: 200ms\n  backoff_cap: 400ms\n  lease: 2s\n  sinks:\n    - name: hook\n      kind: webhook\n      url: {url}\n      secret_env: SLUICE_TEST_WEBHOOK_SECRET\n"
        ),
    )
    .expect("write config");
    let config = config.display().to_string();
    let mut args = vec!["--config", config.as_str()];
    args.extend_from_slice(extra);
    let vars = [("SLUICE_TEST_WEBHOOK_SECRET", SECRET)];
    let s = Serve::start_with_env(dir, &args, &vars).await;
    let http = reqwest::Client::new();
    let r = http
        .post(s.url("/v1/policy"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"source": POLICY}))
        .send()
        .await
        .expect("apply");
    assert!(r.status().is_success());
    let r: Value = http
        .post(s.url("/v1/tokens"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"principal": "alice", "name": "t"}))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let alice = r["token"].as_str().expect("token").to_owned();
    // Ten auto-approved requests: opened, approved, granted each.
    for i in 0..10 {
        let r = http
            .post(s.url("/v1/requests"))
            .bearer_auth(&alice)
            .json(&json!({"entitlement": "flags-prod-operator", "duration": "10m", "reason": format!("INC-{i}")}))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    }
    let before = until(&s, "thirty tried", |v| {
        v["notifications"]
            .as_array()
            .is_some_and(|a| a.len() == 30 && a.iter().all(|n| n["attempts"].as_i64() >= Some(1)))
    })
    .await;
    assert_eq!(before["pending"], 30, "{before}");
    let ids: BTreeSet<String> = before["notifications"]
        .as_array()
        .expect("list")
        .iter()
        .map(|n| n["id"].as_str().expect("id").to_owned())
        .collect();
    s.kill().await;
    rx.down.store(false, Ordering::SeqCst);
    let s = Serve::start_with_env(dir, &args, &vars).await;
    let after = until(&s, "thirty delivered", |v| v["delivered"] == 30).await;
    assert_eq!(
        (after["pending"].clone(), after["dead"].clone()),
        (json!(0), json!(0))
    );
    let got: BTreeSet<String> = rx.ids.lock().expect("lock").iter().cloned().collect();
    assert_eq!(
        got, ids,
        "every notification delivered, under the id it was written with"
    );
    // The CLI for people: totals, one notification's attempts, a retry that has nothing to do.
    let list = s.ok(Some(ADMIN_TOKEN), &["notifications", "list"]).await;
    assert!(list.contains("0 pending, 30 delivered, 0 dead"), "{list}");
    let id = ids.iter().next().expect("one");
    let show = s
        .ok(Some(ADMIN_TOKEN), &["notifications", "show", id])
        .await;
    assert!(
        show.contains("HTTP 503") && show.contains("HTTP 204"),
        "{show}"
    );
    let retry = s
        .ok(Some(ADMIN_TOKEN), &["notifications", "retry", id])
        .await;
    assert!(retry.contains("already delivered"), "{retry}");
    let metrics = http
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("sluice_notifications_delivered_total 30"),
        "{metrics}"
    );
    s.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_with_notifications_pending_delivers_them_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    killed_with_notifications_pending_delivers_them_after_restart(dir.path(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_with_notifications_pending_delivers_them_after_restart() {
    let Some(url) = pg_url().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("audit-signing.pem");
    let key = key.display().to_string();
    killed_with_notifications_pending_delivers_them_after_restart(
        dir.path(),
        &["--database-url", &url, "--signing-key", &key],
    )
    .await;
}
