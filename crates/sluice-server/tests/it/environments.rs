//! Environments are declared, not conjured by a typo; expiring targets are listed and never
//! outlive the grant that allowed them.

use crate::backend_tests;
use crate::harness::{Backend, Db, TestServer, ADMIN_TOKEN};
use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const POLICY: &str = r#"
users: [bob, dave]
groups:
  engineers: [dave]
  leads: [bob]
environments:
  production: { protected: true }
  staging: {}
permissions:
  - to: [group:engineers]
    resource: "flag:staging/**"
    actions: ["*"]
entitlements:
  - name: flags-prod-release
    scopes:
      - resource: "flag:production/**"
        actions: [toggle, target, edit-rollout]
    requesters: [group:engineers]
    max_duration: 8h
    approval: { required: 1, approvers: [group:leads] }
"#;

fn flags() -> Value {
    json!({"flags": {
        "new-search": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}
    }})
}

async fn import(s: &TestServer, env: &str, query: &str) -> (StatusCode, Value) {
    s.send(
        Method::PUT,
        ADMIN_TOKEN,
        &format!("/v1/environments/{env}/flags{query}"),
        Some(flags()),
    )
    .await
}

fn unknown(st: StatusCode, v: &Value) {
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_environment")),
        "{v}"
    );
}

