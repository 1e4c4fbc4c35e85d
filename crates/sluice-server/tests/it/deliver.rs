//! Deliverability under temporary access: protected environments, the kill switch, optimistic
//! concurrency, expiring targets, staged rollouts and scheduled changes — with an injected clock.

use crate::backend_tests;
use crate::harness::{Backend, Db, TestServer, ADMIN_TOKEN};
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

const POLICY: &str = r#"
users: [alice, bob, dave, erin]
groups:
  engineers: [alice, dave, erin]
  leads: [bob]
environments:
  production: { protected: true }
  staging: {}
permissions:
  - to: [group:engineers]
    resource: "flag:staging/**"
    actions: ["*"]
entitlements:
  - name: flags-prod-operator
    scopes:
      - resource: "flag:production/**"
        actions: [toggle, edit-targeting, edit-rollout, target, delete]
    requesters: [group:engineers]
    max_duration: 1h
    approval: { required: 1, approvers: [group:leads] }
  - name: prod-self-target
    scopes:
      - resource: "flag:production/**"
        actions: [target-self]
    requesters: [group:engineers]
    max_duration: 4h
    approval: { required: 1, approvers: [group:leads] }
"#;

fn flags() -> Value {
    json!({"flags": {
        "checkout-v2": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
        "new-search": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}
    }})
}

struct Env {
    s: TestServer,
    client: String,
}

async fn setup(b: Backend, env: &str) -> Option<Env> {
    let db = Db::new(b).await?;
    let s = TestServer::start(db).await;
    let (st, v) = s
        .send(
            reqwest::Method::PUT,
            ADMIN_TOKEN,
            &format!("/v1/environments/{env}/flags?create_env=true"),
            Some(flags()),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"name": "app", "kind": "client", "environment": env}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let client = v["token"].as_str().expect("client key").to_owned();
    // Flags are loaded before the policy protects production; from then on an import
    // there needs a grant (see protected_changes_need_a_live_grant).
    s.apply(POLICY).await;
    Some(Env { s, client })
}

impl Env {
    async fn eval(&self, key: &str, user: &str) -> Value {
        let resp = self
            .s
            .http
            .post(self.s.url(&format!("/ofrep/v1/evaluate/flags/{key}")))
            .header("x-api-key", &self.client)
            .json(&json!({"context": {"targetingKey": user}}))
            .send()
            .await
            .expect("send");
        resp.json().await.expect("json")
    }

    async fn bulk(&self, user: &str) -> (String, Value) {
        let resp = self
            .s
            .http
            .post(self.s.url("/ofrep/v1/evaluate/flags"))
            .header("x-api-key", &self.client)
            .json(&json!({"context": {"targetingKey": user}}))
            .send()
            .await
            .expect("send");
        let tag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (tag, resp.json().await.expect("json"))
    }

    async fn change(
        &self,
        token: &str,
        env: &str,
        key: &str,
        change: Value,
        base: Option<i64>,
    ) -> (StatusCode, Value) {
        self.s
            .post(
                token,
                &format!("/v1/environments/{env}/flags/{key}/changes"),
                json!({"change": change, "base_revision": base}),
            )
            .await
    }

    /// Grants `entitlement` to `who` (approved by bob); returns its expiry.
    async fn grant(&self, who: &str, entitlement: &str, duration: &str) -> DateTime<Utc> {
        let t = self.s.token(who).await;
        let (st, r) = self.s.request(&t, entitlement, duration, "INC-1").await;
        assert_eq!(st, StatusCode::CREATED, "{r}");
        let bob = self.s.token("bob").await;
        let (st, r) = self
            .s
            .post(
                &bob,
                &format!("/v1/requests/{}/approve", r["id"].as_str().expect("id")),
                json!({}),
            )
            .await;
        assert_eq!(
            (st, r["status"].as_str()),
            (StatusCode::OK, Some("active")),
            "{r}"
        );
        r["expires_at"]
            .as_str()
            .and_then(|e| e.parse().ok())
            .expect("expires_at")
    }
}

