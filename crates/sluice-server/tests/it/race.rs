//! Approvals racing each other: fifty leads press "approve" at the same moment, or one lead
//! presses it twenty times. Exactly the right number of votes count, the grant is made once,
//! and nobody gets a server error for losing the race.

use crate::backend_tests;
use crate::harness::{Backend, Db, TestServer, ADMIN_TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const LEADS: usize = 50;

/// One requester, fifty eligible approvers, and entitlements needing 1, 3 and 2 approvals.
fn policy() -> String {
    let leads: Vec<String> = (0..LEADS).map(|i| format!("l{i:02}")).collect();
    format!(
        r#"
users: [req, {leads}]
groups:
  leads: [{leads}]
  requesters: [req]
entitlements:
  - name: one-approval
    scopes: [{{ resource: "db:orders", actions: [read] }}]
    requesters: [group:requesters]
    max_duration: 1h
    approval: {{ required: 1, approvers: [group:leads] }}
  - name: three-approvals
    scopes: [{{ resource: "db:payments", actions: [read] }}]
    requesters: [group:requesters]
    max_duration: 1h
    approval: {{ required: 3, approvers: [group:leads] }}
  - name: two-approvals
    scopes: [{{ resource: "db:ledger", actions: [read] }}]
    requesters: [group:requesters]
    max_duration: 1h
    approval: {{ required: 2, approvers: [group:leads] }}
"#,
        leads = leads.join(", ")
    )
}

async fn setup(b: Backend) -> Option<(TestServer, String, Vec<String>)> {
    let db = Db::new(b).await?;
    let s = TestServer::start(db).await;
    s.apply(&policy()).await;
    let req = s.token("req").await;
    let mut leads = Vec::with_capacity(LEADS);
    for i in 0..LEADS {
        leads.push(s.token(&format!("l{i:02}")).await);
    }
    Some((s, req, leads))
}

async fn open(s: &TestServer, token: &str, entitlement: &str) -> String {
    let (st, v) = s.request(token, entitlement, "30m", "race").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "pending", "{v}");
    v["id"].as_str().expect("id").to_owned()
}

/// Fires one approval per token, all at once; returns (status, body) per token, in order.
async fn approve_all(s: &TestServer, id: &str, tokens: &[String]) -> Vec<(StatusCode, Value)> {
    let url = s.url(&format!("/v1/requests/{id}/approve"));
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(tokens.len()));
    let mut tasks = Vec::with_capacity(tokens.len());
    for token in tokens {
        // One client per caller: separate connections, as separate people would have.
        let http = reqwest::Client::new();
        let (url, token, barrier) = (url.clone(), token.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let resp = http
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({"comment": "lgtm"}))
                .send()
                .await
                .expect("sent");
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, body)
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

fn for_request(entries: &[Value], id: &str) -> usize {
    entries.iter().filter(|e| e["subject_id"] == id).count()
}

/// Every loser gets a clean 409 with a stable code; nobody gets a 5xx.
fn check_statuses(results: &[(StatusCode, Value)], codes: &[&str]) -> usize {
    let mut ok = 0;
    for (st, body) in results {
        match *st {
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT => {
                let code = body["code"].as_str().unwrap_or("");
                assert!(codes.contains(&code), "unexpected conflict code: {body}");
                assert!(body["message"].is_string(), "{body}");
            }
            other => panic!("an approval answered {other}: {body}"),
        }
    }
    ok
}

fn approvers(v: &Value) -> Vec<String> {
    v["votes"]
        .as_array()
        .expect("votes")
        .iter()
        .map(|x| x["approver"].as_str().expect("approver").to_owned())
        .collect()
}

