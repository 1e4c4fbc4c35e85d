//! Resource bounds at the edge: a string or a list over the limit is a 400 naming it, except
//! where a route takes larger documents (a policy source, a flag import); a header section
//! over hyper's limits is refused before any handler runs.

use crate::backend_tests;
use crate::harness::{Backend, ADMIN_TOKEN, POLICY};
use reqwest::StatusCode;
use serde_json::json;
use sluice_server::json::{MAX_LIST, MAX_STRING};

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

async fn a_header_section_over_the_limit_is_refused(b: Backend) {
    let s = crate::server!(b);
    let mut req = s.http.get(s.url("/v1/whoami")).bearer_auth(ADMIN_TOKEN);
    for i in 0..120 {
        req = req.header(format!("x-filler-{i}"), "1");
    }
    let r = req.send().await.expect("answered");
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // The server still answers.
    let (st, _) = s.get(ADMIN_TOKEN, "/v1/whoami").await;
    assert_eq!(st, StatusCode::OK);
}

backend_tests!(
    strings_and_lists_over_the_limit_are_refused_naming_it,
    a_header_section_over_the_limit_is_refused,
);
