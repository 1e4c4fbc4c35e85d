//! Static evaluation context: an environment's `context` in the policy is merged into every
//! evaluation there, over the request's own values, exactly as flagd merges `--context-value`
//! (flagd `MergeContextsAndHeaders`: "highest priority > header-context-from-cli >
//! static-context-from-cli > request-context > lowest priority"). A client key may carry its
//! own static context too, more specific than the environment's, so it wins over both. Bulk
//! ETags cover it. Mapped request headers (flagd `--context-from-header`) win over all of them.

use crate::harness::{Backend, TestServer, ADMIN_TOKEN, POLICY};
use crate::{backend_tests, server};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn policy_with(context: &str) -> String {
    POLICY.replace(
        "  production: { protected: true }",
        &format!("  production: {{ protected: true }}\n  staging: {{ context: {context} }}"),
    )
}

async fn setup(s: &TestServer) -> String {
    let doc = json!({"flags": {
        "eu-only": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
            "targeting": {"if": [{"==": [{"var": "region"}, "eu"]}, "on", "off"]}},
        "tier": {"state": "ENABLED", "variants": {"gold": "gold", "basic": "basic"}, "defaultVariant": "basic",
            "targeting": {"if": [{"==": [{"var": "tier"}, "gold"]}, "gold", null]}}
    }});
    let r = s
        .http
        .put(s.url("/v1/environments/staging/flags?create_env=true"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&doc)
        .send()
        .await
        .expect("import");
    assert_eq!(r.status(), StatusCode::OK);
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"name": "web", "kind": "client", "environment": "staging"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["token"].as_str().expect("token").to_owned()
}

