//! No audit, no action: when the audit trail cannot be written, nothing changes and the caller
//! gets an error — never a silent success, never an unaudited allow.

use crate::harness::{Backend, ADMIN_TOKEN};
use crate::sql::{break_audit, repair_audit};
use crate::{backend_tests, server};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn assert_server_error(st: StatusCode, body: &Value, what: &str) {
    assert!(
        st.is_server_error(),
        "{what}: expected a 5xx, got {st}: {body}"
    );
    assert!(
        body["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{what}: error body has a code: {body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: error body has a message: {body}"
    );
    assert!(
        !body["message"]
            .as_str()
            .unwrap_or("")
            .contains("audit down"),
        "{what}: database detail stays in the server log: {body}"
    );
}

async fn audit_len(s: &crate::harness::TestServer) -> usize {
    let (st, v) = s.get(ADMIN_TOKEN, "/v1/audit?limit=1000").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["entries"].as_array().map_or(0, Vec::len)
}

async fn nothing_happens_when_the_audit_trail_cannot_be_written(b: Backend) {
    let s = server!(b);
    let (alice, dave, bob) = (
        s.token("alice").await,
        s.token("dave").await,
        s.token("bob").await,
    );
    // Before the failure: alice holds a grant, dave has a pending request.
    let (st, grant) = s
        .request(&alice, "flags-prod-operator", "30m", "INC-1")
        .await;
    assert_eq!(st, StatusCode::CREATED, "{grant}");
    let (st, pending) = s.request(&dave, "orders-db-read", "1h", "").await;
    assert_eq!(st, StatusCode::CREATED, "{pending}");
    let pending_id = pending["id"].as_str().expect("id").to_owned();
    let (_, tokens_before) = s.get(ADMIN_TOKEN, "/v1/tokens?all=true").await;
    let (_, policy_before) = s.get(ADMIN_TOKEN, "/v1/policy").await;
    let entries_before = audit_len(&s).await;

    break_audit(&s.db).await;

    // A new request: refused, and no request row.
    let (st, e) = s
        .request(&alice, "flags-prod-operator", "10m", "INC-2")
        .await;
    assert_server_error(st, &e, "request");
    let (st, e) = s.request(&dave, "orders-db-read", "1h", "").await;
    assert_server_error(st, &e, "pending request");

    // An approval: refused, the request stays pending without the vote.
    let (st, e) = s
        .post(
            &bob,
            &format!("/v1/requests/{pending_id}/approve"),
            json!({}),
        )
        .await;
    assert_server_error(st, &e, "approve");
    let (st, e) = s
        .post(&bob, &format!("/v1/requests/{pending_id}/deny"), json!({}))
        .await;
    assert_server_error(st, &e, "deny");

    // Decisions: neither an allow nor a deny is answered without its record.
    for (subject, expected) in [("alice", "an allow"), ("nobody", "a deny")] {
        let q = json!({"subject": {"type": "user", "id": subject}, "action": {"name": "toggle"}, "resource": {"type": "flag", "id": "production/checkout-v2"}});
        let (st, e) = s.post(ADMIN_TOKEN, "/access/v1/evaluation", q).await;
        assert_server_error(st, &e, expected);
        assert!(e.get("decision").is_none(), "no decision in an error: {e}");
    }
    let batch = json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "toggle"},
        "evaluations": [{"resource": {"type": "flag", "id": "production/a"}}]});
    let (st, e) = s.post(ADMIN_TOKEN, "/access/v1/evaluations", batch).await;
    assert_server_error(st, &e, "batch decision");

    // Tokens: no secret handed out, nothing stored.
    let (st, e) = s
        .post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"principal": "erin", "name": "laptop"}),
        )
        .await;
    assert_server_error(st, &e, "token");
    assert!(e.get("token").is_none(), "{e}");

    // Revocation and policy changes alike.
    let (st, e) = s
        .post(
            &bob,
            &format!("/v1/requests/{}/revoke", grant["id"].as_str().expect("id")),
            json!({"reason": "done"}),
        )
        .await;
    assert_server_error(st, &e, "revoke");
    let (st, e) = s
        .post(
            ADMIN_TOKEN,
            "/v1/policy",
            json!({"source": crate::harness::POLICY.replace("pending_ttl: 30m", "pending_ttl: 45m")}),
        )
        .await;
    assert_server_error(st, &e, "policy");

    repair_audit(&s.db).await;

    // Nothing of the above happened.
    assert_eq!(audit_len(&s).await, entries_before, "no audit entry");
    let (_, list) = s.get(ADMIN_TOKEN, "/v1/requests").await;
    let ids: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "only the two requests from before: {list}");
    let (_, shown) = s.get(&dave, &format!("/v1/requests/{pending_id}")).await;
    assert_eq!(shown["status"], "pending", "{shown}");
    assert_eq!(shown["votes"], json!([]), "{shown}");
    let (_, shown) = s
        .get(
            &alice,
            &format!("/v1/requests/{}", grant["id"].as_str().expect("id")),
        )
        .await;
    assert_eq!(shown["status"], "active", "not revoked: {shown}");
    let (_, tokens_after) = s.get(ADMIN_TOKEN, "/v1/tokens?all=true").await;
    assert_eq!(tokens_after, tokens_before, "no token stored");
    let (_, policy_after) = s.get(ADMIN_TOKEN, "/v1/policy").await;
    assert_eq!(policy_after, policy_before, "policy unchanged");
    assert!(s.allowed("alice", "toggle", "flag", "production/x").await);
    assert_eq!(s.verify().await["ok"], true);

    // And everything works again.
    let (st, v) = s
        .request(&alice, "flags-prod-operator", "10m", "INC-2")
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = s
        .post(
            &bob,
            &format!("/v1/requests/{pending_id}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let erin = s.token("erin").await;
    let (st, _) = s.get(&erin, "/v1/whoami").await;
    assert_eq!(st, StatusCode::OK);
    let report = s.verify().await;
    assert_eq!(report["ok"], true, "{report}");
}

async fn the_reaper_records_nothing_and_changes_nothing_while_the_audit_is_down(b: Backend) {
    let s = server!(b);
    let alice = s.token("alice").await;
    let (_, grant) = s
        .request(&alice, "flags-prod-operator", "10m", "INC-3")
        .await;
    let id = grant["id"].as_str().expect("id").to_owned();
    s.advance(chrono::TimeDelta::minutes(10));
    break_audit(&s.db).await;
    assert!(
        s.app.reap().await.is_err(),
        "the reaper reports the failure"
    );
    repair_audit(&s.db).await;
    assert!(s.audit_actions("access.expired").await.is_empty());
    assert!(
        !s.allowed("alice", "toggle", "flag", "production/x").await,
        "expiry holds even though it was not recorded"
    );
    assert_eq!(s.app.reap().await.expect("reap"), 1, "recorded once, later");
    let (_, shown) = s.get(&alice, &format!("/v1/requests/{id}")).await;
    assert_eq!(shown["status"], "expired");
    assert_eq!(s.verify().await["ok"], true);
}

backend_tests!(
    nothing_happens_when_the_audit_trail_cannot_be_written,
    the_reaper_records_nothing_and_changes_nothing_while_the_audit_is_down,
);
