//! AuthZEN evaluations with `context.sluice_explain`: which permission or grant allowed it, or
//! what would; and answers without it exactly as they were.

use crate::harness::{Backend, TestServer, ADMIN_TOKEN};
use crate::{backend_tests, server};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn ask(subject: &str, action: &str, kind: &str, id: &str, explain: Option<bool>) -> Value {
    let mut q = json!({
        "subject": {"type": "user", "id": subject},
        "action": {"name": action},
        "resource": {"type": kind, "id": id},
    });
    if let Some(e) = explain {
        q["context"] = json!({"sluice_explain": e});
    }
    q
}

async fn evaluate(s: &TestServer, q: Value) -> Value {
    let (st, v) = s.post(ADMIN_TOKEN, "/access/v1/evaluation", q).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v
}

/// Alice (on call) holds a grant of `flags-prod-operator`; returns its id and expiry.
async fn alice_grant(s: &TestServer) -> (String, String) {
    let alice = s.token("alice").await;
    let (st, v) = s
        .request(&alice, "flags-prod-operator", "30m", "INC-1")
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    (
        v["id"].as_str().expect("id").to_owned(),
        v["expires_at"].as_str().expect("expires_at").to_owned(),
    )
}

async fn answers_without_the_option_are_as_they_were(b: Backend) {
    let s = server!(b);
    let (grant, _) = alice_grant(&s).await;
    // Standing permission, deny, unknown principal: the whole answer, pinned.
    for explain in [None, Some(false)] {
        let v = evaluate(&s, ask("dave", "toggle", "flag", "staging/x", explain)).await;
        assert_eq!(
            v,
            json!({"decision": true, "context": {
                "reason_admin": {"en": "allowed by standing permission flag:staging/** [*]"},
                "sluice": {"kind": "standing", "scope": "flag:staging/** [*]"}
            }})
        );
        let v = evaluate(&s, ask("dave", "toggle", "flag", "production/x", explain)).await;
        assert_eq!(
            v,
            json!({"decision": false, "context": {
                "reason_admin": {"en": "no standing permission or live grant covers this"},
                "sluice": {"kind": "no_permission"}
            }})
        );
        let v = evaluate(&s, ask("nobody", "toggle", "flag", "production/x", explain)).await;
        assert_eq!(
            v,
            json!({"decision": false, "context": {
                "reason_admin": {"en": "unknown principal"},
                "sluice": {"kind": "unknown_principal"}
            }})
        );
    }
    // By grant: the same two members, the grant named.
    let v = evaluate(&s, ask("alice", "toggle", "flag", "production/x", None)).await;
    let context = v["context"].as_object().expect("context");
    assert_eq!(
        context.keys().collect::<Vec<_>>(),
        ["reason_admin", "sluice"],
        "{v}"
    );
    assert_eq!(v["context"]["sluice"]["kind"], "grant", "{v}");
    assert_eq!(v["context"]["sluice"]["grant_id"], json!(grant), "{v}");
}

async fn an_explanation_names_what_allowed_it_or_what_would(b: Backend) {
    let s = server!(b);
    let (grant, expires_at) = alice_grant(&s).await;
    // A standing permission: which line of the policy, given to whom.
    let v = evaluate(&s, ask("dave", "toggle", "flag", "staging/x", Some(true))).await;
    assert_eq!(v["decision"], true, "{v}");
    assert_eq!(
        v["context"]["explain"],
        json!({
            "kind": "standing",
            "permission": 0,
            "to": ["group:engineers"],
            "scope": "flag:staging/** [*]",
            "text": "allowed by standing permission #0 of the policy (flag:staging/** [*]), given to group:engineers"
        }),
        "{v}"
    );
    // The reason stays beside it.
    assert_eq!(v["context"]["sluice"]["kind"], "standing", "{v}");
    // A grant: which, of what, through which scope, until when.
    let v = evaluate(
        &s,
        ask("alice", "toggle", "flag", "production/x", Some(true)),
    )
    .await;
    let e = &v["context"]["explain"];
    assert_eq!(
        (
            e["kind"].as_str(),
            e["grant_id"].as_str(),
            e["entitlement"].as_str()
        ),
        (
            Some("grant"),
            Some(grant.as_str()),
            Some("flags-prod-operator")
        ),
        "{v}"
    );
    assert_eq!(e["scope"], "flag:production/** [toggle]", "{v}");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(e["expires_at"].as_str().expect("a time")).ok(),
        chrono::DateTime::parse_from_rfc3339(&expires_at).ok(),
        "{v}"
    );
    // A deny one may fix: the entitlement and the command.
    let v = evaluate(
        &s,
        ask("dave", "toggle", "flag", "production/x", Some(true)),
    )
    .await;
    assert_eq!(v["decision"], false, "{v}");
    assert_eq!(
        v["context"]["explain"],
        json!({
            "kind": "request",
            "entitlement": "flags-prod-operator",
            "command": "sluice access request flags-prod-operator --for 30m --reason \"…\"",
            "text": "`flags-prod-operator` would allow it; request it with: sluice access request flags-prod-operator --for 30m --reason \"…\""
        }),
        "{v}"
    );
    // A deny someone else must fix: who may request it.
    let v = evaluate(&s, ask("bob", "toggle", "flag", "production/x", Some(true))).await;
    assert_eq!(
        (
            v["context"]["explain"]["kind"].as_str(),
            v["context"]["explain"]["requesters"].clone()
        ),
        (Some("not_requestable"), json!(["group:engineers"])),
        "{v}"
    );
    // Nothing would allow it.
    let v = evaluate(&s, ask("dave", "drop", "db", "orders", Some(true))).await;
    assert_eq!(v["context"]["explain"]["kind"], "no_entitlement", "{v}");
    // In a batch, the shared context asks for every item.
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/access/v1/evaluations",
            json!({
                "subject": {"type": "user", "id": "dave"},
                "context": {"sluice_explain": true},
                "evaluations": [
                    {"action": {"name": "toggle"}, "resource": {"type": "flag", "id": "staging/x"}},
                    {"action": {"name": "read"}, "resource": {"type": "db", "id": "orders"}}
                ]
            }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let kinds: Vec<&Value> = v["evaluations"]
        .as_array()
        .expect("evaluations")
        .iter()
        .map(|e| &e["context"]["explain"]["kind"])
        .collect();
    assert_eq!(kinds, [&json!("standing"), &json!("request")], "{v}");
    // Anything but a boolean is refused.
    let mut q = ask("dave", "toggle", "flag", "staging/x", None);
    q["context"] = json!({"sluice_explain": "yes"});
    let (st, v) = s.post(ADMIN_TOKEN, "/access/v1/evaluation", q).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "{v}"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("sluice_explain"),
        "{v}"
    );
}

backend_tests!(
    answers_without_the_option_are_as_they_were,
    an_explanation_names_what_allowed_it_or_what_would,
);
