//! The request lifecycle over HTTP, with expiry checked at the exact millisecond.

use crate::harness::{Backend, ADMIN_TOKEN};
use crate::{backend_tests, server};
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn expires_at(v: &Value) -> DateTime<Utc> {
    v["expires_at"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("expires_at")
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

async fn auto_approval_and_exact_expiry(b: Backend) {
    let s = server!(b);
    let alice = s.token("alice").await;
    let (st, v) = s
        .request(
            &alice,
            "flags-prod-operator",
            "30m",
            "INC-4411 checkout errors",
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "active");
    assert_eq!(v["origin"], "auto-approved");
    let exp = expires_at(&v);
    assert_eq!(
        exp - s.clock_now(),
        TimeDelta::minutes(30),
        "the server computes expiry from the duration"
    );
    assert!(
        s.allowed("alice", "toggle", "flag", "production/checkout-v2")
            .await
    );
    s.clock.set(exp - TimeDelta::milliseconds(1));
    assert!(
        s.allowed("alice", "toggle", "flag", "production/checkout-v2")
            .await,
        "one tick before expiry: allowed"
    );
    s.clock.set(exp);
    assert!(
        !s.allowed("alice", "toggle", "flag", "production/checkout-v2")
            .await,
        "at expires_at: denied"
    );
    s.clock.set(exp + TimeDelta::milliseconds(1));
    assert!(
        !s.allowed("alice", "toggle", "flag", "production/checkout-v2")
            .await,
        "after: denied"
    );
    // The reaper records the expiry exactly once, however often it runs.
    assert_eq!(s.app.reap().await.expect("reap"), 1);
    assert_eq!(s.app.reap().await.expect("reap"), 0);
    let expired = s.audit_actions("access.expired").await;
    assert_eq!(expired.len(), 1);
    let (_, shown) = s.get(&alice, &format!("/v1/requests/{}", id(&v))).await;
    assert_eq!(shown["status"], "expired");
    for action in ["access.requested", "access.auto-approved", "access.granted"] {
        assert_eq!(
            s.audit_actions(action).await.len(),
            1,
            "{action} audited once"
        );
    }
    assert_eq!(s.verify().await["ok"], true);
}

async fn approvals_count_distinct_current_approvers(b: Backend) {
    let s = server!(b);
    let (dave, erin, bob, mallory) = (
        s.token("dave").await,
        s.token("erin").await,
        s.token("bob").await,
        s.token("mallory").await,
    );
    let (st, v) = s.request(&dave, "orders-db-read", "1h", "").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "pending");
    let path = format!("/v1/requests/{}/approve", id(&v));
    let (st, e) = s.post(&dave, &path, json!({})).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("self_approval")),
        "{e}"
    );
    let (st, e) = s.post(&erin, &path, json!({})).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_an_approver")),
        "{e}"
    );
    let (st, one) = s.post(&bob, &path, json!({"comment": "ok"})).await;
    assert_eq!(st, StatusCode::OK, "{one}");
    assert_eq!(one["status"], "pending");
    assert_eq!(
        one["next_step"],
        "needs 1 more approval from group:leads, mallory"
    );
    let (st, e) = s.post(&bob, &path, json!({})).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_voted")),
        "{e}"
    );
    assert!(
        !s.allowed("dave", "read", "db", "orders").await,
        "pending is not granted"
    );
    let (st, two) = s.post(&mallory, &path, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{two}");
    assert_eq!(two["status"], "active");
    assert_eq!(two["approvals"], 2);
    assert!(s.allowed("dave", "read", "db", "orders").await);
    assert!(
        !s.allowed("dave", "write", "db", "orders").await,
        "only the granted action"
    );
    assert_eq!(s.audit_actions("access.approved").await.len(), 2);
    assert_eq!(s.audit_actions("access.granted").await.len(), 1);
}

async fn admins_cannot_approve_their_own_requests(b: Backend) {
    let s = server!(b);
    let mallory = s.token("mallory").await;
    let (_, v) = s.request(&mallory, "orders-db-read", "1h", "").await;
    let (st, e) = s
        .post(
            &mallory,
            &format!("/v1/requests/{}/approve", id(&v)),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("self_approval")),
        "{e}"
    );
}

