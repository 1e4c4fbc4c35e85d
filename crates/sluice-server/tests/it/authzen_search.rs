//! AuthZEN 1.0 resource and action search through the real HTTP API, checked against
//! brute-force evaluation of every resource and action the test policy knows; keyset page
//! tokens across a policy change.

use crate::harness::{Backend, Db, TestServer, ADMIN_TOKEN};
use crate::{backend_tests, harness};
use reqwest::StatusCode;
use serde_json::{json, Value};

const POLICY: &str = r#"
users: [alice, bob, carol, dave]
service_accounts: [ci-bot]
groups:
  oncall: [alice]
  engineers: [alice, dave]
  leads: [bob, carol]
permissions:
  - to: [group:engineers]
    resource: "flag:staging/**"
    actions: ["*"]
  - to: [carol]
    resource: "db:*"
    actions: ["*"]
  - to: [bob]
    resource: "db:orders"
    actions: [read]
    when: "context.office == true"
  - to: [ci-bot]
    resource: "http:payments"
    actions: ["POST /v1/refunds", "GET /v1/*"]
entitlements:
  - name: flags-prod-operator
    scopes:
      - resource: "flag:production/**"
        actions: [toggle]
    requesters: [group:engineers]
    max_duration: 1h
    approval: { required: 1, approvers: [group:leads] }
    auto_approve: { requester_in: [group:oncall], max_duration: 30m }
  - name: orders-write
    scopes:
      - resource: "db:orders"
        actions: [read, write]
      - resource: "db:reports"
        actions: [read]
    requesters: [group:engineers]
    max_duration: 1h
    approval: { required: 1, approvers: [group:leads] }
"#;

/// Every resource the server knows, by kind: the flags imported below, the databases named in
/// the policy and the one declared to the gateway, the service named in the policy; `todo`
/// names nothing.
fn universe() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        (
            "flag",
            vec![
                "production/checkout-v2",
                "production/new-search",
                "staging/checkout-v2",
                "staging/new-search",
            ],
        ),
        ("db", vec!["analytics", "orders", "reports"]),
        ("http", vec!["payments"]),
        ("todo", vec![]),
    ]
}

/// Every action the server knows: Sluice's flag actions, the policy's literal ones (names
/// compare in lower case) and the gateway database's role actions.
const ACTIONS: [&str; 10] = [
    "admin",
    "delete",
    "edit-rollout",
    "edit-targeting",
    "post /v1/refunds",
    "read",
    "target",
    "target-self",
    "toggle",
    "write",
];

const SUBJECTS: [(&str, &str); 5] = [
    ("alice", "user"),
    ("bob", "user"),
    ("carol", "user"),
    ("dave", "user"),
    ("ci-bot", "service_account"),
];

