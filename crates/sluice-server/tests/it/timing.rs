//! Work that waits for the clock happens at its time: scheduled changes, approved proposals
//! with an apply time, proposal time-outs and rollout completion run within a second of the
//! moment they are due — run by the production background loop, with no unrelated timer to
//! wake it — exactly once, across restarts and instances. Some tests run on the real clock,
//! because how the loop sleeps is what they check.

use crate::backend_tests;
use crate::harness::{Backend, Db, TestServer, ADMIN_TOKEN};
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const POLICY: &str = r#"
users: [alice, bob, dave]
groups:
  engineers: [alice, dave]
  leads: [bob]
environments:
  production:
    protected: true
    approval: { required: 1, approvers: [group:leads] }
    change_request_ttl: 2s
  staging: {}
permissions:
  - to: [group:engineers]
    resource: "flag:staging/**"
    actions: ["*"]
"#;

/// Everything within a second of its time.
const ON_TIME: TimeDelta = TimeDelta::milliseconds(1000);

/// `new-search` has targeting that sends carol to `off` whatever the default: a completed
/// rollout must not let it take her back.
fn flags() -> Value {
    json!({"flags": {
        "checkout-v2": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
        "new-search": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
            "targeting": {"if": [{"==": [{"var": "targetingKey"}, "carol"]}, "off", null]}}
    }})
}

struct Env {
    s: TestServer,
    /// OFREP client keys by environment.
    staging: String,
    production: String,
}

