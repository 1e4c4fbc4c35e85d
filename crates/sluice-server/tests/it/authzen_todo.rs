//! The OpenID AuthZEN Todo interop scenario: its published decision vectors (all 40, see
//! `data/authzen-todo/NOTICE`) against `examples/authzen-todo.yaml`, through the real HTTP API,
//! one by one and as batches.

use crate::harness::{Backend, TestServer, ADMIN_TOKEN};
use crate::{backend_tests, harness};
use reqwest::StatusCode;
use serde_json::{json, Value};

const POLICY: &str = include_str!("../../../../examples/authzen-todo.yaml");
const VECTORS: &str = include_str!("data/authzen-todo/decisions.json");

fn vectors() -> Vec<(Value, bool)> {
    let doc: Value = serde_json::from_str(VECTORS).expect("the vectors are JSON");
    doc["evaluation"]
        .as_array()
        .expect("an evaluation array")
        .iter()
        .map(|v| {
            let expected = v["expected"].as_bool().expect("a boolean expectation");
            (v["request"].clone(), expected)
        })
        .collect()
}

async fn todo_server(b: Backend) -> Option<TestServer> {
    let db = harness::Db::new(b).await?;
    let s = TestServer::start(db).await;
    s.apply(POLICY).await;
    Some(s)
}

async fn every_vector_one_by_one(b: Backend) {
    let Some(s) = todo_server(b).await else {
        return;
    };
    let vectors = vectors();
    assert_eq!(vectors.len(), 40);
    for (request, expected) in vectors {
        let (st, v) = s
            .post(ADMIN_TOKEN, "/access/v1/evaluation", request.clone())
            .await;
        assert_eq!(st, StatusCode::OK, "{request}: {v}");
        assert_eq!(v["decision"], json!(expected), "{request}: {v}");
    }
}