async fn one_deny_ends_the_request(b: Backend) {
    let s = server!(b);
    let (dave, bob, carol) = (
        s.token("dave").await,
        s.token("bob").await,
        s.token("carol").await,
    );
    let (_, v) = s.request(&dave, "orders-db-read", "1h", "").await;
    let (st, _) = s
        .post(&bob, &format!("/v1/requests/{}/approve", id(&v)), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, d) = s
        .post(
            &carol,
            &format!("/v1/requests/{}/deny", id(&v)),
            json!({"comment": "no ticket"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{d}");
    assert_eq!(d["status"], "denied");
    let mallory = s.token("mallory").await;
    let (st, e) = s
        .post(
            &mallory,
            &format!("/v1/requests/{}/approve", id(&v)),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::CONFLICT, Some("wrong_status")),
        "{e}"
    );
    assert!(!s.allowed("dave", "read", "db", "orders").await);
}

async fn break_glass_is_active_at_once_and_needs_review(b: Backend) {
    let s = server!(b);
    let (dave, bob) = (s.token("dave").await, s.token("bob").await);
    let (st, e) = s
        .post(
            &dave,
            "/v1/requests",
            json!({"entitlement": "flags-prod-operator", "duration": "1h", "break_glass": true}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("reason_required")),
        "{e}"
    );
    let (st, v) = s.post(&dave, "/v1/requests", json!({"entitlement": "flags-prod-operator", "duration": "1h", "reason": "site down", "break_glass": true})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        (
            v["status"].as_str(),
            v["origin"].as_str(),
            v["needs_review"].as_bool()
        ),
        (Some("active"), Some("break-glass"), Some(true))
    );
    assert!(
        s.allowed("dave", "toggle", "flag", "production/checkout-v2")
            .await
    );
    let (_, list) = s.get(&bob, "/v1/requests?needs_review=true").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let review = format!("/v1/requests/{}/review", id(&v));
    let (st, e) = s.post(&dave, &review, json!({})).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("self_approval")),
        "{e}"
    );
    // Approving or denying a grant that only wants review says so, and what to run instead.
    for verb in ["approve", "deny"] {
        let (st, e) = s
            .post(&bob, &format!("/v1/requests/{}/{verb}", id(&v)), json!({}))
            .await;
        assert_eq!(
            (st, e["code"].as_str()),
            (StatusCode::CONFLICT, Some("wrong_status")),
            "{verb}: {e}"
        );
        assert!(
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("reviewed, not approved")
                    && m.contains(&format!("sluice access review {}", id(&v)))),
            "{verb}: {e}"
        );
    }
    // A refused review says it is about reviewing, not approving.
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("you cannot review your own break-glass grant")),
        "{e}"
    );
    let (st, r) = s.post(&bob, &review, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(
        (r["needs_review"].as_bool(), r["reviewed_by"].as_str()),
        (Some(false), Some("bob"))
    );
    assert_eq!(s.audit_actions("access.break-glass").await.len(), 1);
    let (_, list) = s.get(&bob, "/v1/requests?needs_review=true").await;
    assert_eq!(list.as_array().map(Vec::len), Some(0));
}

