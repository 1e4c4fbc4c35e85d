//! OpenID AuthZEN Authorization API 1.0, as a policy enforcement point would use it.

use crate::harness::{Backend, TestServer, ADMIN_TOKEN};
use crate::{backend_tests, server};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn flag(id: &str) -> Value {
    json!({"type": "flag", "id": id})
}

fn user(id: &str) -> Value {
    json!({"type": "user", "id": id})
}

/// How many decisions the audit trail holds.
async fn decisions_recorded(s: &TestServer) -> usize {
    let (st, v) = s
        .get(ADMIN_TOKEN, "/v1/audit?action=decision.&limit=1000")
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["entries"].as_array().map_or(0, Vec::len)
}

fn decisions(v: &Value) -> Vec<bool> {
    v["evaluations"]
        .as_array()
        .unwrap_or_else(|| panic!("an evaluations array: {v}"))
        .iter()
        .map(|e| {
            e["decision"]
                .as_bool()
                .unwrap_or_else(|| panic!("boolean decision: {e}"))
        })
        .collect()
}

/// A server where alice (on call) holds production flag access and dave has only standing
/// staging access.
async fn with_grant(s: &TestServer) {
    let alice = s.token("alice").await;
    let (st, v) = s
        .request(&alice, "flags-prod-operator", "30m", "INC-1")
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
}

