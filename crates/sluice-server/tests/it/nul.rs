//! A NUL character — which PostgreSQL cannot store in text and SQLite would, blocking a later
//! `store copy` — is refused at the edge with `400 nul_character`, in bodies, paths and query
//! strings alike, on both backends, and nothing changes.

use crate::harness::{Backend, TestServer, ADMIN_TOKEN};
use crate::{backend_tests, server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Everything a refused write could have changed.
async fn state(s: &TestServer) -> (Value, Value, Value) {
    let (_, audit) = s.get(ADMIN_TOKEN, "/v1/audit?limit=1000").await;
    let (_, requests) = s.get(ADMIN_TOKEN, "/v1/requests").await;
    let (_, tokens) = s.get(ADMIN_TOKEN, "/v1/tokens?all=true").await;
    (audit["entries"].clone(), requests, tokens)
}

fn assert_nul_refused((st, body): (StatusCode, Value), what: &str) {
    assert_eq!(st, StatusCode::BAD_REQUEST, "{what}: {body}");
    assert_eq!(body["code"], "nul_character", "{what}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("NUL")),
        "{what}: the message says why: {body}"
    );
}

async fn a_nul_anywhere_is_refused_at_the_edge(b: Backend) {
    let s = server!(b);
    let dave = s.token("dave").await;
    let (st, v) = s
        .send(
            Method::PUT,
            ADMIN_TOKEN,
            "/v1/environments/staging/flags?create_env=true",
            Some(json!({"flags": {"f": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let before = state(&s).await;

    // Bodies: a request's reason, a token's name, AuthZEN ids, a flag key in a document.
    assert_nul_refused(
        s.request(&dave, "orders-db-read", "1h", "INC-1\u{0}").await,
        "request reason",
    );
    assert_nul_refused(
        s.post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"principal": "erin", "name": "lap\u{0}top"}),
        )
        .await,
        "token name",
    );
    for body in [
        json!({"subject": {"type": "user", "id": "ali\u{0}ce"}, "action": {"name": "toggle"}, "resource": {"type": "flag", "id": "production/x"}}),
        json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "to\u{0}ggle"}, "resource": {"type": "flag", "id": "production/x"}}),
        json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "toggle"}, "resource": {"type": "flag", "id": "production/x"}, "context": {"k\u{0}": 1}}),
    ] {
        assert_nul_refused(
            s.post(ADMIN_TOKEN, "/access/v1/evaluation", body).await,
            "AuthZEN",
        );
    }
    assert_nul_refused(
        s.send(
            Method::PUT,
            ADMIN_TOKEN,
            "/v1/environments/staging/flags",
            Some(json!({"flags": {"a\u{0}b": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"}}})),
        )
        .await,
        "flag key in an import",
    );

    // Paths and query strings.
    assert_nul_refused(
        s.post(
            ADMIN_TOKEN,
            "/v1/environments/staging/flags/a%00b/changes",
            json!({"op": "disable"}),
        )
        .await,
        "flag key in the path",
    );
    assert_nul_refused(
        s.get(ADMIN_TOKEN, "/v1/tokens?principal=da%00ve").await,
        "query parameter",
    );
    assert_nul_refused(
        s.get(ADMIN_TOKEN, "/v1/audit?actor=x%00").await,
        "audit filter",
    );

    assert_eq!(state(&s).await, before, "nothing changed");

    // Only a real NUL: the six characters `\u0000` in a string are text like any other.
    let (st, v) = s
        .request(&dave, "orders-db-read", "1h", "quoting \\u0000 is fine")
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["reason"], "quoting \\u0000 is fine", "{v}");
    let (st, v) = s.get(ADMIN_TOKEN, "/v1/tokens?principal=da%2500ve").await;
    assert_eq!(st, StatusCode::OK, "an encoded `%` is not a NUL: {v}");
}

backend_tests!(a_nul_anywhere_is_refused_at_the_edge);
