//! The call ends with the grant: a streaming response in progress is cut within a second of
//! expiry or revocation, and the next call is refused, saying when the grant ended.

use crate::harness::{Env, Options, ADMIN_TOKEN};
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads a streaming response until it fails; returns how many bytes came and whether it
/// failed (a cut) rather than ending cleanly.
async fn read_until_cut(r: reqwest::Response) -> (usize, bool) {
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
}

fn wall_now() -> DateTime<Utc> {
    sluice_core::Clock::now(&sluice_core::SystemClock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_cut_within_a_second_of_a_real_expiry() {
    let env = Env::start().await;
    let alice = env.token("alice").await;
    let (grant, expires_at) = env.grant(&alice, "stream-read", "2s").await;
    let r = env.call(&alice, "GET", "/payments-admin/stream").await;
    assert_eq!(r.status(), 200);
    let (bytes, cut) = read_until_cut(r).await;
    let late = wall_now() - expires_at;
    assert!(cut, "the stream ended as if complete");
    assert!(bytes > 0);
    assert!(late < TimeDelta::seconds(1), "cut {late} after expiry");

    let (status, v) = env.call_json(&alice, "GET", "/payments-admin/stream").await;
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("grant_expired")),
        "{v}"
    );
    assert_eq!(v["grant_id"], grant.as_str());
    let calls = env.wait_calls(1).await;
    assert_eq!(calls[0]["outcome"], "cut: grant expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_injected_clock_expiry_cuts_the_stream_and_refuses_the_next_call() {
    let clock = Arc::new(sluice_core::ManualClock::new(wall_now()));
    let env = Env::with(Options {
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let alice = env.token("alice").await;
    let (grant, expires_at) = env.grant(&alice, "stream-read", "1h").await;
    let r = env.call(&alice, "GET", "/payments-admin/stream").await;
    assert_eq!(r.status(), 200);
    let reading = tokio::spawn(read_until_cut(r));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!reading.is_finished());

    // An hour passes on the clock the server was given.
    clock.set(expires_at);
    let moved = Instant::now();
    let (_, cut) = reading.await.unwrap();
    assert!(cut);
    assert!(
        moved.elapsed() < Duration::from_secs(1),
        "cut after {:?}",
        moved.elapsed()
    );

    let (status, v) = env.call_json(&alice, "GET", "/payments-admin/stream").await;
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("grant_expired")),
        "{v}"
    );
    assert_eq!(v["grant_id"], grant.as_str());
    assert_eq!(
        v["expired_at"],
        expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_cuts_a_stream_within_a_second() {
    let env = Env::start().await;
    let alice = env.token("alice").await;
    let (grant, _) = env.grant(&alice, "stream-read", "1h").await;
    let r = env.call(&alice, "GET", "/payments-admin/stream").await;
    assert_eq!(r.status(), 200);
    let reading = tokio::spawn(read_until_cut(r));
    tokio::time::sleep(Duration::from_millis(200)).await;
    env.post(
        ADMIN_TOKEN,
        &format!("/v1/requests/{grant}/revoke"),
        json!({"reason": "test"}),
        200,
    )
    .await;
    let revoked = Instant::now();
    let (_, cut) = reading.await.unwrap();
    assert!(cut);
    assert!(
        revoked.elapsed() < Duration::from_secs(1),
        "cut after {:?}",
        revoked.elapsed()
    );
    let (status, v) = env.call_json(&alice, "GET", "/payments-admin/stream").await;
    assert_eq!((status, v["code"].as_str()), (403, Some("no_grant")), "{v}");
    let calls = env.wait_calls(1).await;
    assert_eq!(calls[0]["outcome"], "cut: grant revoked");
}
