//! Token guessing through the gateway counts with the API's: failures per source address (and
//! per token prefix) slow, then refuse with `429` and `Retry-After`, on the gateway and on the
//! API alike, while another address is served as usual.

use crate::harness::{Env, Options};
use sluice_server::auth_failures::REFUSE_AFTER;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// A client whose connections come from `127.0.0.<n>`.
fn client_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .build()
        .unwrap()
}

/// A well-formed API token nobody holds, each with its own prefix (so only the source counts).
fn guess(n: u32) -> String {
    format!("slu_api_{:016x}{:048x}", 0xdead_0000_u64 + u64::from(n), n)
}

#[tokio::test]
async fn a_guesser_through_the_gateway_is_refused_with_429_here_and_on_the_api() {
    // The failures are counted by the minute of the App clock: a fixed one, so the count
    // cannot start afresh half-way through.
    let start = sluice_core::clock::truncate_ms(sluice_core::Clock::now(&sluice_core::SystemClock));
    let env = Env::with(Options {
        clock: Some(Arc::new(sluice_core::ManualClock::new(start))),
        ..Default::default()
    })
    .await;
    let bot = env.token("ci-bot").await;
    env.grant(&bot, "refunds-admin", "10m").await;
    // Tokens this instance has not verified yet (not in its token cache).
    let fresh = env.token("ci-bot").await;
    let guesser = client_from(2);
    let call = |c: &reqwest::Client, token: &str| {
        c.post(format!(
            "http://{}/payments-admin/v1/refunds/1",
            env.gateway
        ))
        .bearer_auth(token)
        .send()
    };
    for n in 1..=REFUSE_AFTER {
        let r = call(&guesser, &guess(n)).await.unwrap();
        assert_eq!(r.status(), 401, "failure {n}");
    }
    // The address is refused now, a right token included (it is not told apart).
    let r = call(&guesser, &fresh).await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "too_many_failed_authentications", "{v}");
    // One count: the API refuses the same address too.
    let r = guesser
        .get(format!("http://{}/v1/whoami", env.http))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // Nothing reached the upstream; another address is served.
    assert!(env.upstream.seen().is_empty());
    let r = call(&client_from(3), &fresh).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(env.upstream.seen().len(), 1);
}
