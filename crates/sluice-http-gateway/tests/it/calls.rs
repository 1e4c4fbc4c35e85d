//! What passes and what does not: the decision on `METHOD path` after canonicalisation.

use crate::harness::{Env, ADMIN_TOKEN};

#[tokio::test]
async fn a_granted_call_passes_and_others_are_refused_with_what_to_request() {
    let env = Env::start().await;
    let alice = env.token("alice").await;

    // No grant yet: 403 naming the entitlement and the command, upstream untouched.
    let (status, v) = env
        .call_json(&alice, "POST", "/payments-admin/v1/refunds/42")
        .await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["code"], "no_grant");
    assert_eq!(v["entitlement"], "refunds-admin");
    assert_eq!(
        v["request"],
        "sluice access request refunds-admin --for 10m --reason \"…\""
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("alice has no live grant for `POST /v1/refunds/42` on http:payments-admin"),
        "{v}"
    );
    assert!(env.upstream.seen().is_empty());

    let (grant, _) = env.grant(&alice, "refunds-admin", "10m").await;
    let r = env
        .call(&alice, "POST", "/payments-admin/v1/refunds/42")
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), r#"{"ok":true}"#);
    let seen = env.upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].uri.as_str()),
        ("POST", "/v1/refunds/42")
    );

    // Another method, or another path, under the same grant: refused, never forwarded.
    for (method, path) in [
        ("GET", "/payments-admin/v1/refunds/42"),
        ("DELETE", "/payments-admin/v1/refunds/42"),
        ("POST", "/payments-admin/v1/refunds/42/void"),
        ("POST", "/payments-admin/v1/refunds/42/"),
        ("POST", "/payments-admin/v1/payouts/42"),
        ("POST", "/payments-admin/v1/refunds"),
    ] {
        let (status, v) = env.call_json(&alice, method, path).await;
        assert_eq!(status, 403, "{method} {path}: {v}");
        assert_eq!(v["code"], "no_grant", "{method} {path}");
    }
    assert_eq!(env.upstream.seen().len(), 1);

    // The call is in the trail, linked to the grant.
    let calls = env.wait_calls(1).await;
    let d = &calls[0];
    assert_eq!(d["principal"], "alice");
    assert_eq!(d["service"], "payments-admin");
    assert_eq!(d["grant_id"], grant.as_str());
    assert_eq!(
        (d["method"].as_str(), d["path"].as_str()),
        (Some("POST"), Some("/v1/refunds/42"))
    );
    assert_eq!(d["status"], 200);
    assert_eq!(d["outcome"], "completed");
    assert!(d["bytes_out"].as_u64().unwrap() > 0);
    // Admitted (durably) before it was forwarded: fail-closed is the default.
    assert_eq!(env.records("admitted").await, [d["id"].as_str().unwrap()]);
    // Refusals by policy are in the trail too, and listed with the calls, with their outcome.
    assert!(!env.entries("refused").await.is_empty());
    let refused = env.wait_refused(7).await;
    assert_eq!(
        (refused[0]["method"].as_str(), refused[0]["path"].as_str()),
        (Some("POST"), Some("/v1/refunds/42"))
    );
    assert!(refused.iter().all(|c| c["status"] == 403
        && c["principal"] == "alice"
        && c["grant_id"] == ""
        && c["outcome"]
            .as_str()
            .unwrap()
            .starts_with("refused: alice has no live grant for")));
    assert_eq!(refused.last().unwrap()["path"], "/v1/refunds");
    // The batches sealing these records verify.
    let v = env.get(ADMIN_TOKEN, "/v1/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");
}