async fn eval(s: &TestServer, key: &str, flag: &str, context: Value) -> Value {
    let r = s
        .http
        .post(s.url(&format!("/ofrep/v1/evaluate/flags/{flag}")))
        .header("x-api-key", key)
        .json(&json!({"context": context}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.expect("json")
}

async fn bulk(
    s: &TestServer,
    key: &str,
    context: Value,
    tag: Option<&str>,
) -> (StatusCode, String, Value) {
    let mut req = s
        .http
        .post(s.url("/ofrep/v1/evaluate/flags"))
        .header("x-api-key", key)
        .json(&json!({"context": context}));
    if let Some(t) = tag {
        req = req.header("if-none-match", t);
    }
    let r = req.send().await.expect("sent");
    let st = r.status();
    let etag = r
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = r.text().await.expect("body");
    (st, etag, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn entry<'a>(v: &'a Value, key: &str) -> &'a Value {
    v["flags"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["key"] == key))
        .expect("the flag")
}

async fn an_environment_static_context_is_merged_into_every_evaluation(b: Backend) {
    let s = server!(b);
    let key = setup(&s).await;
    // Without a static context the request decides.
    assert_eq!(
        eval(&s, &key, "eu-only", json!({"region": "us"})).await["value"],
        false
    );
    let (_, tag_before, _) = bulk(&s, &key, json!({"region": "us"}), None).await;

    s.apply(&policy_with("{ region: eu, tier: gold }")).await;
    // Static values are there without the request saying anything...
    let v = eval(&s, &key, "eu-only", json!({})).await;
    assert_eq!(
        (&v["value"], &v["reason"]),
        (&json!(true), &json!("TARGETING_MATCH")),
        "{v}"
    );
    // ...and win over the request's own (flagd: static-context-from-cli > request-context).
    let v = eval(
        &s,
        &key,
        "eu-only",
        json!({"region": "us", "targetingKey": "u-1"}),
    )
    .await;
    assert_eq!(v["value"], true, "{v}");
    assert_eq!(
        eval(&s, &key, "tier", json!({"tier": "basic"})).await["value"],
        "gold"
    );
    // An empty body gets the static context too.
    let r = s
        .http
        .post(s.url("/ofrep/v1/evaluate/flags/eu-only"))
        .header("x-api-key", &key)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.json::<Value>().await.expect("json")["value"], true);

    // Bulk answers are merged the same way, and the tag moved with the static context even
    // though neither the flags nor the request changed.
    let (st, tag_static, v) = bulk(&s, &key, json!({"region": "us"}), Some(&tag_before)).await;
    assert_eq!(
        st,
        StatusCode::OK,
        "a tag from before the static context is stale: {v}"
    );
    assert_ne!(tag_static, tag_before);
    assert_eq!(entry(&v, "eu-only")["value"], true, "{v}");
    assert_eq!(entry(&v, "tier")["value"], "gold", "{v}");
    let (st, _, _) = bulk(&s, &key, json!({"region": "us"}), Some(&tag_static)).await;
    assert_eq!(st, StatusCode::NOT_MODIFIED);

    // Change the static context: the same request and the same flags answer anew.
    s.apply(&policy_with("{ region: us }")).await;
    let (st, tag_us, v) = bulk(&s, &key, json!({"region": "eu"}), Some(&tag_static)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_ne!(tag_us, tag_static);
    assert_eq!(
        entry(&v, "eu-only")["value"],
        false,
        "static `us` beats the request's `eu`: {v}"
    );
    assert_eq!(entry(&v, "tier")["reason"], "DEFAULT", "{v}");
}

async fn a_static_context_is_validated_with_the_policy(b: Backend) {
    let s = server!(b);
    for (context, path) in [
        (
            "{ targetingKey: 3 }",
            "environments.staging.context.targetingKey",
        ),
        ("{ $flagd: {} }", "environments.staging.context.$flagd"),
    ] {
        let (st, v) = s
            .post(
                ADMIN_TOKEN,
                "/v1/policy",
                json!({"source": policy_with(context)}),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{context}: {v}");
        assert!(
            v["message"].as_str().is_some_and(|m| m.contains(path)),
            "{context}: names {path}: {v}"
        );
    }
}

async fn key_with_context(s: &TestServer, context: Value) -> (StatusCode, Value) {
    s.post(
        ADMIN_TOKEN,
        "/v1/tokens",
        json!({"name": "ctx", "kind": "client", "environment": "staging", "context": context}),
    )
    .await
}

async fn a_client_key_carries_its_own_static_context(b: Backend) {
    let s = server!(b);
    let plain = setup(&s).await;
    let (st, v) = key_with_context(&s, json!({"region": "eu"})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let eu_key = v["token"].as_str().expect("token").to_owned();

    // The key's context is there, and wins over the request's.
    assert_eq!(
        eval(&s, &eu_key, "eu-only", json!({"region": "us"})).await["value"],
        true
    );
    assert_eq!(
        eval(&s, &plain, "eu-only", json!({"region": "us"})).await["value"],
        false
    );
    // Same body, different keys: different answers, so different tags.
    let (_, tag_plain, v_plain) = bulk(&s, &plain, json!({"region": "us"}), None).await;
    let (_, tag_eu, v_eu) = bulk(&s, &eu_key, json!({"region": "us"}), None).await;
    assert_ne!(tag_plain, tag_eu);
    assert_eq!(entry(&v_plain, "eu-only")["value"], false);
    assert_eq!(entry(&v_eu, "eu-only")["value"], true);
    let (st, _, _) = bulk(&s, &plain, json!({"region": "us"}), Some(&tag_eu)).await;
    assert_eq!(st, StatusCode::OK, "another key's tag does not match");

    // With an environment context as well: the key's values win, the environment fills in.
    s.apply(&policy_with("{ region: us, tier: gold }")).await;
    let v = eval(&s, &eu_key, "eu-only", json!({})).await;
    assert_eq!(
        v["value"], true,
        "the key's `eu` beats the environment's `us`: {v}"
    );
    assert_eq!(eval(&s, &eu_key, "tier", json!({})).await["value"], "gold");
    assert_eq!(
        eval(&s, &plain, "eu-only", json!({"region": "eu"})).await["value"],
        false
    );

    // Only client keys carry a context, and it is checked like the policy's.
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"name": "x", "principal": "dave", "context": {"a": "b"}}),
        )
        .await;
    assert_eq!(
        (st, &v["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_request")),
        "{v}"
    );
    let (st, v) = key_with_context(&s, json!({"targetingKey": 3})).await;
    assert_eq!(
        (st, &v["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_context")),
        "{v}"
    );
}

