//! Change requests (four-eyes flag changes): applied on approval or at their time, never
//! self-approved, only by current approvers, ended by one deny, refused when the flag moved
//! underneath them, timed out — with an injected clock, on both backends.

use crate::backend_tests;
use crate::harness::{Backend, Db, TestServer, ADMIN_TOKEN};
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

const POLICY: &str = r#"
users: [alice, bob, carol, dave, mallory]
groups:
  engineers: [alice, dave, mallory]
  leads: [bob, carol, mallory]
  admins-group: [mallory]
admins: [group:admins-group]
environments:
  production:
    protected: true
    approval: { required: 1, approvers: [group:leads] }
    change_request_ttl: 2h
  canary:
    protected: true
    approval: { required: 2, approvers: [group:leads] }
  staging: { protected: true }
"#;

fn flags() -> Value {
    json!({"flags": {
        "checkout-v2": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}
    }})
}

struct Env {
    s: TestServer,
    client: String,
}

async fn setup(b: Backend) -> Option<Env> {
    let db = Db::new(b).await?;
    let s = TestServer::start(db).await;
    for env in ["production", "canary", "staging"] {
        let (st, v) = s
            .send(
                reqwest::Method::PUT,
                ADMIN_TOKEN,
                &format!("/v1/environments/{env}/flags?create_env=true"),
                Some(flags()),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"name": "app", "kind": "client", "environment": "production"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let client = v["token"].as_str().expect("client key").to_owned();
    // Flags are loaded before the policy protects production; from then on an import
    // there needs a grant (see protected_changes_need_a_live_grant).
    s.apply(POLICY).await;
    Some(Env { s, client })
}

fn off() -> Value {
    json!({"op": "set-state", "enabled": false})
}

impl Env {
    async fn propose(
        &self,
        token: &str,
        env: &str,
        change: Value,
        base: i64,
        apply_at: Option<DateTime<Utc>>,
    ) -> (StatusCode, Value) {
        self.s
            .post(
                token,
                &format!("/v1/environments/{env}/flags/checkout-v2/proposals"),
                json!({"change": change, "base_revision": base, "apply_at": apply_at, "reason": "CHG-7 retire checkout v2"}),
            )
            .await
    }

    /// Proposes and returns the change request's id.
    async fn proposed(&self, token: &str, env: &str, change: Value, base: i64) -> String {
        let (st, v) = self.propose(token, env, change, base, None).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        assert_eq!(v["status"], "pending", "{v}");
        v["id"].as_str().expect("id").to_owned()
    }

    async fn vote(&self, token: &str, id: &str, verb: &str) -> (StatusCode, Value) {
        self.s
            .post(
                token,
                &format!("/v1/proposals/{id}/{verb}"),
                json!({"comment": "looks right"}),
            )
            .await
    }

    async fn show(&self, id: &str) -> Value {
        let (st, v) = self
            .s
            .get(ADMIN_TOKEN, &format!("/v1/proposals/{id}"))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v
    }

    async fn revision(&self, env: &str) -> i64 {
        let (st, v) = self
            .s
            .get(
                ADMIN_TOKEN,
                &format!("/v1/environments/{env}/flags/checkout-v2"),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v["revision"].as_i64().expect("revision")
    }

    /// The OFREP reason for `checkout-v2` in production, once it equals `want` (the snapshot
    /// is refreshed right after the commit, possibly by the background work).
    async fn eventually_reason(&self, want: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..50 {
            let resp = self
                .s
                .http
                .post(self.s.url("/ofrep/v1/evaluate/flags/checkout-v2"))
                .header("x-api-key", &self.client)
                .json(&json!({"context": {"targetingKey": "u1"}}))
                .send()
                .await
                .expect("send");
            last = resp.json().await.expect("json");
            if last["reason"] == want {
                return last;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("OFREP never answered {want}: {last}");
    }
}

async fn applies_on_approval_and_is_audited(b: Backend) {
    let Some(e) = setup(b).await else {
        return;
    };
    let (alice, bob) = (e.s.token("alice").await, e.s.token("bob").await);
    // Alice holds no grant: a direct change is refused, a proposal is not.
    let (st, _) =
        e.s.post(
            &alice,
            "/v1/environments/production/flags/checkout-v2/changes",
            json!({"change": off(), "base_revision": 1}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let id = e.proposed(&alice, "production", off(), 1).await;
    let v = e.show(&id).await;
    assert_eq!(
        (v["approvals"].as_u64(), v["required"].as_u64()),
        (Some(0), Some(1)),
        "{v}"
    );
    let (st, v) = e.vote(&bob, &id, "approve").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["status"].as_str(), v["applied_revision"].as_i64()),
        (Some("applied"), Some(2)),
        "{v}"
    );
    e.eventually_reason("DISABLED").await;
    assert_eq!(e.revision("production").await, 2);
    let proposed = e.s.audit_actions("flag.change-proposed").await;
    assert_eq!(proposed.len(), 1);
    assert_eq!(proposed[0]["actor"], "alice");
    let approved = e.s.audit_actions("flag.change-approved").await;
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["actor"], "bob");
    assert_eq!(approved[0]["subject_id"], id.as_str());
    let changed = e.s.audit_actions("flag.changed").await;
    assert_eq!(changed.len(), 1);
    let c = &changed[0];
    assert_eq!(c["actor"], "system:change-request");
    assert_eq!(c["details"]["on_behalf_of"], "alice");
    assert_eq!(c["details"]["authority"]["by"], "change_request", "{c}");
    assert_eq!(c["details"]["authority"]["id"], id.as_str());
    assert_eq!(c["details"]["authority"]["approvers"], json!(["bob"]));
    assert_eq!(
        (
            c["details"]["before"]["state"].as_str(),
            c["details"]["after"]["state"].as_str()
        ),
        (Some("ENABLED"), Some("DISABLED"))
    );
    // Listing by status, and a second approval of an applied proposal is refused.
    let (_, list) =
        e.s.get(&alice, "/v1/proposals?env=production&status=applied")
            .await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let carol = e.s.token("carol").await;
    let (st, _) = e.vote(&carol, &id, "approve").await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(e.s.verify().await["ok"], true);
}

async fn self_approval_is_refused_admins_included(b: Backend) {
    let Some(e) = setup(b).await else {
        return;
    };
    // Mallory is an administrator and a lead, and still may not approve her own proposal.
    let mallory = e.s.token("mallory").await;
    let id = e.proposed(&mallory, "production", off(), 1).await;
    let (st, err) = e.vote(&mallory, &id, "approve").await;
    assert_eq!(
        (st, err["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("self_approval")),
        "{err}"
    );
    let (st, err) = e.vote(&mallory, &id, "deny").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(e.show(&id).await["status"], "pending");
    assert_eq!(e.revision("production").await, 1, "nothing applied");
    assert!(e.s.audit_actions("flag.change-approved").await.is_empty());
}

async fn only_current_approvers_may_vote(b: Backend) {
    let Some(e) = setup(b).await else {
        return;
    };
    let (alice, dave) = (e.s.token("alice").await, e.s.token("dave").await);
    let id = e.proposed(&alice, "production", off(), 1).await;
    let (st, err) = e.vote(&dave, &id, "approve").await;
    assert_eq!(
        (st, err["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_an_approver")),
        "{err}"
    );
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("group:leads"),
        "names the approvers: {err}"
    );
    // The bootstrap administrator is no approver either.
    let (st, _) = e.vote(ADMIN_TOKEN, &id, "approve").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Eligibility is checked at approval time: bob leaves the leads, then may not approve.
    e.s.apply(&POLICY.replace("leads: [bob, carol, mallory]", "leads: [carol, mallory]"))
        .await;
    let bob = e.s.token("bob").await;
    let (st, err) = e.vote(&bob, &id, "approve").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(e.show(&id).await["status"], "pending");
    // An environment without an approval rule takes no proposals, with a clear message.
    let (st, err) = e.propose(&alice, "staging", off(), 1, None).await;
    assert_eq!(
        (st, err["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("no_approval_rule")),
        "{err}"
    );
    // A proposal on a stale base is refused at once.
    let (st, err) = e.propose(&alice, "production", off(), 7, None).await;
    assert_eq!(
        (st, err["code"].as_str()),
        (StatusCode::CONFLICT, Some("stale_revision")),
        "{err}"
    );
    // Only the proposer cancels.
    let (st, _) =
        e.s.post(&dave, &format!("/v1/proposals/{id}/cancel"), json!({}))
            .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) =
        e.s.post(&alice, &format!("/v1/proposals/{id}/cancel"), json!({}))
            .await;
    assert_eq!(
        (st, v["status"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "{v}"
    );
    assert_eq!(e.s.audit_actions("flag.change-cancelled").await.len(), 1);
}

async fn deny_wins(b: Backend) {
    let Some(e) = setup(b).await else {
        return;
    };
    let alice = e.s.token("alice").await;
    let (bob, carol, mallory) = (
        e.s.token("bob").await,
        e.s.token("carol").await,
        e.s.token("mallory").await,
    );
    // Canary needs two approvals.
    let id = e.proposed(&alice, "canary", off(), 1).await;
    let (st, v) = e.vote(&bob, &id, "approve").await;
    assert_eq!(
        (st, v["status"].as_str()),
        (StatusCode::OK, Some("pending")),
        "{v}"
    );
    assert_eq!(v["approvals"], 1);
    let (st, v) = e.vote(&bob, &id, "approve").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_voted")),
        "each approver counts once: {v}"
    );
    let (st, v) = e.vote(&carol, &id, "deny").await;
    assert_eq!(
        (st, v["status"].as_str()),
        (StatusCode::OK, Some("denied")),
        "{v}"
    );
    let (st, _) = e.vote(&mallory, &id, "approve").await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "a denied proposal takes no more votes"
    );
    assert_eq!(e.revision("canary").await, 1, "nothing applied");
    let denied = e.s.audit_actions("flag.change-denied").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["actor"], "carol");
}

async fn stale_when_the_flag_changed_underneath(b: Backend) {
    let Some(e) = setup(b).await else {
        return;
    };
    let (alice, dave, bob) = (
        e.s.token("alice").await,
        e.s.token("dave").await,
        e.s.token("bob").await,
    );
    let first = e.proposed(&alice, "production", off(), 1).await;
    let second = e
        .proposed(
            &dave,
            "production",
            json!({"op": "set-default", "variant": "off"}),
            1,
        )
        .await;
    // And one scheduled for later, approved now.
    let at = e.s.clock_now() + TimeDelta::hours(1);
    let (st, later) = e
        .propose(
            &dave,
            "production",
            json!({"op": "set-default", "variant": "off"}),
            1,
            Some(at),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{later}");
    let later = later["id"].as_str().expect("id").to_owned();
    let (st, v) = e.vote(&bob, &later, "approve").await;
    assert_eq!(
        (st, v["status"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{v}"
    );
    // The first applies and moves the flag to revision 2 ...
    let (_, v) = e.vote(&bob, &first, "approve").await;
    assert_eq!(v["status"], "applied", "{v}");
    // ... so the second, approved now, is refused as stale, and recorded so.
    let (st, v) = e.vote(&bob, &second, "approve").await;
    assert_eq!(
        (st, v["status"].as_str()),
        (StatusCode::OK, Some("stale")),
        "{v}"
    );
    assert!(
        v["result"]
            .as_str()
            .unwrap_or_default()
            .contains("revision 2"),
        "{v}"
    );
    assert_eq!(
        e.revision("production").await,
        2,
        "the stale change did not land"
    );
    assert_eq!(e.show(&second).await["votes"][0]["approver"], "bob");
    // The scheduled one is refused as stale when its time comes.
    e.s.clock.set(at);
    let mut settled = 0;
    for _ in 0..2 {
        settled += e.s.app.tick_change_requests().await.expect("tick");
    }
    assert!(
        settled <= 1,
        "settled once (the background may have been first)"
    );
    assert_eq!(e.show(&later).await["status"], "stale");
    assert_eq!(e.revision("production").await, 2);
    let stale = e.s.audit_actions("flag.change-stale").await;
    assert_eq!(stale.len(), 2, "{stale:?}");
    assert!(stale.iter().all(|s| s["actor"] == "system:change-request"));
    assert_eq!(e.s.audit_actions("flag.changed").await.len(), 1);
    assert_eq!(e.s.verify().await["ok"], true);
}

async fn pending_proposals_time_out_once(b: Backend) {
    let Some(e) = setup(b).await else {
        return;
    };
    let (alice, bob) = (e.s.token("alice").await, e.s.token("bob").await);
    let id = e.proposed(&alice, "production", off(), 1).await;
    let v = e.show(&id).await;
    let until: DateTime<Utc> = v["pending_until"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("pending_until");
    assert_eq!(
        until - e.s.clock_now(),
        TimeDelta::hours(2),
        "the environment's TTL"
    );
    e.s.clock.set(until - TimeDelta::milliseconds(1));
    assert_eq!(e.show(&id).await["status"], "pending");
    e.s.clock.set(until);
    // Shown as timed out the moment the time passes, whatever background work has done.
    assert_eq!(e.show(&id).await["status"], "timed-out");
    let (_, list) = e.s.get(&alice, "/v1/proposals?status=timed-out").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let (_, list) = e.s.get(&alice, "/v1/proposals?status=pending").await;
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");
    let (st, err) = e.vote(&bob, &id, "approve").await;
    assert_eq!(st, StatusCode::CONFLICT, "too late: {err}");
    let mut settled = 0;
    for _ in 0..3 {
        settled += e.s.app.tick_change_requests().await.expect("tick");
    }
    assert!(settled <= 1, "recorded once");
    let timed_out = e.s.audit_actions("flag.change-timed-out").await;
    assert_eq!(timed_out.len(), 1, "recorded exactly once");
    assert_eq!(timed_out[0]["subject_id"], id.as_str());
    assert_eq!(e.revision("production").await, 1);
}

async fn scheduled_apply_happens_once_after_approval(b: Backend) {
    let Some(e) = setup(b).await else {
        return;
    };
    let (alice, bob) = (e.s.token("alice").await, e.s.token("bob").await);
    let at = e.s.clock_now() + TimeDelta::hours(3);
    let (st, v) = e.propose(&alice, "production", off(), 1, Some(at)).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().expect("id").to_owned();
    // Past its TTL of 2h, but approved before: it waits for its time, not for the TTL.
    e.s.advance(TimeDelta::hours(1));
    let (st, v) = e.vote(&bob, &id, "approve").await;
    assert_eq!(
        (st, v["status"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{v}"
    );
    e.s.advance(TimeDelta::hours(1) + TimeDelta::minutes(30));
    assert_eq!(
        e.s.app.tick_change_requests().await.expect("tick"),
        0,
        "not yet"
    );
    assert_eq!(e.show(&id).await["status"], "approved");
    e.eventually_reason("STATIC").await;
    e.s.clock.set(at);
    let (one, two) = tokio::join!(
        e.s.app.tick_change_requests(),
        e.s.app.tick_change_requests()
    );
    assert!(one.expect("tick") + two.expect("tick") <= 1);
    e.eventually_reason("DISABLED").await;
    let v = e.show(&id).await;
    assert_eq!(v["status"], "applied", "{v}");
    assert_eq!(e.s.app.tick_change_requests().await.expect("tick"), 0);
    let changed = e.s.audit_actions("flag.changed").await;
    assert_eq!(changed.len(), 1, "applied exactly once");
    assert_eq!(changed[0]["details"]["authority"]["by"], "change_request");
    assert_eq!(changed[0]["details"]["on_behalf_of"], "alice");
    assert_eq!(e.revision("production").await, 2);
}

backend_tests!(
    applies_on_approval_and_is_audited,
    self_approval_is_refused_admins_included,
    only_current_approvers_may_vote,
    deny_wins,
    stale_when_the_flag_changed_underneath,
    pending_proposals_time_out_once,
    scheduled_apply_happens_once_after_approval,
);
