//! Resource bounds at the edge: a string or a list over the limit is a 400 naming it, except
//! where a route takes larger documents (a policy source, a flag import); a request target or
//! header section over its limit is a 414 or 431 naming it.

use crate::backend_tests;
use crate::harness::{Backend, ADMIN_TOKEN, POLICY};
use reqwest::StatusCode;
use serde_json::json;
use sluice_server::json::{MAX_HEADERS, MAX_HEADER_BYTES, MAX_LIST, MAX_STRING, MAX_URI};

async fn strings_and_lists_over_the_limit_are_refused_naming_it(b: Backend) {
    let s = crate::server!(b);
    let alice = s.token("alice").await;
    let (st, v) = s
        .request(
            &alice,
            "flags-prod-operator",
            "10m",
            &"x".repeat(MAX_STRING + 1),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["code"], "string_too_long", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&MAX_STRING.to_string()),
        "{v}"
    );
    let scopes: Vec<_> = (0..=MAX_LIST).map(|_| json!({})).collect();
    let (st, v) = s
        .post(&alice, "/v1/requests", json!({"entitlement": "flags-prod-operator", "duration": "10m", "reason": "x", "scopes": scopes}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["code"], "list_too_long", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&MAX_LIST.to_string()),
        "{v}"
    );
    // Nothing was recorded.
    let (_, list) = s.get(ADMIN_TOKEN, "/v1/requests").await;
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");

    // A policy source longer than other strings may be is one string, and is taken.
    let padded = format!("{POLICY}\n# {}\n", "p".repeat(MAX_STRING * 2));
    let (st, v) = s
        .post(ADMIN_TOKEN, "/v1/policy", json!({"source": padded}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // A flag import's lists are left to the flag engine, whose own bound (rule nodes) names
    // the place in the document.
    let users: Vec<String> = (0..=MAX_LIST).map(|i| format!("u{i}")).collect();
    let doc = json!({"flags": {"f": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
        "targeting": {"if": [{"in": [{"var": "targetingKey"}, users]}, "on", null]}}}});
    let (st, v) = s
        .send(
            reqwest::Method::PUT,
            ADMIN_TOKEN,
            "/v1/environments/staging/flags?create_env=true",
            Some(doc),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["code"], "invalid_flags", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("$.flags.f.targeting"),
        "{v}"
    );
}

async fn a_header_section_over_the_limit_is_refused_naming_it(b: Backend) {
    let s = crate::server!(b);
    let whoami = || s.http.get(s.url("/v1/whoami")).bearer_auth(ADMIN_TOKEN);
    let refused = |what: &'static str, code: &'static str, limit: String| {
        move |(st, v): (StatusCode, serde_json::Value)| {
            assert_eq!(
                st.as_u16(),
                if code == "uri_too_long" { 414 } else { 431 },
                "{what}: {v}"
            );
            assert_eq!(v["code"], code, "{what}: {v}");
            let m = v["message"].as_str().unwrap_or_default();
            assert!(m.contains(&limit), "{what} names the limit {limit}: {v}");
        }
    };
    let answer = |r: reqwest::Response| async move {
        let st = r.status();
        (
            st,
            r.json::<serde_json::Value>().await.expect("a JSON body"),
        )
    };

    // One field over the count.
    let mut req = whoami();
    for i in 0..=MAX_HEADERS {
        req = req.header(format!("x-filler-{i}"), "1");
    }
    refused(
        "too many fields",
        "headers_too_large",
        MAX_HEADERS.to_string(),
    )(answer(req.send().await.expect("answered")).await);
    // Few fields, but too many bytes.
    let req = whoami().header("x-filler", "x".repeat(MAX_HEADER_BYTES));
    refused("too many bytes", "headers_too_large", "32 KiB".into())(
        answer(req.send().await.expect("answered")).await,
    );
    // A request target over the limit, in the query.
    let long = format!("/v1/whoami?pad={}", "x".repeat(MAX_URI));
    let req = s.http.get(s.url(&long)).bearer_auth(ADMIN_TOKEN);
    refused("a long target", "uri_too_long", "8 KiB".into())(
        answer(req.send().await.expect("answered")).await,
    );
    // Just under every limit passes.
    let mut req = whoami();
    for i in 0..MAX_HEADERS - 8 {
        req = req.header(format!("x-filler-{i}"), "1");
    }
    let r = req.send().await.expect("answered");
    assert_eq!(r.status(), StatusCode::OK);

    // Past hyper's own parser limit (100 fields) the parser refuses before Sluice sees the
    // request: a bare 431. The server still answers afterwards.
    let mut req = whoami();
    for i in 0..120 {
        req = req.header(format!("x-filler-{i}"), "1");
    }
    let r = req.send().await.expect("answered");
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let (st, _) = s.get(ADMIN_TOKEN, "/v1/whoami").await;
    assert_eq!(st, StatusCode::OK);
}

backend_tests!(
    strings_and_lists_over_the_limit_are_refused_naming_it,
    a_header_section_over_the_limit_is_refused_naming_it,
);