fn policy_with_headers(context: &str, headers: &str) -> String {
    POLICY.replace(
        "  production: { protected: true }",
        &format!(
            "  production: {{ protected: true }}\n  staging: {{ context: {context}, context_from_headers: {headers} }}"
        ),
    )
}

async fn eval_with_header(
    s: &TestServer,
    key: &str,
    flag: &str,
    header: Option<(&str, &str)>,
    context: Value,
) -> Value {
    let mut req = s
        .http
        .post(s.url(&format!("/ofrep/v1/evaluate/flags/{flag}")))
        .header("x-api-key", key)
        .json(&json!({"context": context}));
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    let r = req.send().await.expect("sent");
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.expect("json")
}

async fn mapped_request_headers_win_over_static_and_request_context(b: Backend) {
    let s = server!(b);
    let key = setup(&s).await;
    s.apply(&policy_with_headers(
        "{ region: us }",
        "{ X-Region: region }",
    ))
    .await;
    // No header: the static context decides, as before.
    let v = eval_with_header(&s, &key, "eu-only", None, json!({"region": "eu"})).await;
    assert_eq!(v["value"], false, "static `us` beats the request: {v}");
    // The header wins over both (flagd: header-context-from-cli > static > request), and
    // header names are matched without case.
    let v = eval_with_header(
        &s,
        &key,
        "eu-only",
        Some(("x-region", "eu")),
        json!({"region": "us"}),
    )
    .await;
    assert_eq!(v["value"], true, "{v}");

    // Bulk: the header enters the answer and its tag; another value is another tag.
    let bulk_with = |value: &'static str, tag: Option<String>| {
        let mut req = s
            .http
            .post(s.url("/ofrep/v1/evaluate/flags"))
            .header("x-api-key", &key)
            .header("X-Region", value)
            .json(&json!({"context": {}}));
        if let Some(t) = tag {
            req = req.header("if-none-match", t);
        }
        async move {
            let r = req.send().await.expect("sent");
            let st = r.status();
            let tag = r
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let text = r.text().await.expect("body");
            (
                st,
                tag,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            )
        }
    };
    let (st, tag_eu, v) = bulk_with("eu", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(entry(&v, "eu-only")["value"], true, "{v}");
    let (st, _, _) = bulk_with("eu", Some(tag_eu.clone())).await;
    assert_eq!(st, StatusCode::NOT_MODIFIED);
    let (st, tag_us, v) = bulk_with("us", Some(tag_eu.clone())).await;
    assert_eq!(
        st,
        StatusCode::OK,
        "another header value is another answer: {v}"
    );
    assert_ne!(tag_us, tag_eu);
    assert_eq!(entry(&v, "eu-only")["value"], false, "{v}");

    // A mapping that cannot work is refused with the policy, naming where.
    for (headers, path) in [
        ("{ \"X Region\": region }", "context_from_headers.X Region"),
        (
            "{ X-Region: region, x-region: zone }",
            "context_from_headers.x-region",
        ),
        ("{ X-Flagd: $flagd }", "context_from_headers.X-Flagd"),
    ] {
        let (st, v) = s
            .post(
                ADMIN_TOKEN,
                "/v1/policy",
                json!({"source": policy_with_headers("{}", headers)}),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{headers}: {v}");
        assert!(
            v["message"].as_str().is_some_and(|m| m.contains(path)),
            "{headers}: names {path}: {v}"
        );
    }
}

backend_tests!(
    mapped_request_headers_win_over_static_and_request_context,
    an_environment_static_context_is_merged_into_every_evaluation,
    a_static_context_is_validated_with_the_policy,
    a_client_key_carries_its_own_static_context,
);