async fn extension_continues_from_the_old_expiry(b: Backend) {
    let s = server!(b);
    let alice = s.token("alice").await;
    let (_, v) = s
        .request(&alice, "flags-prod-operator", "20m", "INC-1")
        .await;
    let first = expires_at(&v);
    s.advance(TimeDelta::minutes(15));
    let (st, ext) = s
        .post(
            &alice,
            &format!("/v1/requests/{}/extend", id(&v)),
            json!({"duration": "30m", "reason": "still on it"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{ext}");
    assert_eq!(ext["extends"], id(&v));
    assert_eq!(
        ext["status"], "active",
        "auto-approved under the same rules"
    );
    assert_eq!(expires_at(&ext), first + TimeDelta::minutes(30));
    s.clock.set(first + TimeDelta::minutes(29));
    assert!(s.allowed("alice", "toggle", "flag", "production/x").await);
    s.clock.set(first + TimeDelta::minutes(30));
    assert!(!s.allowed("alice", "toggle", "flag", "production/x").await);
    // Someone else cannot extend alice's grant.
    let dave = s.token("dave").await;
    let (st, e) = s
        .post(
            &dave,
            &format!("/v1/requests/{}/extend", id(&v)),
            json!({"duration": "10m", "reason": "x"}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
}

async fn revoke_and_relinquish_take_effect_at_once(b: Backend) {
    let s = server!(b);
    let (alice, bob, dave) = (
        s.token("alice").await,
        s.token("bob").await,
        s.token("dave").await,
    );
    let (_, g1) = s
        .request(&alice, "flags-prod-operator", "30m", "INC-2")
        .await;
    assert!(s.allowed("alice", "toggle", "flag", "production/x").await);
    let revoke = format!("/v1/requests/{}/revoke", id(&g1));
    let (st, e) = s.post(&dave, &revoke, json!({"reason": "nope"})).await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "a non-approver cannot revoke: {e}"
    );
    let (st, e) = s.post(&bob, &revoke, json!({})).await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a revocation needs a reason: {e}"
    );
    let (st, r) = s
        .post(&bob, &revoke, json!({"reason": "incident closed"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "revoked");
    assert!(
        !s.allowed("alice", "toggle", "flag", "production/x").await,
        "revoked: the very next decision says no"
    );
    let (_, g2) = s
        .request(&alice, "flags-prod-operator", "30m", "INC-3")
        .await;
    assert!(s.allowed("alice", "toggle", "flag", "production/x").await);
    let (st, e) = s
        .post(
            &bob,
            &format!("/v1/requests/{}/relinquish", id(&g2)),
            json!({}),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "only the holder relinquishes: {e}"
    );
    let (st, r) = s
        .post(
            &alice,
            &format!("/v1/requests/{}/relinquish", id(&g2)),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, r["status"].as_str()),
        (StatusCode::OK, Some("relinquished"))
    );
    assert!(!s.allowed("alice", "toggle", "flag", "production/x").await);
}

async fn pending_requests_time_out(b: Backend) {
    let s = server!(b);
    let (dave, bob) = (s.token("dave").await, s.token("bob").await);
    let (_, v) = s.request(&dave, "orders-db-read", "1h", "").await;
    s.advance(TimeDelta::minutes(30));
    let (_, shown) = s.get(&dave, &format!("/v1/requests/{}", id(&v))).await;
    assert_eq!(
        shown["status"], "timed-out",
        "shown as timed out before the reaper runs"
    );
    let (st, e) = s
        .post(&bob, &format!("/v1/requests/{}/approve", id(&v)), json!({}))
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::CONFLICT, Some("wrong_status")),
        "{e}"
    );
    assert_eq!(s.app.reap().await.expect("reap"), 1);
    assert_eq!(s.audit_actions("access.timed-out").await.len(), 1);
    let (st, e) = s
        .post(&dave, &format!("/v1/requests/{}/cancel", id(&v)), json!({}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{e}");
}

async fn cancel_withdraws_a_pending_request(b: Backend) {
    let s = server!(b);
    let (dave, erin) = (s.token("dave").await, s.token("erin").await);
    let (_, v) = s.request(&dave, "orders-db-read", "1h", "").await;
    let (st, _) = s
        .post(&erin, &format!("/v1/requests/{}/cancel", id(&v)), json!({}))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, c) = s
        .post(&dave, &format!("/v1/requests/{}/cancel", id(&v)), json!({}))
        .await;
    assert_eq!(
        (st, c["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
}

async fn expiry_is_honoured_right_after_a_restart(b: Backend) {
    let s = server!(b);
    let alice = s.token("alice").await;
    let (_, v) = s
        .request(&alice, "flags-prod-operator", "10m", "INC-5")
        .await;
    let exp = expires_at(&v);
    s.clock.set(exp);
    // Restart without the reaper having run: the stored status still says active.
    let s = s.restart().await;
    assert!(!s.allowed("alice", "toggle", "flag", "production/x").await);
    assert_eq!(
        s.audit_actions("access.expired").await.len(),
        0,
        "nothing recorded yet"
    );
    assert_eq!(s.app.reap().await.expect("reap"), 1);
    assert_eq!(s.verify().await["ok"], true);
}

async fn durations_are_capped_and_expiry_is_never_taken_from_the_client(b: Backend) {
    let s = server!(b);
    let alice = s.token("alice").await;
    let (st, e) = s.request(&alice, "flags-prod-operator", "3h", "INC").await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("duration_over_cap")),
        "{e}"
    );
    assert!(
        e["message"].as_str().unwrap_or("").contains("at most 1h"),
        "names the cap: {e}"
    );
    let far = "2030-01-01T00:00:00Z";
    let (st, e) = s.post(&alice, "/v1/requests", json!({"entitlement": "flags-prod-operator", "duration": "10m", "reason": "x", "expires_at": far})).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unknown_field")),
        "{e}"
    );
    let (st, e) = s.request(&alice, "flags-prod-operator", "soon", "x").await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_duration")),
        "{e}"
    );
    let (_, list) = s.get(ADMIN_TOKEN, "/v1/requests").await;
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(0),
        "nothing was written"
    );
}

async fn names_are_normalised_before_matching(b: Backend) {
    let s = server!(b);
    let alice = s.token("alice").await;
    let (st, _) = s.request(&alice, "flags-prod-operator", "10m", "INC").await;
    assert_eq!(st, StatusCode::CREATED);
    assert!(s.allowed("alice", "toggle", "Flag", "Production/X").await);
    assert!(s.allowed("alice", "TOGGLE", "flag", "production/x").await);
    // AuthZEN subject ids compare exactly (README, "Conditions"): another case is another
    // subject, never folded onto alice.
    assert!(!s.allowed("ALICE", "toggle", "flag", "production/x").await);
    assert!(
        s.allowed("alice", "toggle", "ｆｌａｇ", "production/x")
            .await,
        "full-width folds to ASCII"
    );
    // ...and a rule for staging cannot be reached by dressing up production.
    assert!(!s.allowed("dave", "toggle", "Flag", "Production/x").await);
    assert!(
        s.allowed("dave", "toggle", "FLAG", "STAGING/x").await,
        "standing permission"
    );
}

async fn unknown_principals_and_scopes_wider_than_the_entitlement_are_refused(b: Backend) {
    let s = server!(b);
    assert!(!s.allowed("nobody", "read", "db", "orders").await);
    let dave = s.token("dave").await;
    let wide = json!({"entitlement": "orders-db-read", "duration": "1h", "scopes": [{"resource": "db:*", "actions": ["read"]}]});
    let (st, e) = s.post(&dave, "/v1/requests", wide).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("scope_too_wide")),
        "{e}"
    );
    let other = json!({"entitlement": "orders-db-read", "duration": "1h", "scopes": [{"resource": "db:orders", "actions": ["write"]}]});
    let (st, _) = s.post(&dave, "/v1/requests", other).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let bot = s.token("ci-bot").await;
    let (st, e) = s.request(&bot, "orders-db-read", "1h", "").await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_eligible")),
        "{e}"
    );
}