async fn every_vector_in_batches(b: Backend) {
    let Some(s) = todo_server(b).await else {
        return;
    };
    let vectors = vectors();
    // All 40 in one call.
    let items: Vec<Value> = vectors.iter().map(|(r, _)| r.clone()).collect();
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/access/v1/evaluations",
            json!({"evaluations": items}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let got: Vec<Value> = v["evaluations"]
        .as_array()
        .expect("evaluations")
        .iter()
        .map(|e| e["decision"].clone())
        .collect();
    let want: Vec<Value> = vectors.iter().map(|(_, e)| json!(e)).collect();
    assert_eq!(got, want, "{v}");
    // Per user, with the subject given once as the batch's default.
    for chunk in vectors.chunks(8) {
        let subject = chunk[0].0["subject"].clone();
        let items: Vec<Value> = chunk
            .iter()
            .map(|(r, _)| json!({"action": r["action"], "resource": r["resource"]}))
            .collect();
        let (st, v) = s
            .post(
                ADMIN_TOKEN,
                "/access/v1/evaluations",
                json!({"subject": subject, "evaluations": items}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let got: Vec<Value> = v["evaluations"]
            .as_array()
            .expect("evaluations")
            .iter()
            .map(|e| e["decision"].clone())
            .collect();
        let want: Vec<Value> = chunk.iter().map(|(_, e)| json!(e)).collect();
        assert_eq!(got, want, "{subject}: {v}");
    }
}

async fn a_deny_by_condition_says_why(b: Backend) {
    let Some(s) = todo_server(b).await else {
        return;
    };
    let morty = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
    let ask = |id: &str, owner: Option<&str>| {
        let mut resource = json!({"type": "todo", "id": "t-1"});
        if let Some(o) = owner {
            resource["properties"] = json!({"ownerID": o});
        }
        json!({"subject": {"type": "user", "id": id}, "action": {"name": "can_update_todo"}, "resource": resource})
    };
    let (_, v) = s
        .post(
            ADMIN_TOKEN,
            "/access/v1/evaluation",
            ask(morty, Some("rick@the-citadel.com")),
        )
        .await;
    assert_eq!(v["decision"], false, "{v}");
    assert_eq!(v["context"]["sluice"]["kind"], "condition_not_met", "{v}");
    // The same id in another case is another subject: unknown, never folded onto Morty.
    let (_, v) = s
        .post(
            ADMIN_TOKEN,
            "/access/v1/evaluation",
            ask(&morty.to_lowercase(), Some("morty@the-citadel.com")),
        )
        .await;
    assert_eq!(v["decision"], false, "{v}");
    assert_eq!(v["context"]["sluice"]["kind"], "unknown_principal", "{v}");
    // A subject type that is not the principal's kind is a deny.
    let mut q = ask(morty, Some("morty@the-citadel.com"));
    q["subject"]["type"] = json!("service_account");
    let (_, v) = s.post(ADMIN_TOKEN, "/access/v1/evaluation", q).await;
    assert_eq!(
        v["context"]["sluice"]["kind"], "subject_type_mismatch",
        "{v}"
    );
    // Denials by condition are audited like every other denial.
    let denials = s.audit_actions("decision.deny").await;
    assert!(denials.len() >= 3, "{denials:?}");
}

async fn a_bad_condition_is_refused_at_apply(b: Backend) {
    let Some(s) = todo_server(b).await else {
        return;
    };
    let broken = POLICY.replace(
        "has(resource.ownerID) && resource.ownerID",
        "has(resource.ownerID) && resource.ownerID ==",
    );
    let (st, v) = s
        .post(ADMIN_TOKEN, "/v1/policy", json!({"source": broken}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["code"], "invalid_condition", "{v}");
    let message = v["message"].as_str().unwrap_or_default();
    assert!(message.contains("line "), "{v}");
    assert!(message.contains("not a valid CEL expression"), "{v}");
}

/// Every subject id the Todo policy knows: the principals' names and the scenario's ids.
fn every_subject_id() -> Vec<String> {
    let mut ids: Vec<String> = ["rick", "morty", "summer", "beth", "jerry"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    for line in POLICY.lines() {
        if let Some((id, _)) = line.trim().split_once(": ") {
            if id.starts_with("CiRmZD") {
                ids.push(id.to_owned());
            }
        }
    }
    assert_eq!(ids.len(), 10, "{ids:?}");
    ids.sort();
    ids
}

/// Subject search, page by page, `limit` at a time.
async fn search_all(s: &TestServer, question: &Value, limit: usize) -> Vec<String> {
    let mut found = Vec::new();
    let mut token = String::new();
    loop {
        let mut body = question.clone();
        body["page"] = json!({"token": token, "limit": limit});
        let (st, v) = s.post(ADMIN_TOKEN, "/access/v1/search/subject", body).await;
        assert_eq!(st, StatusCode::OK, "{question}: {v}");
        let results = v["results"].as_array().expect("results");
        assert!(results.len() <= limit, "{v}");
        assert_eq!(v["page"]["count"], json!(results.len()), "{v}");
        for r in results {
            assert_eq!(r["type"], question["subject"]["type"], "{v}");
            found.push(r["id"].as_str().expect("an id").to_owned());
        }
        token = v["page"]["next_token"]
            .as_str()
            .expect("a token")
            .to_owned();
        if token.is_empty() {
            return found;
        }
    }
}

async fn subject_search_matches_evaluating_every_subject(b: Backend) {
    let Some(s) = todo_server(b).await else {
        return;
    };
    let ids = every_subject_id();
    let owners = [
        None,
        Some("morty@the-citadel.com"),
        Some("beth@the-smiths.com"),
    ];
    let actions = [
        "can_read_user",
        "can_read_todos",
        "can_create_todo",
        "can_update_todo",
        "can_delete_todo",
    ];
    for subject_type in ["user", "service_account"] {
        for action in actions {
            for owner in owners {
                let mut resource = json!({"type": "todo", "id": "t-1"});
                if action == "can_read_user" {
                    resource = json!({"type": "user", "id": "beth@the-smiths.com"});
                }
                if let Some(o) = owner {
                    resource["properties"] = json!({"ownerID": o});
                }
                let question = json!({
                    "subject": {"type": subject_type},
                    "action": {"name": action},
                    "resource": resource,
                });
                // Brute force: every id, one evaluation each.
                let mut want = Vec::new();
                for id in &ids {
                    let mut q = question.clone();
                    q["subject"]["id"] = json!(id);
                    let (st, v) = s.post(ADMIN_TOKEN, "/access/v1/evaluation", q).await;
                    assert_eq!(st, StatusCode::OK, "{v}");
                    if v["decision"] == json!(true) {
                        want.push(id.clone());
                    }
                }
                assert_eq!(search_all(&s, &question, 1000).await, want, "{question}");
                assert_eq!(search_all(&s, &question, 2).await, want, "{question}");
                if subject_type == "service_account" {
                    assert!(want.is_empty(), "{question}: {want:?}");
                }
            }
        }
    }
    // Editors may update their own todos: Morty by name and by his scenario id, and the
    // evil genius Rick, by both too.
    let question = json!({
        "subject": {"type": "user"},
        "action": {"name": "can_update_todo"},
        "resource": {"type": "todo", "id": "t-1", "properties": {"ownerID": "morty@the-citadel.com"}},
    });
    let found = search_all(&s, &question, 3).await;
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(found.iter().any(|id| id == "morty") && found.iter().any(|id| id == "rick"));
    // A bad page is refused.
    let mut bad = question.clone();
    bad["page"] = json!({"token": "not-a-token"});
    let (st, v) = s.post(ADMIN_TOKEN, "/access/v1/search/subject", bad).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["code"], "invalid_page_token", "{v}");
    // The discovery document lists it.
    let doc = s
        .http
        .get(s.url("/.well-known/authzen-configuration"))
        .send()
        .await
        .expect("sent")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(
        doc["search_subject_endpoint"],
        json!(format!("http://{}/access/v1/search/subject", s.addr)),
        "{doc}"
    );
}

backend_tests!(
    subject_search_matches_evaluating_every_subject,
    every_vector_one_by_one,
    every_vector_in_batches,
    a_deny_by_condition_says_why,
    a_bad_condition_is_refused_at_apply,
);