async fn load(s: &TestServer) -> (String, String) {
    let mut keys = Vec::new();
    for env in ["staging", "production"] {
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
                json!({"name": format!("app-{env}"), "kind": "client", "environment": env}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        keys.push(v["token"].as_str().expect("client key").to_owned());
    }
    s.apply(POLICY).await;
    (keys.remove(0), keys.remove(0))
}

async fn setup(b: Backend, real_clock: bool) -> Option<Env> {
    let db = Db::new(b).await?;
    let s = if real_clock {
        TestServer::start_with_clock_system(db).await
    } else {
        TestServer::start(db).await
    };
    let (staging, production) = load(&s).await;
    Some(Env {
        s,
        staging,
        production,
    })
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

/// A stream of `refetchEvaluation` events for one environment.
struct Events(reqwest::Response);

impl Events {
    async fn open(s: &TestServer, client: &str) -> Events {
        let resp = s
            .http
            .get(s.url("/ofrep/v1/events"))
            .header("x-api-key", client)
            .send()
            .await
            .expect("sse");
        assert_eq!(resp.status(), StatusCode::OK);
        Events(resp)
    }

    /// Waits for the next event (the explicit signal that the flags changed).
    async fn next(&mut self, within: Duration) {
        loop {
            let chunk = tokio::time::timeout(within, self.0.chunk())
                .await
                .expect("a flag event in time")
                .expect("stream")
                .expect("data");
            if String::from_utf8_lossy(&chunk).contains("refetchEvaluation") {
                return;
            }
        }
    }
}

impl Env {
    async fn eval(&self, client: &str, key: &str, user: Option<&str>) -> Value {
        let ctx = match user {
            Some(u) => json!({"targetingKey": u}),
            None => json!({}),
        };
        let resp = self
            .s
            .http
            .post(self.s.url(&format!("/ofrep/v1/evaluate/flags/{key}")))
            .header("x-api-key", client)
            .json(&json!({ "context": ctx }))
            .send()
            .await
            .expect("send");
        resp.json().await.expect("json")
    }

    async fn flag(&self, env: &str, key: &str) -> Value {
        let (st, v) = self
            .s
            .get(ADMIN_TOKEN, &format!("/v1/environments/{env}/flags/{key}"))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v
    }

    async fn rollout(&self) -> Value {
        let (st, v) = self
            .s
            .get(
                ADMIN_TOKEN,
                "/v1/environments/staging/flags/new-search/rollout",
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v
    }

    /// Schedules `set-default on` for `new-search` in staging at `at`, as dave.
    async fn schedule(&self, dave: &str, at: DateTime<Utc>) -> String {
        let (st, v) = self
            .s
            .post(
                dave,
                "/v1/environments/staging/flags/new-search/changes",
                json!({"change": {"op": "set-default", "variant": "on"}, "base_revision": 1, "at": at}),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{v}");
        v["id"].as_str().expect("id").to_owned()
    }

    async fn start_rollout(&self, steps: Value) -> Value {
        let (st, v) = self
            .s
            .send(
                reqwest::Method::PUT,
                ADMIN_TOKEN,
                "/v1/environments/staging/flags/new-search/rollout",
                Some(json!({"variant": "on", "steps": steps})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v
    }
}

/// The audit entries with `action`, once there are `n` of them (the background loop records
/// them; a short wait for its commit to be visible), and never more.
async fn recorded(s: &TestServer, action: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = s.audit_actions(action).await;
        assert!(
            got.len() <= n,
            "{action} recorded more than {n} times: {got:?}"
        );
        if got.len() == n || tokio::time::Instant::now() > deadline {
            assert_eq!(got.len(), n, "{action}: {got:?}");
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- real clock ----------------------------------------------------------------------------

/// The reported bug: a change scheduled for +2s, with nothing else on any timer, applies
/// within a second of its time — not when some unrelated target happens to expire.
async fn a_scheduled_change_applies_on_time_on_the_real_clock(b: Backend) {
    let Some(e) = setup(b, true).await else {
        return;
    };
    let dave = e.s.token("dave").await;
    let mut events = Events::open(&e.s, &e.staging).await;
    let at = e.s.clock_now() + TimeDelta::seconds(2);
    let id = e.schedule(&dave, at).await;
    events.next(Duration::from_secs(5)).await;
    let applied_by = e.s.clock_now();
    let changed = recorded(&e.s, "flag.changed", 1).await;
    let applied_at = time(&changed[0]["at"]);
    assert!(
        applied_at >= at && applied_at - at < ON_TIME,
        "due at {at}, applied at {applied_at}"
    );
    assert!(applied_by - at < ON_TIME + TimeDelta::milliseconds(500));
    assert_eq!(
        e.eval(&e.staging, "new-search", Some("u1")).await["value"],
        true
    );
    let (_, list) = e.s.get(&dave, "/v1/scheduled").await;
    assert_eq!(
        (list[0]["id"].as_str(), list[0]["status"].as_str()),
        (Some(id.as_str()), Some("applied"))
    );
}

/// With two instances, a change scheduled on one applies on time even when that one is gone
/// before its time: the other learns of it when it syncs. Exactly once.
async fn another_instances_schedule_applies_on_time(b: Backend) {
    if b == Backend::Sqlite {
        return; // Several instances share PostgreSQL.
    }
    let Some(e) = setup(b, true).await else {
        return;
    };
    let second = Db {
        url: e.s.db.url.clone(),
        key: e.s.db.key.clone(),
        _dir: tempfile::tempdir().expect("tempdir"),
    };
    let other = TestServer::start_with_clock_system(second).await;
    let dave = e.s.token("dave").await;
    let mut events = Events::open(&other, &e.staging).await;
    let at = e.s.clock_now() + TimeDelta::seconds(2);
    e.schedule(&dave, at).await;
    let mut first = e.s;
    first.stop().await;
    events.next(Duration::from_secs(5)).await;
    let changed = recorded(&other, "flag.changed", 1).await;
    let applied_at = time(&changed[0]["at"]);
    assert!(
        applied_at >= at && applied_at - at < ON_TIME,
        "due at {at}, applied at {applied_at} by the other instance"
    );
}

/// An approved proposal with a near apply time applies then; a proposal nobody approves
/// writes its time-out entry when its time is up (`change_request_ttl: 2s`).
async fn proposals_apply_and_time_out_on_time_on_the_real_clock(b: Backend) {
    let Some(e) = setup(b, true).await else {
        return;
    };
    let (alice, bob) = (e.s.token("alice").await, e.s.token("bob").await);
    let mut events = Events::open(&e.s, &e.production).await;
    let propose = |apply_at: Option<DateTime<Utc>>, key: &'static str| {
        let alice = alice.clone();
        let s = &e.s;
        async move {
            let (st, v) = s
                .post(
                    &alice,
                    &format!("/v1/environments/production/flags/{key}/proposals"),
                    json!({"change": {"op": "set-state", "enabled": false}, "base_revision": 1, "apply_at": apply_at, "reason": "CHG-9"}),
                )
                .await;
            assert_eq!(st, StatusCode::CREATED, "{v}");
            v
        }
    };
    let at = e.s.clock_now() + TimeDelta::milliseconds(1500);
    let scheduled = propose(Some(at), "checkout-v2").await;
    let lapsing = propose(None, "new-search").await;
    let id = scheduled["id"].as_str().expect("id");
    let (st, v) =
        e.s.post(
            &bob,
            &format!("/v1/proposals/{id}/approve"),
            json!({"comment": "ok"}),
        )
        .await;
    assert_eq!(
        (st, v["status"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{v}"
    );
    events.next(Duration::from_secs(5)).await;
    let changed = recorded(&e.s, "flag.changed", 1).await;
    let applied_at = time(&changed[0]["at"]);
    assert!(
        applied_at >= at && applied_at - at < ON_TIME,
        "due at {at}, applied at {applied_at}"
    );
    assert_eq!(
        e.eval(&e.production, "checkout-v2", Some("u1")).await["reason"],
        "DISABLED"
    );
    let timed_out = recorded(&e.s, "flag.change-timed-out", 1).await;
    let until = time(&lapsing["pending_until"]);
    let recorded_at = time(&timed_out[0]["at"]);
    assert_eq!(timed_out[0]["subject_id"], lapsing["id"]);
    assert!(
        recorded_at >= until && recorded_at - until < ON_TIME,
        "timed out at {until}, recorded at {recorded_at}"
    );
}

/// A rollout with a one-second step completes within a second of reaching 100%.
async fn a_rollout_completes_on_time_on_the_real_clock(b: Backend) {
    let Some(e) = setup(b, true).await else {
        return;
    };
    let mut events = Events::open(&e.s, &e.staging).await;
    let started = e.s.clock_now();
    e.start_rollout(json!([{"percent": 50, "hold": "1s"}, {"percent": 100, "hold": "1s"}]))
        .await;
    events.next(Duration::from_secs(5)).await; // the start
    let completed = recorded(&e.s, "rollout.completed", 1).await;
    let started_at = time(&recorded(&e.s, "rollout.started", 1).await[0]["at"]);
    assert!(started_at >= started);
    let full_at = started_at + TimeDelta::seconds(1);
    let done_at = time(&completed[0]["at"]);
    assert!(
        done_at >= full_at && done_at - full_at < ON_TIME,
        "100% at {full_at}, completed at {done_at}"
    );
    assert_eq!(e.rollout().await["state"], "completed");
}

// ---- injected clock ------------------------------------------------------------------------

/// On an injected clock the loop still does the work itself — no test calls it — once the
/// clock reaches the time, exactly once, and catches up after a restart.
async fn due_work_runs_by_itself_and_once_on_an_injected_clock(b: Backend) {
    let Some(e) = setup(b, false).await else {
        return;
    };
    let dave = e.s.token("dave").await;
    let mut events = Events::open(&e.s, &e.staging).await;
    let at = e.s.clock_now() + TimeDelta::hours(1);
    e.schedule(&dave, at).await;
    e.s.clock.set(at - TimeDelta::milliseconds(1));
    // Not before its time: another change is the next event, not this one.
    let (st, v) =
        e.s.post(
            &dave,
            "/v1/environments/staging/flags/checkout-v2/changes",
            json!({"change": {"op": "set-state", "enabled": false}, "base_revision": 1}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    events.next(Duration::from_secs(5)).await;
    assert_eq!(
        e.flag("staging", "new-search").await["revision"],
        1,
        "not yet"
    );
    e.s.clock.set(at);
    events.next(Duration::from_secs(5)).await;
    assert_eq!(
        e.flag("staging", "new-search").await["definition"]["defaultVariant"],
        "on"
    );
    recorded(&e.s, "flag.changed", 2).await;
    // One more, due while no server runs: the first pass after the restart applies it.
    let later = at + TimeDelta::hours(1);
    let (st, v) =
        e.s.post(
            &dave,
            "/v1/environments/staging/flags/checkout-v2/changes",
            json!({"change": {"op": "set-state", "enabled": true}, "base_revision": 2, "at": later}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    drop(events); // A graceful stop waits for open streams.
    let mut old = e.s;
    old.stop().await;
    old.clock.set(later);
    let db = Db {
        url: old.db.url.clone(),
        key: old.db.key.clone(),
        _dir: tempfile::tempdir().expect("tempdir"),
    };
    let s = TestServer::start_with_clock(db, old.clock.clone()).await;
    let e = Env { s, ..e };
    recorded(&e.s, "flag.changed", 3).await;
    // The snapshot is swapped a moment after the commit that the audit entry shows.
    let mut value = Value::Null;
    for _ in 0..100 {
        value = e.eval(&e.staging, "checkout-v2", Some("u1")).await["value"].clone();
        if value == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(value, true, "applied after the restart");
    let (_, list) = e.s.get(&dave, "/v1/scheduled").await;
    assert!(
        list.as_array()
            .expect("list")
            .iter()
            .all(|c| c["status"] == "applied"),
        "{list}"
    );
}

/// Reaching 100% completes the rollout: the flag's definition serves the variant (its default,
/// the targeting that the layer overrode removed), the layer goes, status says `completed`,
/// and no evaluation — with a targeting key or without — changes at any moment around it.
async fn a_rollout_completes_at_100_percent_without_changing_any_answer(b: Backend) {
    let Some(e) = setup(b, false).await else {
        return;
    };
    let mut events = Events::open(&e.s, &e.staging).await;
    let v = e
        .start_rollout(json!([{"percent": 10, "hold": "1h"}, {"percent": 100, "hold": "1h"}]))
        .await;
    assert_eq!(v["state"], "running");
    events.next(Duration::from_secs(5)).await;
    let users: Vec<Option<String>> = (0..40)
        .map(|i| Some(format!("user-{i}")))
        .chain([Some("carol".to_owned()), None])
        .collect();
    assert_eq!(
        e.eval(&e.staging, "new-search", Some("carol")).await["value"],
        false
    );
    assert_eq!(e.eval(&e.staging, "new-search", None).await["value"], false);
    // The clock reaches 100%; evaluate everyone over and over while the loop completes it.
    let full = e.s.clock_now() + TimeDelta::hours(1);
    e.s.clock.set(full);
    let done = Arc::new(AtomicBool::new(false));
    let e = Arc::new(e);
    let watcher = {
        let (e, done, users) = (e.clone(), done.clone(), users.clone());
        tokio::spawn(async move {
            let mut rounds = 0;
            while !done.load(Ordering::Acquire) || rounds < 2 {
                if done.load(Ordering::Acquire) {
                    rounds += 1;
                }
                for u in &users {
                    let v = e.eval(&e.staging, "new-search", u.as_deref()).await;
                    assert_eq!(v["variant"], "on", "{u:?} got {v} around the completion");
                }
            }
        })
    };
    events.next(Duration::from_secs(5)).await;
    let completed = recorded(&e.s, "rollout.completed", 1).await;
    done.store(true, Ordering::Release);
    watcher.await.expect("every answer was `on` throughout");
    assert_eq!(
        time(&completed[0]["at"]),
        full,
        "at the moment 100% was reached"
    );
    let status = e.rollout().await;
    assert_eq!(
        (status["state"].as_str(), status["current_percent"].as_f64()),
        (Some("completed"), Some(100.0)),
        "{status}"
    );
    let flag = e.flag("staging", "new-search").await;
    assert_eq!(flag["revision"], 2);
    assert_eq!(status["completed_revision"], 2);
    assert_eq!(flag["definition"]["defaultVariant"], "on");
    assert!(flag["definition"].get("targeting").is_none(), "{flag}");
    let changed = recorded(&e.s, "flag.changed", 1).await;
    assert_eq!(changed[0]["details"]["authority"]["by"], "rollout");
    assert_eq!(
        completed[0]["details"]["definition"]["previous_default"],
        "off"
    );
    assert!(completed[0]["details"]["definition"]["removed_targeting"].is_object());
    recorded(&e.s, "rollout.advanced", 1).await;
    assert_eq!(e.s.app.tick_layers().await.expect("tick"), 0, "once");
    // The definition answers now, and the layer is gone: the reason is the flag's own.
    let v = e.eval(&e.staging, "new-search", Some("carol")).await;
    assert_eq!(
        (v["variant"].as_str(), v["reason"].as_str()),
        (Some("on"), Some("STATIC")),
        "{v}"
    );
    let (st, err) =
        e.s.post(
            ADMIN_TOKEN,
            "/v1/environments/staging/flags/new-search/rollout/rollback",
            json!({}),
        )
        .await;
    assert_eq!(
        (st, err["code"].as_str()),
        (StatusCode::CONFLICT, Some("wrong_state")),
        "{err}"
    );
    // Across a restart it stays completed, and nothing is recorded twice.
    let e = Arc::into_inner(e).expect("the watcher is done");
    drop(events); // A graceful stop waits for open streams.
    let s = e.s.restart().await;
    let e = Env { s, ..e };
    assert_eq!(e.rollout().await["state"], "completed");
    assert_eq!(
        e.eval(&e.staging, "new-search", None).await["variant"],
        "on"
    );
    assert_eq!(e.s.app.tick_layers().await.expect("tick"), 0);
    recorded(&e.s, "rollout.completed", 1).await;
}

backend_tests!(
    a_scheduled_change_applies_on_time_on_the_real_clock,
    another_instances_schedule_applies_on_time,
    proposals_apply_and_time_out_on_time_on_the_real_clock,
    a_rollout_completes_on_time_on_the_real_clock,
    due_work_runs_by_itself_and_once_on_an_injected_clock,
    a_rollout_completes_at_100_percent_without_changing_any_answer,
);