async fn a_deny_is_a_200_with_decision_false_and_unknown_fields_are_ignored(b: Backend) {
    let s = server!(b);
    with_grant(&s).await;
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/access/v1/evaluation",
            json!({"subject": user("mallory"), "action": {"name": "toggle"}, "resource": flag("production/checkout-v2")}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "a deny is not an HTTP error: {v}");
    assert_eq!(v["decision"], json!(false), "{v}");

    let with_extras = json!({
        "subject": {"type": "user", "id": "alice", "properties": {"department": "sre", "ip_address": "10.0.0.1"}, "x-vendor": 1},
        "action": {"name": "toggle", "properties": {"method": "POST"}},
        "resource": {"type": "flag", "id": "production/checkout-v2", "properties": {"owner": "payments"}},
        "context": {"time": "2026-11-27T09:00:00Z"},
        "x-future-field": {"nested": [1, 2, 3]}
    });
    let (st, v) = s
        .post(ADMIN_TOKEN, "/access/v1/evaluation", with_extras)
        .await;
    assert_eq!(
        (st, v["decision"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{v}"
    );

    // Missing required members are a 400 for the whole request, with Sluice's error shape.
    let (st, e) = s
        .post(
            ADMIN_TOKEN,
            "/access/v1/evaluation",
            json!({"subject": {"type": "user"}, "action": {"name": "toggle"}, "resource": flag("production/x")}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["message"].as_str().unwrap_or("").contains("subject.id"),
        "{e}"
    );
}

async fn the_request_id_is_echoed(b: Backend) {
    let s = server!(b);
    let id = "bfe9eb29-ab87-4ca3-be83-a1d5d8305716";
    for (path, body) in [
        (
            "/access/v1/evaluation",
            json!({"subject": user("dave"), "action": {"name": "read"}, "resource": flag("staging/x")}),
        ),
        (
            "/access/v1/evaluations",
            json!({"subject": user("dave"), "action": {"name": "read"}, "evaluations": [{"resource": flag("staging/x")}]}),
        ),
        ("/access/v1/evaluation", json!({"subject": user("dave")})),
    ] {
        let resp = s
            .http
            .post(s.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("X-Request-ID", id)
            .json(&body)
            .send()
            .await
            .expect("sent");
        let echoed = resp
            .headers()
            .get("x-request-id")
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        assert_eq!(echoed.as_deref(), Some(id), "{path} {}", resp.status());
    }
}

async fn a_batch_applies_defaults_and_answers_around_a_bad_item(b: Backend) {
    let s = server!(b);
    with_grant(&s).await;
    let before = decisions_recorded(&s).await;
    let batch = json!({
        "subject": user("alice"),
        "action": {"name": "toggle"},
        "context": {"ticket": "INC-1"},
        "evaluations": [
            {"resource": flag("production/checkout-v2")},
            {"resource": flag("staging/search")},
            {"subject": user("dave"), "resource": flag("production/checkout-v2")},
            {"resource": {"type": "flag"}},
            {"action": {"name": "write"}, "resource": {"type": "db", "id": "orders"}},
            {"subject": user("dave"), "action": {"name": "edit-targeting"}, "resource": flag("staging/search")}
        ]
    });
    let (st, v) = s.post(ADMIN_TOKEN, "/access/v1/evaluations", batch).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        decisions(&v),
        vec![true, true, false, false, false, true],
        "top-level subject and action fill in; items override: {v}"
    );
    let bad = &v["evaluations"][3];
    assert!(
        bad["context"].is_object(),
        "the bad item says why, in its own slot: {bad}"
    );
    assert!(
        v.get("decision").is_none(),
        "no top-level decision next to evaluations: {v}"
    );
    assert_eq!(
        decisions_recorded(&s).await - before,
        5,
        "every evaluated item is recorded, the malformed one is not"
    );

    // An item whose parts have the wrong type is answered in its place too; an item that is
    // not an object at all refuses the whole call, and nothing is decided or recorded.
    let before = decisions_recorded(&s).await;
    let batch = json!({
        "subject": user("alice"),
        "action": {"name": "toggle"},
        "evaluations": [
            {"resource": flag("production/checkout-v2")},
            {"subject": {"type": "user", "id": "alice", "properties": [1, 2]}, "resource": flag("staging/search")},
            {"resource": 5}
        ]
    });
    let (st, v) = s.post(ADMIN_TOKEN, "/access/v1/evaluations", batch).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(decisions(&v), vec![true, false, false], "{v}");
    for i in [1, 2] {
        assert_eq!(v["evaluations"][i]["context"]["code"], "400", "{v}");
    }
    let batch = json!({"subject": user("alice"), "action": {"name": "toggle"},
        "evaluations": [{"resource": flag("production/checkout-v2")}, 5]});
    let (st, v) = s.post(ADMIN_TOKEN, "/access/v1/evaluations", batch).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("evaluations[1]")),
        "{v}"
    );
    assert_eq!(
        decisions_recorded(&s).await - before,
        1,
        "only the one well-formed item of the first call is recorded"
    );

    // Without an `evaluations` array the call is a single evaluation.
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/access/v1/evaluations",
            json!({"subject": user("alice"), "action": {"name": "toggle"}, "resource": flag("production/x")}),
        )
        .await;
    assert_eq!(
        (st, v["decision"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{v}"
    );
}

async fn short_circuit_semantics_stop_at_the_right_item(b: Backend) {
    let s = server!(b);
    with_grant(&s).await;
    let batch = |semantic: &str, subjects: &[&str]| {
        json!({
            "action": {"name": "toggle"},
            "resource": flag("production/checkout-v2"),
            "options": {"evaluations_semantic": semantic},
            "evaluations": subjects.iter().map(|who| if *who == "?" {
                json!({"subject": {"type": "user"}})
            } else {
                json!({"subject": user(who)})
            }).collect::<Vec<_>>()
        })
    };
    let cases: [(&str, &[&str], Vec<bool>); 6] = [
        (
            "execute_all",
            &["alice", "dave", "alice"],
            vec![true, false, true],
        ),
        (
            "deny_on_first_deny",
            &["alice", "dave", "alice"],
            vec![true, false],
        ),
        ("deny_on_first_deny", &["alice", "alice"], vec![true, true]),
        ("deny_on_first_deny", &["?", "alice"], vec![false]),
        (
            "permit_on_first_permit",
            &["dave", "alice", "dave"],
            vec![false, true],
        ),
        (
            "permit_on_first_permit",
            &["?", "dave", "erin"],
            vec![false, false, false],
        ),
    ];
    for (semantic, subjects, expected) in cases {
        let before = decisions_recorded(&s).await;
        let (st, v) = s
            .post(
                ADMIN_TOKEN,
                "/access/v1/evaluations",
                batch(semantic, subjects),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{semantic}: {v}");
        assert_eq!(decisions(&v), expected, "{semantic} {subjects:?}: {v}");
        let evaluated = subjects
            .iter()
            .take(expected.len())
            .filter(|w| **w != "?")
            .count();
        assert_eq!(
            decisions_recorded(&s).await - before,
            evaluated,
            "{semantic} {subjects:?}: only the items answered are recorded as decisions"
        );
    }
    let (st, e) = s
        .post(
            ADMIN_TOKEN,
            "/access/v1/evaluations",
            batch("first_come_first_served", &["alice"]),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
}

async fn the_discovery_document_names_the_endpoints(b: Backend) {
    let s = server!(b);
    with_grant(&s).await;
    // Metadata is public: no token.
    let resp = s
        .http
        .get(s.url("/.well-known/authzen-configuration"))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()
            .get("content-type")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json")),
        "JSON metadata"
    );
    let doc: Value = resp.json().await.expect("json");
    let pdp = format!("http://{}", s.addr);
    assert_eq!(
        doc["policy_decision_point"].as_str(),
        Some(pdp.as_str()),
        "identical to the identifier the well-known path was appended to: {doc}"
    );
    assert_eq!(
        doc["access_evaluation_endpoint"].as_str(),
        Some(format!("{pdp}/access/v1/evaluation").as_str()),
        "{doc}"
    );
    assert_eq!(
        doc["access_evaluations_endpoint"].as_str(),
        Some(format!("{pdp}/access/v1/evaluations").as_str()),
        "{doc}"
    );
    for (k, v) in doc.as_object().expect("object") {
        assert!(
            !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()),
            "parameters with no value are omitted: {k}"
        );
    }
    // The advertised endpoint answers.
    let url = doc["access_evaluation_endpoint"].as_str().expect("url");
    let v: Value = s
        .http
        .post(url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"subject": user("alice"), "action": {"name": "toggle"}, "resource": flag("production/x")}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(v["decision"], true, "{v}");
}

backend_tests!(
    a_deny_is_a_200_with_decision_false_and_unknown_fields_are_ignored,
    the_request_id_is_echoed,
    a_batch_applies_defaults_and_answers_around_a_bad_item,
    short_circuit_semantics_stop_at_the_right_item,
    the_discovery_document_names_the_endpoints,
);