async fn fifty_leads_approve_at_once_and_the_grant_is_made_once(b: Backend) {
    let Some((s, req, leads)) = setup(b).await else {
        return;
    };

    // One approval needed: exactly one of fifty counts.
    let id = open(&s, &req, "one-approval").await;
    let results = approve_all(&s, &id, &leads).await;
    assert_eq!(check_statuses(&results, &["wrong_status"]), 1);
    let (_, shown) = s.get(&req, &format!("/v1/requests/{id}")).await;
    assert_eq!(shown["status"], "active", "{shown}");
    assert_eq!(approvers(&shown).len(), 1, "{shown}");
    assert_eq!(shown["approvals"], 1);
    assert_eq!(
        for_request(&s.audit_actions("access.granted").await, &id),
        1
    );
    assert_eq!(
        for_request(&s.audit_actions("access.approved").await, &id),
        1
    );
    assert!(s.allowed("req", "read", "db", "orders").await);

    // Three approvals needed: exactly three distinct leads count, the grant is made once.
    let id3 = open(&s, &req, "three-approvals").await;
    let results = approve_all(&s, &id3, &leads).await;
    assert_eq!(check_statuses(&results, &["wrong_status"]), 3);
    let (_, shown) = s.get(&req, &format!("/v1/requests/{id3}")).await;
    assert_eq!(shown["status"], "active", "{shown}");
    let names = approvers(&shown);
    let distinct: BTreeSet<&String> = names.iter().collect();
    assert_eq!(
        (names.len(), distinct.len()),
        (3, 3),
        "three distinct approvers: {shown}"
    );
    assert_eq!(shown["approvals"], 3);
    assert_eq!(
        for_request(&s.audit_actions("access.granted").await, &id3),
        1
    );
    assert_eq!(
        for_request(&s.audit_actions("access.approved").await, &id3),
        3
    );
    // The approvals were taken one at a time: each winner saw its vote added to the ones before.
    let mut seen: Vec<usize> = results
        .iter()
        .filter(|(st, _)| *st == StatusCode::OK)
        .map(|(_, v)| v["votes"].as_array().map_or(0, Vec::len))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, vec![1, 2, 3]);
    assert_eq!(s.verify().await["ok"], true);
}

async fn one_approver_pressing_twenty_times_counts_once(b: Backend) {
    let Some((s, req, leads)) = setup(b).await else {
        return;
    };
    let id = open(&s, &req, "two-approvals").await;
    let same: Vec<String> = std::iter::repeat_n(leads[7].clone(), 20).collect();
    let results = approve_all(&s, &id, &same).await;
    assert_eq!(check_statuses(&results, &["already_voted"]), 1);
    let (_, shown) = s.get(&req, &format!("/v1/requests/{id}")).await;
    assert_eq!(shown["status"], "pending", "one of two approvals: {shown}");
    assert_eq!(approvers(&shown), vec!["l07".to_owned()]);
    assert_eq!(shown["approvals"], 1);
    assert_eq!(
        for_request(&s.audit_actions("access.approved").await, &id),
        1
    );
    assert!(!s.allowed("req", "read", "db", "ledger").await);
    // A second, different lead completes it.
    let (st, v) = s
        .post(&leads[8], &format!("/v1/requests/{id}/approve"), json!({}))
        .await;
    assert_eq!((st, v["status"].as_str()), (StatusCode::OK, Some("active")));
    assert!(s.allowed("req", "read", "db", "ledger").await);
    let (st, _) = s.get(ADMIN_TOKEN, "/v1/audit/verify").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(s.verify().await["ok"], true);
}