/// On the real clock, on both stores: the grant is honoured until `expires_at` and refused
/// from then on, with nothing in the background having run.
async fn real_time_grant_of_two_seconds(b: Backend) {
    let Some(db) = crate::harness::Db::new(b).await else {
        return;
    };
    let s = crate::harness::TestServer::start_with_clock_system(db).await;
    s.apply(crate::harness::POLICY).await;
    let alice = s.token("alice").await;
    let (st, v) = s.request(&alice, "flags-prod-operator", "2s", "INC").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let end = expires_at(&v);
    assert!(s.allowed("alice", "toggle", "flag", "production/x").await);
    // Wait for the moment itself (the server's clock is the system clock), not a guess.
    let left = (end - s.clock_now()).to_std().unwrap_or_default();
    tokio::time::sleep(left).await;
    assert!(s.clock_now() >= end);
    assert!(!s.allowed("alice", "toggle", "flag", "production/x").await);
}

backend_tests!(
    auto_approval_and_exact_expiry,
    approvals_count_distinct_current_approvers,
    admins_cannot_approve_their_own_requests,
    one_deny_ends_the_request,
    break_glass_is_active_at_once_and_needs_review,
    extension_continues_from_the_old_expiry,
    revoke_and_relinquish_take_effect_at_once,
    pending_requests_time_out,
    cancel_withdraws_a_pending_request,
    expiry_is_honoured_right_after_a_restart,
    durations_are_capped_and_expiry_is_never_taken_from_the_client,
    names_are_normalised_before_matching,
    unknown_principals_and_scopes_wider_than_the_entitlement_are_refused,
    real_time_grant_of_two_seconds,
);