async fn an_undeclared_environment_is_refused_everywhere(b: Backend) {
    let Some(db) = Db::new(b).await else { return };
    let s = TestServer::start(db).await;

    // A fresh install knows no environment: even the administrator's first import must say
    // it means to create one.
    let (st, v) = import(&s, "production", "").await;
    unknown(st, &v);
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("there are none yet"),
        "{v}"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("--create-env"),
        "{v}"
    );
    let (st, v) = import(&s, "production", "?create_env=true").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    s.apply(POLICY).await;
    let created = s.audit_actions("environment.created").await;
    assert_eq!(created.len(), 1, "{created:?}");

    // The typo from the field: refused, naming the environments there are.
    let (st, v) = import(&s, "prodution", "").await;
    unknown(st, &v);
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(msg.contains("no environment `prodution`"), "{msg}");
    assert!(msg.contains("`production`, `staging`"), "{msg}");
    // … and the same wherever a flag write names an environment.
    let put = json!({"change": {"op": "put", "definition": flags()["flags"]["new-search"]}});
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/environments/prodution/flags/x/changes",
            put.clone(),
        )
        .await;
    unknown(st, &v);
    let at = (s.clock_now() + TimeDelta::hours(1)).to_rfc3339();
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/environments/prodution/flags/new-search/changes",
            json!({"change": {"op": "set-state", "enabled": false}, "base_revision": 1, "at": at}),
        )
        .await;
    unknown(st, &v);
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/environments/prodution/flags/new-search/targets",
            json!({"variant": "on", "keys": ["admin"], "for": "1h"}),
        )
        .await;
    unknown(st, &v);
    let (st, v) = s
        .send(
            Method::PUT,
            ADMIN_TOKEN,
            "/v1/environments/prodution/flags/new-search/rollout",
            Some(json!({"variant": "on", "steps": [{"percent": 100, "hold": "1h"}]})),
        )
        .await;
    unknown(st, &v);
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"name": "web", "kind": "client", "environment": "prodution"}),
        )
        .await;
    unknown(st, &v);
    let (_, envs) = s.get(ADMIN_TOKEN, "/v1/environments").await;
    let names: Vec<&str> = envs
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["production", "staging"]);
    assert_eq!(s.audit_actions("flags.imported").await.len(), 1);

    // Declared in the policy is enough, without flags yet.
    let (st, v) = import(&s, "staging", "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // Only administrators create environments.
    let dave = s.token("dave").await;
    let (st, v) = s
        .send(
            Method::PUT,
            &dave,
            "/v1/environments/dev/flags?create_env=true",
            Some(flags()),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    // An administrator creates one deliberately, with an import or a put; audited once.
    let (st, v) = import(&s, "dev", "?create_env=true").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = import(&s, "dev", "?create_env=true").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let mut put = put;
    put["create_env"] = json!(true);
    let (st, v) = s
        .post(ADMIN_TOKEN, "/v1/environments/qa/flags/x/changes", put)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let created: Vec<String> = s
        .audit_actions("environment.created")
        .await
        .iter()
        .map(|e| {
            e["details"]["environment"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(created, ["production", "dev", "qa"]);
    // Now it exists: no flag needed any more.
    let (st, v) = import(&s, "dev", "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

/// Dave's approved grant of `flags-prod-release` for `duration`.
async fn grant(s: &TestServer, dave: &str, duration: &str) -> String {
    let (st, r) = s
        .request(dave, "flags-prod-release", duration, "INC-1")
        .await;
    assert_eq!(st, StatusCode::CREATED, "{r}");
    let id = r["id"].as_str().expect("id").to_owned();
    let bob = s.token("bob").await;
    let (st, r) = s
        .post(&bob, &format!("/v1/requests/{id}/approve"), json!({}))
        .await;
    assert_eq!(
        (st, r["status"].as_str()),
        (StatusCode::OK, Some("active")),
        "{r}"
    );
    id
}

async fn target(
    s: &TestServer,
    token: &str,
    env: &str,
    keys: &[&str],
    d: &str,
) -> (StatusCode, Value) {
    s.post(
        token,
        &format!("/v1/environments/{env}/flags/new-search/targets"),
        json!({"variant": "on", "keys": keys, "for": d}),
    )
    .await
}

async fn targets_are_listed_and_never_outlive_their_grant(b: Backend) {
    let Some(db) = Db::new(b).await else { return };
    let s = TestServer::start(db).await;
    for env in ["production", "staging"] {
        let (st, v) = import(&s, env, "?create_env=true").await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    s.apply(POLICY).await;
    let dave = s.token("dave").await;
    let id = grant(&s, &dave, "2h").await;

    // Five hours under a two-hour grant: refused, saying when the grant ends and the most.
    let (st, v) = target(&s, &dave, "production", &["alice", "bob"], "5h").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("target_outlives_grant")),
        "{v}"
    );
    let msg = v["message"].as_str().unwrap_or_default();
    let ends =
        (s.clock_now() + TimeDelta::hours(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(msg.contains(&format!("grant {id} ends at {ends}")), "{msg}");
    assert!(msg.contains("at most 2h"), "{msg}");
    let (st, listed) = s
        .get(
            &dave,
            "/v1/environments/production/flags/new-search/targets",
        )
        .await;
    assert_eq!((st, listed), (StatusCode::OK, json!([])));

    // Within the grant: accepted.
    let (st, t) = target(&s, &dave, "production", &["alice", "bob"], "2h").await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    // Half an hour on, the grant has an hour and a half left.
    s.advance(TimeDelta::minutes(30));
    let (st, v) = target(&s, &dave, "production", &["carol"], "2h").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("at most 1h30m (--for 1h30m)"),
        "{v}"
    );
    let (st, t2) = target(&s, &dave, "production", &["carol"], "1h").await;
    assert_eq!(st, StatusCode::CREATED, "{t2}");

    // Listed soonest first; shown with the flag too.
    let (st, listed) = s
        .get(
            &dave,
            "/v1/environments/production/flags/new-search/targets",
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{listed}");
    let ids: Vec<&str> = listed
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            t2["id"].as_str().expect("id"),
            t["id"].as_str().expect("id")
        ]
    );
    assert_eq!(listed[1]["keys"], json!(["alice", "bob"]));
    assert_eq!(listed[1]["created_by"], "dave");
    let (_, flag) = s
        .get(&dave, "/v1/environments/production/flags/new-search")
        .await;
    assert_eq!(flag["targets"], listed);

    // A standing permission in an unprotected environment has no end: not capped.
    let (st, v) = target(&s, &dave, "staging", &["alice"], "5h").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");

    // Expired targets are not listed.
    s.advance(TimeDelta::minutes(61));
    let (_, listed) = s
        .get(
            &dave,
            "/v1/environments/production/flags/new-search/targets",
        )
        .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let (st, v) = s
        .get(&dave, "/v1/environments/production/flags/nope/targets")
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
}

backend_tests!(
    an_undeclared_environment_is_refused_everywhere,
    targets_are_listed_and_never_outlive_their_grant,
);