async fn protected_changes_need_a_live_grant(b: Backend) {
    let Some(e) = setup(b, "production").await else {
        return;
    };
    let dave = e.s.token("dave").await;
    let off = json!({"op": "set-state", "enabled": false});
    let (st, err) = e
        .change(&dave, "production", "checkout-v2", off.clone(), Some(1))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{err}");
    let msg = err["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("flags-prod-operator") && msg.contains("sluice access request"),
        "names the entitlement and the command: {msg}"
    );
    assert!(
        msg.contains("--for 30m"),
        "a duration within the cap: {msg}"
    );
    // Someone the entitlement does not list as a requester is not told to request it.
    let bob = e.s.token("bob").await;
    let (st, err) = e
        .change(&bob, "production", "checkout-v2", off.clone(), Some(1))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{err}");
    let msg = err["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("may not request") && !msg.contains("sluice access request"),
        "{msg}"
    );
    // A whole-set import is a change too: no grant, no import, administrators included.
    let (st, err) =
        e.s.send(
            reqwest::Method::PUT,
            ADMIN_TOKEN,
            "/v1/environments/production/flags",
            Some(flags()),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{err}");
    // Administrators get no bypass in a protected environment.
    let (st, _) = e
        .change(
            ADMIN_TOKEN,
            "production",
            "checkout-v2",
            off.clone(),
            Some(1),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let exp = e.grant("dave", "flags-prod-operator", "30m").await;
    let (st, done) = e
        .change(&dave, "production", "checkout-v2", off.clone(), Some(1))
        .await;
    assert_eq!(st, StatusCode::OK, "{done}");
    assert_eq!(done["revision"], 2);
    let ev = e.eval("checkout-v2", "u1").await;
    assert_eq!(
        ev["reason"], "DISABLED",
        "the kill switch is seen by the very next evaluation: {ev}"
    );
    assert!(
        ev.get("value").is_none(),
        "a disabled flag answers without a value: {ev}"
    );
    let audit = e.s.audit_actions("flag.changed").await;
    assert_eq!(audit.len(), 1);
    let d = &audit[0]["details"];
    assert_eq!(
        (d["before"]["state"].as_str(), d["after"]["state"].as_str()),
        (Some("ENABLED"), Some("DISABLED")),
        "{d}"
    );
    assert_eq!(d["authority"]["by"], "grant");
    // One tick after the grant expires, the next change is refused.
    e.s.clock.set(exp + TimeDelta::milliseconds(1));
    let on = json!({"op": "set-state", "enabled": true});
    let (st, _) = e
        .change(&dave, "production", "checkout-v2", on, Some(2))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(
        e.eval("checkout-v2", "u1").await["reason"],
        "DISABLED",
        "nothing changed"
    );
}

async fn concurrent_changes_on_one_revision_one_wins(b: Backend) {
    let Some(e) = setup(b, "staging").await else {
        return;
    };
    let (alice, dave) = (e.s.token("alice").await, e.s.token("dave").await);
    let a = e.change(
        &alice,
        "staging",
        "new-search",
        json!({"op": "set-default", "variant": "on"}),
        Some(1),
    );
    let d = e.change(
        &dave,
        "staging",
        "new-search",
        json!({"op": "set-state", "enabled": false}),
        Some(1),
    );
    let ((sa, va), (sd, vd)) = tokio::join!(a, d);
    let mut codes = [sa, sd];
    codes.sort();
    assert_eq!(codes, [StatusCode::OK, StatusCode::CONFLICT], "{va} {vd}");
    let loser = if sa == StatusCode::CONFLICT { &va } else { &vd };
    assert_eq!(loser["code"], "stale_revision");
    let (_, flag) =
        e.s.get(&alice, "/v1/environments/staging/flags/new-search")
            .await;
    assert_eq!(flag["revision"], 2, "exactly one change landed");
    assert_eq!(e.s.audit_actions("flag.changed").await.len(), 1);
    // A change based on a stale revision is refused and changes nothing.
    let (st, _) = e
        .change(
            &alice,
            "staging",
            "new-search",
            json!({"op": "set-default", "variant": "off"}),
            Some(1),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    // Invalid changes are refused like an import.
    let (st, err) = e
        .change(
            &alice,
            "staging",
            "new-search",
            json!({"op": "set-default", "variant": "maybe"}),
            Some(2),
        )
        .await;
    assert_eq!(
        (st, err["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_flag")),
        "{err}"
    );
}

async fn expiring_targets_expire_exactly(b: Backend) {
    let Some(e) = setup(b, "staging").await else {
        return;
    };
    let dave = e.s.token("dave").await;
    let (st, t) = e.s.post(&dave, "/v1/environments/staging/flags/new-search/targets", json!({"variant": "on", "keys": ["alice", "bob"], "group": "internal testers", "for": "2h"})).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let exp: DateTime<Utc> = t["expires_at"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("expires_at");
    assert_eq!(exp - e.s.clock_now(), TimeDelta::hours(2));
    let hit = e.eval("new-search", "alice").await;
    assert_eq!(
        (hit["value"].as_bool(), hit["reason"].as_str()),
        (Some(true), Some("TARGETING_MATCH")),
        "{hit}"
    );
    assert_eq!(
        e.eval("new-search", "carol").await["value"],
        false,
        "nobody else sees it"
    );
    // An import serves the compile it validated with, and the environment's layers with it:
    // the target holds across a re-import, from the moment it answers.
    let (st, v) =
        e.s.send(
            reqwest::Method::PUT,
            ADMIN_TOKEN,
            "/v1/environments/staging/flags",
            Some(flags()),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let hit = e.eval("new-search", "alice").await;
    assert_eq!(
        (hit["value"].as_bool(), hit["reason"].as_str()),
        (Some(true), Some("TARGETING_MATCH")),
        "{hit}"
    );
    e.s.clock.set(exp - TimeDelta::milliseconds(1));
    let (tag_before, body) = e.bulk("alice").await;
    let flag = body["flags"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["key"] == "new-search"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(flag["value"], true);
    // Subscribe to SSE before expiry.
    let mut sse =
        e.s.http
            .get(e.s.url("/ofrep/v1/events"))
            .header("x-api-key", &e.client)
            .send()
            .await
            .expect("sse");
    e.s.clock.set(exp);
    assert_eq!(
        e.eval("new-search", "alice").await["value"],
        false,
        "at expires_at the target is gone"
    );
    let (tag_at, body) = e.bulk("alice").await;
    assert_ne!(
        tag_before, tag_at,
        "the bulk ETag changes at expiry, so no cache serves the old answer"
    );
    let flag = body["flags"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["key"] == "new-search"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(flag["value"], false);
    // A cached validator from before expiry is not honoured.
    let resp =
        e.s.http
            .post(e.s.url("/ofrep/v1/evaluate/flags"))
            .header("x-api-key", &e.client)
            .header("if-none-match", &tag_before)
            .json(&json!({"context": {"targetingKey": "alice"}}))
            .send()
            .await
            .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    // The clock work — the background loop's, or this call, whichever comes first — records
    // the expiry once and tells subscribers.
    e.s.app.tick_layers().await.expect("tick");
    let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), sse.chunk())
        .await
        .expect("an event within 5 s")
        .expect("chunk")
        .expect("data");
    assert!(String::from_utf8_lossy(&chunk).contains("refetchEvaluation"));
    assert_eq!(e.s.app.tick_layers().await.expect("tick"), 0);
    assert_eq!(e.s.audit_actions("flag.target-expired").await.len(), 1);
}

async fn target_self_pins_only_yourself(b: Backend) {
    let Some(e) = setup(b, "production").await else {
        return;
    };
    let erin = e.s.token("erin").await;
    let body = |keys: Value| json!({"variant": "on", "keys": keys, "for": "1h"});
    let (st, _) =
        e.s.post(
            &erin,
            "/v1/environments/production/flags/new-search/targets",
            body(json!(["erin"])),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "no grant yet");
    e.grant("erin", "prod-self-target", "2h").await;
    let (st, _) =
        e.s.post(
            &erin,
            "/v1/environments/production/flags/new-search/targets",
            body(json!(["bob"])),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "target-self does not reach others"
    );
    let (st, t) =
        e.s.post(
            &erin,
            "/v1/environments/production/flags/new-search/targets",
            body(json!(["erin"])),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    assert_eq!(e.eval("new-search", "erin").await["value"], true);
    assert_eq!(e.eval("new-search", "bob").await["value"], false);
}

/// How many audit entries have `action`, once there are `want` (the background loop may be
/// the one recording them; its commit may land a moment after a racing call returned).
async fn eventually_count(s: &TestServer, action: &str, want: usize) -> usize {
    for _ in 0..100 {
        let n = s.audit_actions(action).await.len();
        if n >= want {
            return n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    s.audit_actions(action).await.len()
}

/// Which of `keys` get the rollout variant of `new-search`.
async fn share(e: &Env, keys: &[String]) -> Vec<bool> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(50) {
        let futs = chunk.iter().map(|k| e.eval("new-search", k));
        for v in futures_util::future::join_all(futs).await {
            out.push(v["value"] == true);
        }
    }
    out
}

async fn staged_rollouts_advance_stick_pause_and_survive_restarts(b: Backend) {
    let Some(e) = setup(b, "staging").await else {
        return;
    };
    let dave = e.s.token("dave").await;
    let steps = json!({"variant": "on", "steps": [{"percent": 10, "hold": "30m"}, {"percent": 50, "hold": "30m"}, {"percent": 100, "hold": "30m"}]});
    let (st, r) =
        e.s.send(
            reqwest::Method::PUT,
            &dave,
            "/v1/environments/staging/flags/new-search/rollout",
            Some(steps),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(
        (r["current_step"].as_u64(), r["current_percent"].as_f64()),
        (Some(0), Some(10.0))
    );
    let keys: Vec<String> = (0..400).map(|i| format!("user-{i}")).collect();
    let at10 = share(&e, &keys).await;
    let n10 = at10.iter().filter(|x| **x).count();
    assert!((20..=60).contains(&n10), "about 10% of 400: {n10}");
    e.s.advance(TimeDelta::minutes(30));
    let at50 = share(&e, &keys).await;
    let n50 = at50.iter().filter(|x| **x).count();
    assert!((160..=240).contains(&n50), "about 50% of 400: {n50}");
    assert!(
        at10.iter().zip(&at50).all(|(a, b)| !a || *b),
        "sticky: everyone in at 10% is in at 50%"
    );
    // Recorded by the background loop or by this call, whichever comes first; once.
    e.s.app.tick_layers().await.expect("tick");
    assert_eq!(
        eventually_count(&e.s, "rollout.advanced", 1).await,
        1,
        "step 1 recorded"
    );
    assert_eq!(e.s.app.tick_layers().await.expect("tick"), 0, "once");
    // Pause holds the step however long it lasts.
    let (st, p) =
        e.s.post(
            &dave,
            "/v1/environments/staging/flags/new-search/rollout/pause",
            json!({}),
        )
        .await;
    assert_eq!(
        (st, p["state"].as_str()),
        (StatusCode::OK, Some("paused")),
        "{p}"
    );
    e.s.advance(TimeDelta::hours(5));
    let (_, st_) =
        e.s.get(&dave, "/v1/environments/staging/flags/new-search/rollout")
            .await;
    assert_eq!(
        (
            st_["current_step"].as_u64(),
            st_["next_change_at"].is_null()
        ),
        (Some(1), true),
        "{st_}"
    );
    let (st, p) =
        e.s.post(
            &dave,
            "/v1/environments/staging/flags/new-search/rollout/resume",
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    let next: DateTime<Utc> = p["next_change_at"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("next change");
    assert_eq!(
        next - e.s.clock_now(),
        TimeDelta::minutes(30),
        "the paused time shifts the schedule"
    );
    // Across a restart the rollout continues at the right step (reaching 100% completes it:
    // see timing.rs).
    e.s.clock.set(next - TimeDelta::milliseconds(1));
    let s = e.s.restart().await;
    let e = Env {
        s,
        client: e.client,
    };
    assert_eq!(share(&e, &keys).await, at50, "the same users, still at 50%");
    // Rollback: nobody gets the rollout variant.
    let (st, _) =
        e.s.post(
            &dave,
            "/v1/environments/staging/flags/new-search/rollout/rollback",
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(share(&e, &keys[..50]).await.iter().all(|x| !*x));
    assert_eq!(e.s.audit_actions("rollout.paused").await.len(), 1);
    assert_eq!(e.s.audit_actions("rollout.rolled-back").await.len(), 1);
}

async fn scheduled_changes_apply_once_even_across_a_restart(b: Backend) {
    let Some(e) = setup(b, "staging").await else {
        return;
    };
    let dave = e.s.token("dave").await;
    let at = e.s.clock_now() + TimeDelta::hours(1);
    let (st, sch) =
        e.s.post(
            &dave,
            "/v1/environments/staging/flags/checkout-v2/changes",
            json!({"change": {"op": "set-state", "enabled": false}, "base_revision": 1, "at": at}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{sch}");
    assert_eq!(
        e.s.app.apply_due_changes().await.expect("apply"),
        0,
        "not yet"
    );
    assert_eq!(e.eval("checkout-v2", "u").await["value"], true);
    e.s.clock.set(at);
    let s = e.s.restart().await;
    let e = Env {
        s,
        client: e.client,
    };
    // The background loop applies it on its first pass after the start; these calls race it.
    let (one, two) = tokio::join!(e.s.app.apply_due_changes(), e.s.app.apply_due_changes());
    assert!(
        one.expect("apply") + two.expect("apply") <= 1,
        "applied at most once here"
    );
    assert_eq!(
        eventually_count(&e.s, "flag.changed", 1).await,
        1,
        "applied exactly once"
    );
    // Whoever applied it swaps the snapshot a moment after the commit the audit shows.
    let mut reason = Value::Null;
    for _ in 0..100 {
        reason = e.eval("checkout-v2", "u").await["reason"].clone();
        if reason == "DISABLED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(reason, "DISABLED");
    let changed = e.s.audit_actions("flag.changed").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(
        (
            changed[0]["actor"].as_str(),
            changed[0]["details"]["on_behalf_of"].as_str()
        ),
        (Some("system:scheduler"), Some("dave"))
    );
    let (_, list) = e.s.get(&dave, "/v1/scheduled").await;
    assert_eq!(list[0]["status"], "applied");
}

async fn scheduled_changes_are_refused_when_the_grant_is_gone(b: Backend) {
    let Some(e) = setup(b, "production").await else {
        return;
    };
    let dave = e.s.token("dave").await;
    let exp = e.grant("dave", "flags-prod-operator", "30m").await;
    let at = e.s.clock_now() + TimeDelta::hours(1);
    let (st, _) =
        e.s.post(
            &dave,
            "/v1/environments/production/flags/checkout-v2/changes",
            json!({"change": {"op": "set-state", "enabled": false}, "base_revision": 1, "at": at}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    assert!(exp < at);
    e.s.clock.set(at);
    assert_eq!(e.s.app.apply_due_changes().await.expect("apply"), 0);
    assert_eq!(eventually_count(&e.s, "flag.schedule-refused", 1).await, 1);
    assert_eq!(
        e.eval("checkout-v2", "u").await["value"],
        true,
        "not applied"
    );
    let (_, list) = e.s.get(&dave, "/v1/scheduled").await;
    assert_eq!(list[0]["status"], "refused");
}

backend_tests!(
    protected_changes_need_a_live_grant,
    concurrent_changes_on_one_revision_one_wins,
    expiring_targets_expire_exactly,
    target_self_pins_only_yourself,
    staged_rollouts_advance_stick_pause_and_survive_restarts,
    scheduled_changes_apply_once_even_across_a_restart,
    scheduled_changes_are_refused_when_the_grant_is_gone,
);
