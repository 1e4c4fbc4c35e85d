//! Bad input gets a clear error with a stable code, and changes nothing.

use crate::harness::{Backend, TestServer, ADMIN_TOKEN};
use crate::{backend_tests, server};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Sends a raw body; returns (status, parsed body or the text as a string).
async fn raw(s: &TestServer, token: Option<&str>, path: &str, body: String) -> (StatusCode, Value) {
    let mut req = s
        .http
        .post(s.url(path))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("sent");
    let st = resp.status();
    let text = resp.text().await.expect("body");
    (
        st,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A 4xx with `{code, message}` and the expected code.
fn refused(got: (StatusCode, Value), status: StatusCode, code: &str, what: &str) -> String {
    let (st, body) = got;
    assert_eq!(st, status, "{what}: {body}");
    assert_eq!(body["code"].as_str(), Some(code), "{what}: {body}");
    let message = body["message"].as_str().unwrap_or("").to_owned();
    assert!(!message.is_empty(), "{what}: a message for people: {body}");
    message
}

/// Everything observable that a write would change.
async fn state(s: &TestServer) -> (usize, Value, Value, Value) {
    let (st, audit) = s.get(ADMIN_TOKEN, "/v1/audit?limit=1000").await;
    assert_eq!(st, StatusCode::OK);
    let (_, requests) = s.get(ADMIN_TOKEN, "/v1/requests").await;
    let (_, tokens) = s.get(ADMIN_TOKEN, "/v1/tokens?all=true").await;
    let (_, policy) = s.get(ADMIN_TOKEN, "/v1/policy").await;
    (
        audit["entries"].as_array().map_or(0, Vec::len),
        requests,
        tokens,
        policy,
    )
}

async fn malformed_and_unknown_input_is_refused_with_a_code(b: Backend) {
    let s = server!(b);
    let dave = s.token("dave").await;
    let before = state(&s).await;
    let bad = StatusCode::BAD_REQUEST;

    refused(
        raw(&s, Some(&dave), "/v1/requests", "{\"entitlement\": ".into()).await,
        bad,
        "invalid_json",
        "truncated JSON",
    );
    refused(
        raw(&s, Some(&dave), "/v1/requests", "[1, 2]".into()).await,
        bad,
        "invalid_json",
        "not an object",
    );
    refused(
        raw(
            &s,
            Some(&dave),
            "/v1/requests",
            "{\"entitlement\": 5}".into(),
        )
        .await,
        bad,
        "invalid_json",
        "wrong type",
    );
    let m = refused(
        s.post(
            &dave,
            "/v1/requests",
            json!({"entitlement": "orders-db-read", "duration": "1h", "approved": true}),
        )
        .await,
        bad,
        "unknown_field",
        "unknown field on /v1/requests",
    );
    assert!(m.contains("approved"), "names the field: {m}");
    refused(
        s.post(
            ADMIN_TOKEN,
            "/v1/policy",
            json!({"source": crate::harness::POLICY, "force": true}),
        )
        .await,
        bad,
        "unknown_field",
        "unknown field on /v1/policy",
    );
    refused(
        s.post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"principal": "dave", "name": "x", "admin": true}),
        )
        .await,
        bad,
        "unknown_field",
        "unknown field on /v1/tokens",
    );

    // Size and depth are bounded.
    let huge = json!({"entitlement": "orders-db-read", "duration": "1h", "reason": "x".repeat(300 * 1024)});
    let (st, body) = s.post(&dave, "/v1/requests", huge).await;
    assert!(st.is_client_error(), "oversized body: {st} {body}");
    assert!(
        body["code"].is_string() && body["message"].is_string(),
        "oversized body gets the JSON error shape: {body}"
    );
    let deep = format!(
        "{{\"entitlement\": \"orders-db-read\", \"reason\": {}1{}}}",
        "[".repeat(40),
        "]".repeat(40)
    );
    refused(
        raw(&s, Some(&dave), "/v1/requests", deep).await,
        bad,
        "too_deep",
        "nesting depth 40",
    );

    // Durations.
    for d in ["soon", "5 fortnights", "-5m", "0s", "", "400d"] {
        refused(
            s.request(&dave, "orders-db-read", d, "").await,
            bad,
            "invalid_duration",
            &format!("duration {d:?}"),
        );
    }
    refused(
        s.post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"principal": "dave", "name": "x", "expires_in": "forever"}),
        )
        .await,
        bad,
        "invalid_duration",
        "token expiry",
    );

    // Scope patterns.
    for pattern in ["db:***", "", "a*b*c*d*e*f*g*h*i*j"] {
        let body = json!({"entitlement": "orders-db-read", "duration": "1h",
            "scopes": [{"resource": pattern, "actions": ["read"]}]});
        refused(
            s.post(&dave, "/v1/requests", body).await,
            bad,
            "invalid_scope",
            &format!("scope {pattern:?}"),
        );
    }

    assert_eq!(state(&s).await, before, "nothing was written");
}

async fn apply(s: &TestServer, source: String) -> (StatusCode, Value) {
    s.post(ADMIN_TOKEN, "/v1/policy", json!({"source": source}))
        .await
}