async fn search_server(b: Backend) -> Option<TestServer> {
    let db = Db::new(b).await?;
    let s = TestServer::start(db).await;
    s.apply(POLICY).await;
    let flags = json!({"flags": {
        "checkout-v2": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
        "new-search": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}
    }});
    for env in ["staging", "production"] {
        let (st, v) = s
            .send(
                reqwest::Method::PUT,
                ADMIN_TOKEN,
                &format!("/v1/environments/{env}/flags?create_env=true"),
                Some(flags.clone()),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let (st, v) = s
        .send(
            reqwest::Method::PUT,
            ADMIN_TOKEN,
            "/v1/db/databases/analytics",
            Some(json!({
                "upstream": {"host": "127.0.0.1", "dbname": "analytics"},
                "roles": [
                    {"action": "read", "user": "ro", "password_env": "SLUICE_DB_RO"},
                    {"action": "admin", "user": "owner", "password_env": "SLUICE_DB_OWNER"}
                ]
            })),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let alice = s.token("alice").await;
    let (st, v) = s
        .request(&alice, "flags-prod-operator", "30m", "INC-1")
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    Some(s)
}

/// Every page of a search, `limit` at a time; the keys (`id` or `name`) in order.
async fn search_all(s: &TestServer, path: &str, question: &Value, limit: usize) -> Vec<String> {
    let mut found = Vec::new();
    let mut token = String::new();
    loop {
        let mut body = question.clone();
        body["page"] = json!({"token": token, "limit": limit});
        let (st, v) = s.post(ADMIN_TOKEN, path, body).await;
        assert_eq!(st, StatusCode::OK, "{question}: {v}");
        let results = v["results"].as_array().expect("results");
        assert!(results.len() <= limit, "{v}");
        assert_eq!(v["page"]["count"], json!(results.len()), "{v}");
        for r in results {
            let key = r.get("id").or_else(|| r.get("name")).expect("id or name");
            found.push(key.as_str().expect("a string").to_owned());
        }
        token = v["page"]["next_token"]
            .as_str()
            .expect("a token")
            .to_owned();
        if token.is_empty() {
            return found;
        }
        assert_eq!(results.len(), limit, "a page before the last is full: {v}");
    }
}

/// Brute force: one batch evaluating every (action, resource) for one subject and context.
async fn evaluate_everything(
    s: &TestServer,
    subject: &Value,
    context: &Value,
) -> Vec<(String, String, String, bool)> {
    let mut asked = Vec::new();
    for (kind, ids) in universe() {
        for id in ids {
            for action in ACTIONS {
                asked.push((kind.to_owned(), id.to_owned(), action.to_owned()));
            }
        }
    }
    let items: Vec<Value> = asked
        .iter()
        .map(|(k, id, a)| json!({"action": {"name": a}, "resource": {"type": k, "id": id}}))
        .collect();
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/access/v1/evaluations",
            json!({"subject": subject, "context": context, "evaluations": items}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let answers = v["evaluations"].as_array().expect("evaluations");
    asked
        .into_iter()
        .zip(answers)
        .map(|((k, id, a), e)| (k, id, a, e["decision"] == json!(true)))
        .collect()
}

async fn resource_and_action_search_match_evaluating_everything(b: Backend) {
    let Some(s) = search_server(b).await else {
        return;
    };
    let mut allowed_somewhere = 0;
    for (id, subject_type) in SUBJECTS {
        let subject = json!({"type": subject_type, "id": id});
        for context in [json!({}), json!({"office": true})] {
            let truth = evaluate_everything(&s, &subject, &context).await;
            for (kind, ids) in universe() {
                for action in ACTIONS {
                    let mut want: Vec<String> = truth
                        .iter()
                        .filter(|(k, _, a, yes)| k == kind && a == action && *yes)
                        .map(|(_, id, _, _)| id.clone())
                        .collect();
                    want.sort();
                    allowed_somewhere += want.len();
                    let question = json!({
                        "subject": subject,
                        "action": {"name": action},
                        "resource": {"type": kind},
                        "context": context,
                    });
                    for limit in [1000, 2] {
                        let got =
                            search_all(&s, "/access/v1/search/resource", &question, limit).await;
                        assert_eq!(got, want, "{question} limit {limit}");
                    }
                }
                for rid in ids {
                    let mut want: Vec<String> = truth
                        .iter()
                        .filter(|(k, i, _, yes)| k == kind && i == rid && *yes)
                        .map(|(_, _, a, _)| a.clone())
                        .collect();
                    want.sort();
                    let question = json!({
                        "subject": subject,
                        "resource": {"type": kind, "id": rid},
                        "context": context,
                    });
                    for limit in [1000, 3] {
                        let got =
                            search_all(&s, "/access/v1/search/action", &question, limit).await;
                        assert_eq!(got, want, "{question} limit {limit}");
                    }
                }
            }
        }
    }
    assert!(allowed_somewhere > 20, "the policy allows something");

    // What the policy spells out, seen from a few questions.
    let carol = json!({"type": "user", "id": "carol"});
    let q = json!({"subject": carol, "action": {"name": "read"}, "resource": {"type": "db", "id": "ignored"}});
    assert_eq!(
        search_all(&s, "/access/v1/search/resource", &q, 1000).await,
        ["analytics", "orders", "reports"],
        "the gateway's database is found though no policy line names it"
    );
    let q = json!({"subject": carol, "resource": {"type": "db", "id": "analytics"}, "action": {"name": "ignored"}});
    assert_eq!(
        search_all(&s, "/access/v1/search/action", &q, 1000).await,
        [
            "admin",
            "delete",
            "edit-rollout",
            "edit-targeting",
            "read",
            "target",
            "target-self",
            "toggle",
            "write"
        ],
        "her `*` covers every action Sluice knows, the gateway role `admin` included, but the \
         HTTP one (`*` stops at `/`); an action given is ignored"
    );
    let alice = json!({"type": "user", "id": "alice"});
    let q = json!({"subject": alice, "action": {"name": "toggle"}, "resource": {"type": "flag"}});
    assert_eq!(
        search_all(&s, "/access/v1/search/resource", &q, 1000).await,
        [
            "production/checkout-v2",
            "production/new-search",
            "staging/checkout-v2",
            "staging/new-search"
        ],
        "her grant and her standing permission"
    );
    // Bob's database read holds only in the office.
    let bob = json!({"type": "user", "id": "bob"});
    let q = json!({"subject": bob, "resource": {"type": "db", "id": "orders"}});
    assert!(search_all(&s, "/access/v1/search/action", &q, 10)
        .await
        .is_empty());
    let mut q = q;
    q["context"] = json!({"office": true});
    assert_eq!(
        search_all(&s, "/access/v1/search/action", &q, 10).await,
        ["read"]
    );
    // Searches are not decisions: nothing is audited.
    let before = s.audit_actions("decision.allow").await.len();
    search_all(&s, "/access/v1/search/action", &q, 10).await;
    assert_eq!(s.audit_actions("decision.allow").await.len(), before);
}

async fn a_search_is_refused_when_malformed_or_not_ones_to_ask(b: Backend) {
    let Some(s) = search_server(b).await else {
        return;
    };
    let alice = json!({"type": "user", "id": "alice"});
    for (path, body, what) in [
        (
            "/access/v1/search/resource",
            json!({"subject": alice, "action": {"name": "read"}, "resource": {"id": "x"}}),
            "resource.type",
        ),
        (
            "/access/v1/search/resource",
            json!({"subject": alice, "resource": {"type": "db"}}),
            "action",
        ),
        (
            "/access/v1/search/action",
            json!({"subject": alice}),
            "resource",
        ),
        (
            "/access/v1/search/action",
            json!({"subject": {"type": "user"}, "resource": {"type": "db", "id": "orders"}}),
            "subject.id",
        ),
    ] {
        let (st, v) = s.post(ADMIN_TOKEN, path, body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{path} {what}: {v}");
        assert_eq!(v["code"], "invalid_request", "{v}");
        assert!(
            v["message"].as_str().unwrap_or_default().contains(what),
            "{what}: {v}"
        );
    }
    // A question about someone else needs an administrator or a member of `deciders`, as an
    // evaluation does; about oneself, anyone may ask.
    let dave = s.token("dave").await;
    let about_alice = json!({"subject": alice, "resource": {"type": "db", "id": "orders"}});
    let (st, v) = s.post(&dave, "/access/v1/search/action", about_alice).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let about_dave = json!({"subject": {"type": "user", "id": "dave"}, "action": {"name": "toggle"}, "resource": {"type": "flag"}});
    let (st, v) = s
        .post(&dave, "/access/v1/search/resource", about_dave)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v["results"],
        json!([{"type": "flag", "id": "staging/checkout-v2"}, {"type": "flag", "id": "staging/new-search"}]),
        "{v}"
    );
    // Every search is in the discovery document.
    let doc = s
        .http
        .get(s.url("/.well-known/authzen-configuration"))
        .send()
        .await
        .expect("sent")
        .json::<Value>()
        .await
        .expect("json");
    for (key, path) in [
        ("search_subject_endpoint", "subject"),
        ("search_resource_endpoint", "resource"),
        ("search_action_endpoint", "action"),
    ] {
        assert_eq!(
            doc[key],
            json!(format!("http://{}/access/v1/search/{path}", s.addr)),
            "{doc}"
        );
    }
}

/// One page of a subject search, as (ids, next_token).
async fn subject_page(s: &TestServer, body: Value) -> (Vec<String>, String) {
    let (st, v) = s.post(ADMIN_TOKEN, "/access/v1/search/subject", body).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let ids = v["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    (
        ids,
        v["page"]["next_token"].as_str().expect("token").to_owned(),
    )
}

async fn page_tokens_are_keysets_bound_to_their_search(b: Backend) {
    let Some(db) = Db::new(b).await else {
        return;
    };
    let s = TestServer::start(db).await;
    s.apply(harness::POLICY).await;
    // Engineers (alice, dave, erin, mallory) may do anything on staging flags.
    let question = json!({
        "subject": {"type": "user"},
        "action": {"name": "toggle"},
        "resource": {"type": "flag", "id": "staging/x"},
    });
    let mut first = question.clone();
    first["page"] = json!({"limit": 2});
    let (ids, token) = subject_page(&s, first).await;
    assert_eq!(ids, ["alice", "dave"]);
    assert!(!token.is_empty());
    // Between pages, the policy changes: `bob` joins the engineers (before the cursor) and
    // `erin` leaves them (after it). An offset would now return `dave` again; the keyset
    // goes on after `dave`.
    s.apply(&harness::POLICY.replace(
        "engineers: [alice, dave, erin, mallory]",
        "engineers: [alice, bob, dave, mallory]",
    ))
    .await;
    // The standard's second request: the same question, the token, the limit left out.
    let mut next = question.clone();
    next["page"] = json!({"token": token});
    let (ids, last) = subject_page(&s, next.clone()).await;
    assert_eq!(ids, ["mallory"], "no repeat, no removed subject");
    assert_eq!(last, "", "the last page");

    // A token comes back with its own search only.
    for (change, what) in [
        (json!({"action": {"name": "read"}}), "another action"),
        (json!({"context": {"office": true}}), "another context"),
        (
            json!({"subject": {"type": "service_account"}}),
            "another subject type",
        ),
    ] {
        let mut other = next.clone();
        for (k, v) in change.as_object().expect("an object") {
            other[k] = v.clone();
        }
        let (st, v) = s
            .post(ADMIN_TOKEN, "/access/v1/search/subject", other)
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{what}: {v}");
        assert_eq!(v["code"], "invalid_page_token", "{what}: {v}");
    }
    // The same token given to another kind of search is refused too.
    let as_resource = json!({
        "subject": {"type": "user", "id": "alice"},
        "action": {"name": "toggle"},
        "resource": {"type": "flag"},
        "page": next["page"],
    });
    let (st, v) = s
        .post(ADMIN_TOKEN, "/access/v1/search/resource", as_resource)
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_page_token")),
        "{v}"
    );
    // Another page size mid-search, and tokens this server never gave.
    let mut resized = next.clone();
    resized["page"]["limit"] = json!(5);
    let (st, v) = s
        .post(ADMIN_TOKEN, "/access/v1/search/subject", resized)
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_page_token")),
        "{v}"
    );
    for forged in ["not-a-token", "00", "2"] {
        let mut bad = question.clone();
        bad["page"] = json!({"token": forged});
        let (st, v) = s.post(ADMIN_TOKEN, "/access/v1/search/subject", bad).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_page_token")),
            "{forged}: {v}"
        );
    }
    for limit in [0, 1001] {
        let mut bad = question.clone();
        bad["page"] = json!({"limit": limit});
        let (st, v) = s.post(ADMIN_TOKEN, "/access/v1/search/subject", bad).await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{limit}: {v}"
        );
    }
}

backend_tests!(
    resource_and_action_search_match_evaluating_everything,
    a_search_is_refused_when_malformed_or_not_ones_to_ask,
    page_tokens_are_keysets_bound_to_their_search,
);