/// Writers committed together (one SQLite batch) or back to back are answered at once and
/// apply their change to the in-memory snapshot in whatever order their tasks run. An older
/// state of a grant arriving after a newer one must never bring a revoked grant back.
async fn a_late_older_change_never_resurrects_a_revoked_grant(b: Backend) {
    let Some((s, req, leads)) = setup(b).await else {
        return;
    };
    let id = open(&s, &req, "one-approval").await;
    let (st, v) = s
        .post(&leads[0], &format!("/v1/requests/{id}/approve"), json!({}))
        .await;
    assert_eq!((st, v["status"].as_str()), (StatusCode::OK, Some("active")));
    let active = s
        .app
        .store
        .request(&id)
        .await
        .expect("read")
        .expect("stored");
    let (st, v) = s
        .post(
            &leads[1],
            &format!("/v1/requests/{id}/revoke"),
            json!({"reason": "done"}),
        )
        .await;
    assert_eq!(
        (st, v["status"].as_str()),
        (StatusCode::OK, Some("revoked"))
    );
    let revoked = s
        .app
        .store
        .request(&id)
        .await
        .expect("read")
        .expect("stored");
    assert!(!s.allowed("req", "read", "db", "orders").await);
    let rev = s.app.store.state_revs().await.expect("revs").access;

    // The activation's writer gets to its update only now: it is older than the snapshot.
    s.app.apply_local(&[&active], rev - 1).await;
    assert!(
        !s.allowed("req", "read", "db", "orders").await,
        "an older change applied late brought the grant back"
    );
    // Two later changes of one batch, answered at once, applied newest first.
    s.app.apply_local(&[&revoked], rev + 2).await;
    s.app.apply_local(&[&active], rev + 1).await;
    assert!(
        !s.allowed("req", "read", "db", "orders").await,
        "changes applied out of order left the older state in force"
    );
}

backend_tests!(
    fifty_leads_approve_at_once_and_the_grant_is_made_once,
    one_approver_pressing_twenty_times_counts_once,
    a_late_older_change_never_resurrects_a_revoked_grant,
);

/// Two instances on one PostgreSQL database. Instance A starts a vote on a request it opened
/// from the request as it wrote it (no locked read), and instance B has voted since: A's vote
/// must count B's, not overwrite it, and a request B already granted must be refused as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vote_on_one_instance_sees_what_another_instance_voted() {
    let Some((a, req, leads)) = setup(Backend::Postgres).await else {
        return;
    };
    let db = Db {
        url: a.db.url.clone(),
        key: a.db.key.clone(),
        _dir: tempfile::tempdir().expect("tempdir"),
    };
    let b = TestServer::start(db).await;

    // Two approvals needed: one on each instance, and both count.
    let id = open(&a, &req, "two-approvals").await;
    let (st, v) = b
        .post(&leads[1], &format!("/v1/requests/{id}/approve"), json!({}))
        .await;
    assert_eq!(
        (st, v["status"].as_str()),
        (StatusCode::OK, Some("pending")),
        "{v}"
    );
    let (st, v) = a
        .post(&leads[2], &format!("/v1/requests/{id}/approve"), json!({}))
        .await;
    assert_eq!(
        (st, v["status"].as_str()),
        (StatusCode::OK, Some("active")),
        "{v}"
    );
    let (_, shown) = a.get(&req, &format!("/v1/requests/{id}")).await;
    assert_eq!(
        approvers(&shown),
        vec!["l01".to_owned(), "l02".to_owned()],
        "{shown}"
    );
    assert_eq!(shown["approvals"], 2, "{shown}");
    assert_eq!(
        for_request(&a.audit_actions("access.approved").await, &id),
        2
    );
    assert_eq!(
        for_request(&a.audit_actions("access.granted").await, &id),
        1
    );

    // One approval needed, granted on B: A's later approval is refused for what it is.
    let id = open(&a, &req, "one-approval").await;
    let (st, v) = b
        .post(&leads[3], &format!("/v1/requests/{id}/approve"), json!({}))
        .await;
    assert_eq!(
        (st, v["status"].as_str()),
        (StatusCode::OK, Some("active")),
        "{v}"
    );
    let (st, v) = a
        .post(&leads[4], &format!("/v1/requests/{id}/approve"), json!({}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], "wrong_status", "{v}");
    let (_, shown) = a.get(&req, &format!("/v1/requests/{id}")).await;
    assert_eq!(approvers(&shown), vec!["l03".to_owned()], "{shown}");
    assert_eq!(
        for_request(&a.audit_actions("access.approved").await, &id),
        1
    );
    assert_eq!(a.verify().await["ok"], true);
}