async fn an_invalid_policy_is_refused_naming_the_place(b: Backend) {
    let s = server!(b);
    let before = state(&s).await;
    let bad = StatusCode::BAD_REQUEST;
    let unknown_group = crate::harness::POLICY.replace(
        "requesters: [group:engineers]",
        "requesters: [group:enginers]",
    );
    let m = refused(
        apply(&s, unknown_group).await,
        bad,
        "invalid_policy",
        "unknown group",
    );
    assert!(
        m.contains("entitlements[0].requesters[0]") && m.contains("enginers"),
        "names the path and the group: {m}"
    );

    let duplicate =
        crate::harness::POLICY.replace("name: orders-db-read", "name: flags-prod-operator");
    let m = refused(
        apply(&s, duplicate).await,
        bad,
        "invalid_policy",
        "duplicate entitlement",
    );
    assert!(
        m.contains("entitlements[1].name") && m.contains("flags-prod-operator"),
        "names the path and the entitlement: {m}"
    );

    let unknown_key =
        crate::harness::POLICY.replace("max_duration: 2h", "max_duration: 2h\n    maxx: 1");
    let m = refused(
        apply(&s, unknown_key).await,
        bad,
        "invalid_policy",
        "unknown key",
    );
    assert!(
        m.contains("maxx") && m.contains("line"),
        "names the key and the line: {m}"
    );

    let m = refused(
        apply(&s, "users: [alice\ngroups: {".into()).await,
        bad,
        "invalid_policy",
        "not YAML",
    );
    assert!(m.contains("line"), "names the line: {m}");

    let zero = crate::harness::POLICY.replace("required: 2", "required: 0");
    let m = refused(apply(&s, zero).await, bad, "invalid_policy", "no approvals");
    assert!(m.contains("entitlements[1].approval.required"), "{m}");

    // A dry run of a valid policy writes nothing either.
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/policy",
            json!({"source": crate::harness::POLICY.replace("pending_ttl: 30m", "pending_ttl: 40m"), "dry_run": true}),
        )
        .await;
    assert_eq!(
        (st, v["applied"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{v}"
    );

    assert_eq!(state(&s).await, before, "nothing was written");
}

async fn callers_without_a_valid_api_token_are_refused(b: Backend) {
    let s = server!(b);
    let before = state(&s).await;
    let body = json!({"entitlement": "orders-db-read", "duration": "1h"});
    let unauth = StatusCode::UNAUTHORIZED;
    for token in [
        None,
        Some("garbage"),
        Some("slu_api_0000000000000000000000000000000000000000000000000000000000000000"),
        Some(""),
    ] {
        let what = format!("token {token:?}");
        refused(
            raw(&s, token, "/v1/requests", body.to_string()).await,
            unauth,
            "unauthenticated",
            &what,
        );
        refused(
            raw(&s, token, "/access/v1/evaluation", "{}".into()).await,
            unauth,
            "unauthenticated",
            &what,
        );
    }
    let resp = s
        .http
        .get(s.url("/v1/requests"))
        .header("authorization", "Basic YWxpY2U6cw==")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), unauth, "another scheme is no token");

    // A client key (for flag evaluation) may not use the access API.
    let (st, key) = s
        .post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"name": "web", "kind": "client", "environment": "production"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{key}");
    let key = key["token"].as_str().expect("token").to_owned();
    // The key's own audit entry, and the refusal of it on the access API (a refused attempt is
    // recorded; nothing else is written).
    let before = (before.0 + 2, before.1, before.2, before.3);
    refused(
        s.post(&key, "/v1/requests", body.clone()).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "client key on /v1/requests",
    );
    refused(
        s.post(&key, "/access/v1/evaluation", json!({})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "client key on AuthZEN",
    );
    let after = state(&s).await;
    assert_eq!(
        (after.0, &after.1, &after.3),
        (before.0, &before.1, &before.3),
        "nothing but the key and its refusal were written"
    );
    let refusals = s.audit_actions("refused").await;
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0]["details"]["request"], "POST /v1/requests");
}

/// `/metrics` counts answered requests per route pattern and status class; a path that
/// matches no route is counted as `unmatched`, not by its (unbounded) path.
async fn requests_are_counted_per_route_and_status_class(b: Backend) {
    let s = server!(b);
    let scrape = async || {
        (
            s.requests_counted("/healthz", "2xx").await,
            s.requests_counted("unmatched", "4xx").await,
            s.requests_counted("/v1/requests/{id}", "4xx").await,
        )
    };
    let before = scrape().await;
    for _ in 0..3 {
        let (st, _) = s.get(ADMIN_TOKEN, "/healthz").await;
        assert_eq!(st, StatusCode::OK);
    }
    let (st, _) = s.get(ADMIN_TOKEN, "/v1/no-such-thing/42").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.get(ADMIN_TOKEN, "/v1/requests/req-nope").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // A served path with another method: 405 in the JSON shape, with the methods served.
    let r = s
        .http
        .delete(s.url("/v1/requests"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = r
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let body: serde_json::Value = r.json().await.expect("a JSON error");
    assert_eq!(body["code"], "method_not_allowed", "{body}");
    let after = scrape().await;
    // The recorder is shared by every test in this process: other tests only add.
    assert!(after.0 >= before.0 + 3.0, "{before:?} -> {after:?}");
    assert!(after.1 > before.1, "{before:?} -> {after:?}");
    assert!(after.2 > before.2, "{before:?} -> {after:?}");
}

backend_tests!(
    malformed_and_unknown_input_is_refused_with_a_code,
    an_invalid_policy_is_refused_naming_the_place,
    callers_without_a_valid_api_token_are_refused,
    requests_are_counted_per_route_and_status_class,
);