#[tokio::test]
async fn traversal_and_encodings_never_reach_an_unauthorised_path() {
    let env = Env::start().await;
    let alice = env.token("alice").await;
    env.grant(&alice, "refunds-admin", "10m").await;

    // Resolved before the decision, forwarded resolved: allowed because the result is.
    for (path, upstream) in [
        ("/payments-admin/v1/payouts/../refunds/7", "/v1/refunds/7"),
        (
            "/payments-admin/v1/payouts/%2e%2e/refunds/8",
            "/v1/refunds/8",
        ),
        ("/payments-admin/v1/%72efunds/9", "/v1/refunds/9"),
        (
            "/payments-admin/v1/./refunds/10?dry_run=1",
            "/v1/refunds/10?dry_run=1",
        ),
    ] {
        let (status, v) = env.raw(&alice, "POST", path).await;
        assert_eq!(status, 200, "{path}: {v}");
        assert_eq!(env.upstream.seen().last().unwrap().uri, upstream, "{path}");
    }
    let forwarded = env.upstream.seen().len();

    // Resolved to a path the grant does not cover: 403.
    for path in [
        "/payments-admin/v1/refunds/42/../../payouts/1",
        "/payments-admin/v1/refunds/%2e%2e/payouts",
        "/payments-admin/v1/refunds/42/%2E%2E/%2e%2e/payouts",
    ] {
        let (status, v) = env.raw(&alice, "POST", path).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (403, Some("no_grant")),
            "{path}: {v}"
        );
    }
    // Ambiguous: 400, whatever the grant.
    for path in [
        "/payments-admin/v1/refunds%2f42",
        "/payments-admin/v1/refunds/42%2F..%2F..%2Fpayouts",
        "/payments-admin/v1/refunds/%252e%252e",
        "/payments-admin/v1/refunds/..;/payouts",
        "/payments-admin/v1//refunds/42",
        "/payments-admin/v1/refunds/%E2%80%A5",
        "/payments-admin/../../v1/refunds/42",
    ] {
        let (status, v) = env.raw(&alice, "POST", path).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some("ambiguous_path")),
            "{path}: {v}"
        );
    }
    // A lower-case method is another method to HTTP: refused, not folded into POST.
    let (status, v) = env
        .raw(&alice, "post", "/payments-admin/v1/refunds/42")
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("ambiguous_method")),
        "{v}"
    );
    assert_eq!(
        env.upstream.seen().len(),
        forwarded,
        "a refused call reached the upstream"
    );
}

#[tokio::test]
async fn only_a_grant_holder_learns_that_a_service_is_not_served() {
    let env = Env::start().await;
    let alice = env.token("alice").await;
    let bob = env.token("bob").await;
    // `http:ledger` is in the policy but not served by this gateway; `http:nothing` is neither.
    let (s1, v1) = env.call_json(&bob, "GET", "/ledger/accounts").await;
    let (s2, v2) = env.call_json(&bob, "GET", "/payments-admin/accounts").await;
    assert_eq!((s1, s2), (403, 403), "{v1} {v2}");
    assert_eq!(v1["code"], v2["code"]);
    let (s3, v3) = env.call_json(&bob, "GET", "/nothing/x").await;
    assert_eq!((s3, v3["code"].as_str()), (403, Some("no_grant")), "{v3}");

    env.grant(&alice, "ledger", "10m").await;
    let (status, v) = env.call_json(&alice, "GET", "/ledger/accounts").await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("unknown_service")),
        "{v}"
    );
    assert!(env.upstream.seen().is_empty());
}

#[tokio::test]
async fn no_token_or_a_bad_token_is_401() {
    let env = Env::start().await;
    let r = env
        .client
        .post(format!(
            "http://{}/payments-admin/v1/refunds/1",
            env.gateway
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "unauthenticated");
    let bad = "slu_api_0000000000000000000000000000000000000000000000000000000000000bad";
    let (status, v) = env
        .call_json(bad, "POST", "/payments-admin/v1/refunds/1")
        .await;
    assert_eq!((status, v["code"].as_str()), (401, Some("unauthenticated")));
    assert!(env.upstream.seen().is_empty());
}

#[tokio::test]
async fn an_upstream_that_is_down_is_a_502_naming_the_service_and_audited() {
    let env = Env::with(crate::harness::Options {
        upstream_down: true,
        ..Default::default()
    })
    .await;
    let alice = env.token("alice").await;
    env.grant(&alice, "refunds-admin", "10m").await;
    let (status, v) = env
        .call_json(&alice, "POST", "/payments-admin/v1/refunds/1")
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (502, Some("upstream_unavailable")),
        "{v}"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("http:payments-admin"),
        "{v}"
    );
    let calls = env.wait_calls(1).await;
    assert_eq!(calls[0]["status"], 502);
}
