//! The refunds story of the product brief, end to end: the service account `ci-bot` asks for
//! `POST /v1/refunds/*` on `http:payments-admin` for ten minutes, policy approves at once,
//! its calls pass through the gateway and each is audited, and ten minutes later (on the
//! server's clock) they are refused.

use crate::harness::{Env, Options, ADMIN_TOKEN};
use chrono::TimeDelta;
use std::sync::Arc;

#[tokio::test]
async fn ci_bot_refunds_for_ten_minutes() {
    let start = sluice_core::clock::truncate_ms(sluice_core::Clock::now(&sluice_core::SystemClock));
    let clock = Arc::new(sluice_core::ManualClock::new(start));
    let env = Env::with(Options {
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let bot = env.token("ci-bot").await;
    let (grant, expires_at) = env.grant(&bot, "refunds-admin", "10m").await;
    assert_eq!(expires_at - start, TimeDelta::minutes(10));

    for id in [101, 102, 103] {
        let r = env
            .call(&bot, "POST", &format!("/payments-admin/v1/refunds/{id}"))
            .await;
        assert_eq!(r.status(), 200, "refund {id}");
    }
    // Only refunds: the grant names them.
    let (status, _) = env
        .call_json(&bot, "GET", "/payments-admin/v1/orders/1")
        .await;
    assert_eq!(status, 403);

    clock.advance(TimeDelta::minutes(9) + TimeDelta::seconds(59));
    assert_eq!(
        env.call(&bot, "POST", "/payments-admin/v1/refunds/104")
            .await
            .status(),
        200
    );
    clock.advance(TimeDelta::seconds(1));
    let (status, v) = env
        .call_json(&bot, "POST", "/payments-admin/v1/refunds/105")
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("grant_expired")),
        "{v}"
    );
    assert_eq!(env.upstream.seen().len(), 4);

    // Every call is in the trail under the grant, and listed by the API the CLI reads.
    let calls = env.wait_calls(4).await;
    assert!(calls.iter().all(|c| c["grant_id"] == grant.as_str()));
    assert_eq!(env.records("admitted").await.len(), 4);
    // Listed by the API the CLI reads: the four calls and the two refusals, in order.
    let refused = env.wait_refused(2).await;
    assert_eq!(env.listed().await.len(), 6);
    assert_eq!(calls[0]["principal"], "ci-bot");
    assert_eq!(calls[0]["path"], "/v1/refunds/101");
    assert_eq!(calls[3]["path"], "/v1/refunds/104");
    assert!(refused.iter().all(|c| c["status"] == 403));
    assert_eq!(refused[0]["path"], "/v1/orders/1");
    let expired = refused[1]["outcome"].as_str().unwrap();
    assert!(
        expired.starts_with(&format!(
            "refused: grant {grant} for `POST /v1/refunds/105`"
        )),
        "{expired}"
    );
    assert!(calls.iter().all(|c| c["status"] == 200));
    // The bot sees its own calls; someone else sees none of them.
    let alice = env.token("alice").await;
    let own = env.get(&bot, "/v1/http/calls?service=payments-admin").await;
    assert_eq!(own["calls"].as_array().unwrap().len(), 6);
    let other = env
        .get(&alice, "/v1/http/calls?service=payments-admin")
        .await;
    assert!(other["calls"].as_array().unwrap().is_empty());
    // And the trail still verifies.
    let v = env.get(ADMIN_TOKEN, "/v1/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");
}
