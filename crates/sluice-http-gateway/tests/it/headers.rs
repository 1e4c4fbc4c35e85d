//! The caller's token never reaches the upstream; the upstream credential never reaches the
//! caller. Every header is inspected, both ways.

use crate::harness::{Env, UPSTREAM_SECRET};

#[tokio::test]
async fn tokens_and_credentials_stay_on_their_side() {
    let env = Env::start().await;
    let alice = env.token("alice").await;
    env.grant(&alice, "refunds-admin", "10m").await;

    // The token as `Authorization: Bearer`, with hop-by-hop headers of the caller's own.
    let r = env
        .client
        .post(format!(
            "http://{}/payments-admin/v1/refunds/1",
            env.gateway
        ))
        .bearer_auth(&alice)
        .header("connection", "x-caller-hop")
        .header("x-caller-hop", "1")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-request-id", "r-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let back = r.headers().clone();
    // The token in the dedicated header, with an `Authorization` of the caller's own.
    let r = env
        .client
        .post(format!(
            "http://{}/payments-admin/v1/refunds/2",
            env.gateway
        ))
        .header(sluice_http_gateway::TOKEN_HEADER, &alice)
        .header("authorization", "Basic Y2FsbGVyOnB3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let back2 = r.headers().clone();

    let seen = env.upstream.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        for (name, value) in &s.headers {
            let v = value.to_str().unwrap_or_default();
            assert!(
                !v.contains(&alice),
                "the caller's token reached the upstream in {name}"
            );
            assert!(
                !v.contains("slu_"),
                "a Sluice token reached the upstream in {name}"
            );
        }
        assert!(!s.headers.contains_key(sluice_http_gateway::TOKEN_HEADER));
        // The gateway's credential replaces whatever the caller sent in its header.
        assert_eq!(s.headers["authorization"], UPSTREAM_SECRET);
        assert_eq!(s.headers.get_all("authorization").iter().count(), 1);
        assert_eq!(s.headers["x-forwarded-proto"], "http");
        assert_eq!(
            s.headers["x-forwarded-host"].to_str().unwrap(),
            env.gateway.to_string()
        );
        assert!(!s.headers.contains_key("connection"));
    }
    assert!(
        !seen[0].headers.contains_key("x-caller-hop"),
        "{:?}",
        seen[0].headers
    );
    assert_eq!(seen[0].headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen[0].headers["x-request-id"], "r-1");
    assert_eq!(seen[1].headers["x-forwarded-for"], "127.0.0.1");

    for h in [&back, &back2] {
        for (name, value) in h {
            assert!(
                !value
                    .to_str()
                    .unwrap_or_default()
                    .contains("upstream-secret"),
                "the upstream credential came back in {name}"
            );
        }
        // The upstream's hop-by-hop headers, and the one its `Connection` names, stay there.
        assert!(!h.contains_key("x-upstream-hop"), "{h:?}");
        assert!(!h.contains_key("x-debug-authorization"), "{h:?}");
    }
}
