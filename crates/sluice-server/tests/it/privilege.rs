//! Least privilege for readers: every GET route of `/openapi.json`, asked by a principal with
//! no role, an approver, an auditor and an administrator. Own requests for everyone, what one
//! may approve for approvers, everything for auditors and administrators; AuthZEN questions
//! about someone else only for administrators and `deciders`.

use crate::backend_tests;
use crate::harness::{Backend, Db, TestServer, ADMIN_TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const POLICY: &str = r#"
users: [alice, bob, carol, dave, erin, audra, pep]
groups:
  oncall: [alice]
  engineers: [alice, dave, erin]
  leads: [bob, carol]
  auditors: [audra]
  deciders: [pep]
environments:
  production:
    protected: true
    approval: { required: 1, approvers: [group:leads] }
  staging: {}
entitlements:
  - name: flags-prod-operator
    scopes:
      - resource: "flag:production/**"
        actions: [toggle]
    requesters: [group:engineers]
    max_duration: 1h
    approval: { required: 1, approvers: [group:leads] }
    auto_approve: { requester_in: [group:oncall], max_duration: 30m }
  - name: orders-db-read
    scopes:
      - resource: "db:orders"
        actions: [read]
    requesters: [group:engineers]
    max_duration: 2h
    approval: { required: 1, approvers: [bob] }
  - name: staging-debug
    scopes:
      - resource: "flag:staging/**"
        actions: [toggle]
    requesters: [group:engineers]
    max_duration: 2h
    approval: { required: 1, approvers: [carol] }
  - name: payroll-read
    scopes:
      - resource: "db:payroll"
        actions: [read]
    requesters: [carol]
    max_duration: 1h
    approval: { required: 1, approvers: [bob] }
"#;

/// The four readers of the table, in its column order.
const ROLES: [&str; 4] = ["low", "approver", "auditor", "admin"];

struct World {
    s: TestServer,
    /// Tokens by role: dave (no role), bob (approves orders-db-read, flags-prod-operator,
    /// payroll-read and production's changes), audra (auditors), the administrator.
    tokens: BTreeMap<&'static str, String>,
    erin: String,
    pep: String,
    /// erin's pending orders-db-read request (bob approves it).
    erin_orders: String,
    /// erin's pending staging-debug request (only carol approves it).
    erin_debug: String,
    /// dave's own pending request.
    dave_own: String,
    /// alice's live grant (auto-approved flags-prod-operator).
    alice_grant: String,
    /// erin's proposal in production (leads approve it).
    proposal: String,
    /// erin's gateway session.
    session: String,
}

fn flags() -> Value {
    json!({"flags": {
        "new-search": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}
    }})
}

async fn id_of(s: &TestServer, token: &str, entitlement: &str, duration: &str) -> String {
    let (st, v) = s.request(token, entitlement, duration, "INC-1 look").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["id"].as_str().expect("id").to_owned()
}

async fn world(b: Backend) -> Option<World> {
    let db = Db::new(b).await?;
    let s = TestServer::start(db).await;
    // Flags first: production is protected once the policy says so.
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
    }
    s.apply(POLICY).await;
    let (st, v) = s
        .send(
            reqwest::Method::PUT,
            ADMIN_TOKEN,
            "/v1/environments/staging/flags/new-search/rollout",
            Some(json!({"variant": "on", "steps": [{"percent": 10, "hold": "1h"}, {"percent": 100, "hold": "1h"}]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let mut tokens = BTreeMap::new();
    tokens.insert("low", s.token("dave").await);
    tokens.insert("approver", s.token("bob").await);
    tokens.insert("auditor", s.token("audra").await);
    tokens.insert("admin", ADMIN_TOKEN.to_owned());
    let erin = s.token("erin").await;
    let alice = s.token("alice").await;
    let pep = s.token("pep").await;
    let erin_orders = id_of(&s, &erin, "orders-db-read", "1h").await;
    let erin_debug = id_of(&s, &erin, "staging-debug", "1h").await;
    let dave_own = id_of(&s, &tokens["low"], "staging-debug", "1h").await;
    let alice_grant = id_of(&s, &alice, "flags-prod-operator", "30m").await;
    let (st, v) = s
        .post(
            &erin,
            "/v1/environments/production/flags/new-search/proposals",
            json!({"change": {"op": "set-state", "enabled": false}, "base_revision": 1, "reason": "CHG-1 turn it off"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let proposal = v["id"].as_str().expect("id").to_owned();
    let now = s.clock_now();
    let session = sluice_store::GatewaySession {
        id: "gws-privilege".into(),
        principal: "erin".into(),
        database: "orders".into(),
        action: "read".into(),
        role: "reader".into(),
        grant_id: erin_orders.clone(),
        client_addr: "127.0.0.1:5555".into(),
        started_at: now,
        expires_at: now + chrono::TimeDelta::hours(1),
        end: None,
        instance: None,
    };
    let mut tx = s.app.store.begin().await.expect("begin");
    tx.insert_gateway_session(&session).await.expect("insert");
    tx.audit(
        now,
        sluice_store::NewEntry::new("erin", "gateway.session.started")
            .resource("db:orders")
            .subject_id(&session.id),
    )
    .await
    .expect("audit");
    tx.commit().await.expect("commit");
    Some(World {
        s,
        tokens,
        erin,
        pep,
        erin_orders,
        erin_debug,
        dave_own,
        alice_grant,
        proposal,
        session: session.id,
    })
}

/// The expected status of each GET route for [`ROLES`], with the path's parameters filled in.
fn table(w: &World) -> Vec<(&'static str, String, [u16; 4])> {
    const ALL: [u16; 4] = [200, 200, 200, 200];
    const AUDIT: [u16; 4] = [403, 403, 200, 200];
    let flag = "/v1/environments/staging/flags/new-search";
    vec![
        // Lists everyone may call, filtered to what each may see (checked below).
        ("/v1/requests", "/v1/requests".into(), ALL),
        ("/v1/grants", "/v1/grants".into(), ALL),
        ("/v1/entitlements", "/v1/entitlements".into(), ALL),
        ("/v1/proposals", "/v1/proposals".into(), ALL),
        ("/v1/tokens", "/v1/tokens".into(), ALL),
        ("/v1/db/sessions", "/v1/db/sessions".into(), ALL),
        (
            "/v1/http/calls",
            "/v1/http/calls?service=billing".into(),
            ALL,
        ),
        ("/v1/http/sessions", "/v1/http/sessions".into(), ALL),
        ("/v1/whoami", "/v1/whoami".into(), ALL),
        // One thing by id: 404 to whoever may not see it, as if it did not exist.
        (
            "/v1/requests/{id}",
            format!("/v1/requests/{}", w.erin_orders),
            [404, 200, 200, 200],
        ),
        (
            "/v1/proposals/{id}",
            format!("/v1/proposals/{}", w.proposal),
            [404, 200, 200, 200],
        ),
        (
            "/v1/db/sessions/{id}",
            format!("/v1/db/sessions/{}", w.session),
            [404, 404, 200, 200],
        ),
        // Administrators and auditors only.
        ("/v1/policy", "/v1/policy".into(), AUDIT),
        ("/v1/audit", "/v1/audit".into(), AUDIT),
        ("/v1/audit/verify", "/v1/audit/verify".into(), AUDIT),
        ("/v1/audit/export", "/v1/audit/export".into(), AUDIT),
        ("/v1/audit/stream", "/v1/audit/stream".into(), AUDIT),
        ("/v1/db/databases", "/v1/db/databases".into(), AUDIT),
        ("/v1/http/services", "/v1/http/services".into(), AUDIT),
        // Administrators only: the notification outbox (no sinks here, so none exists).
        (
            "/v1/notifications",
            "/v1/notifications".into(),
            [403, 403, 403, 200],
        ),
        (
            "/v1/notifications/{id}",
            "/v1/notifications/msg-none".into(),
            [403, 403, 403, 404],
        ),
        // Flag configuration: readable with any API token (see README, "Who sees what").
        ("/v1/environments", "/v1/environments".into(), ALL),
        (
            "/v1/environments/{env}/flags",
            "/v1/environments/staging/flags".into(),
            ALL,
        ),
        ("/v1/environments/{env}/flags/{key}", flag.into(), ALL),
        (
            "/v1/environments/{env}/flags/{key}/targets",
            format!("{flag}/targets"),
            ALL,
        ),
        (
            "/v1/environments/{env}/flags/{key}/rollout",
            format!("{flag}/rollout"),
            ALL,
        ),
        ("/v1/scheduled", "/v1/scheduled".into(), ALL),
        // Flag insight: any API token; the client keys in it only for auditors (checked below).
        (
            "/v1/environments/{env}/evaluations",
            "/v1/environments/staging/evaluations".into(),
            ALL,
        ),
        (
            "/v1/environments/{env}/stale",
            "/v1/environments/staging/stale".into(),
            ALL,
        ),
        // Open to anyone, token or not.
        (
            "/.well-known/authzen-configuration",
            "/.well-known/authzen-configuration".into(),
            ALL,
        ),
        ("/healthz", "/healthz".into(), ALL),
        ("/readyz", "/readyz".into(), ALL),
        ("/metrics", "/metrics".into(), ALL),
        ("/openapi.json", "/openapi.json".into(), ALL),
        // OFREP takes client keys, never API tokens (unchanged).
        ("/ofrep/v1/events", "/ofrep/v1/events".into(), [403; 4]),
        // Edge routes take edge keys, never API tokens (an edge key on every other route:
        // `edge::an_edge_key_only_syncs_its_environments`).
        ("/v1/edge/snapshot", "/v1/edge/snapshot".into(), [403; 4]),
        ("/v1/edge/events", "/v1/edge/events".into(), [403; 4]),
    ]
}

/// Status and, unless it is a stream, the body.
async fn get(s: &TestServer, token: &str, path: &str) -> (u16, Value) {
    let resp = s
        .http
        .get(s.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    let status = resp.status().as_u16();
    let stream = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if stream {
        return (status, Value::Null);
    }
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn ids(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            r.get("id")
                .or_else(|| r.get("name"))
                .and_then(Value::as_str)
                .expect("id or name")
                .to_owned()
        })
        .collect()
}

async fn every_get_route_answers_each_reader_as_the_table_says(b: Backend) {
    let Some(w) = world(b).await else { return };
    let rows = table(&w);
    // The table covers exactly the GET routes the document declares.
    let doc: Value =
        w.s.http
            .get(w.s.url("/openapi.json"))
            .send()
            .await
            .expect("doc")
            .json()
            .await
            .expect("json");
    let declared: BTreeSet<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(_, item)| item.get("get").is_some())
        .map(|(p, _)| p.as_str())
        .collect();
    let tabled: BTreeSet<&str> = rows.iter().map(|r| r.0).collect();
    assert_eq!(
        declared, tabled,
        "every GET route needs a row in the privilege table"
    );
    let mut wrong = Vec::new();
    for (route, path, want) in &rows {
        for (role, want) in ROLES.iter().zip(want) {
            let (got, body) = get(&w.s, &w.tokens[role], path).await;
            if got != *want {
                wrong.push(format!("{route} as {role}: {got}, want {want}: {body}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

async fn lists_hold_own_items_and_what_one_approves(b: Backend) {
    let Some(w) = world(b).await else { return };
    let all_requests: BTreeSet<String> =
        [&w.erin_orders, &w.erin_debug, &w.dave_own, &w.alice_grant]
            .into_iter()
            .cloned()
            .collect();
    let set = |v: &[&String]| v.iter().map(|s| (*s).clone()).collect::<BTreeSet<_>>();
    let want = [
        ("low", set(&[&w.dave_own])),
        // bob approves orders-db-read and flags-prod-operator, not staging-debug.
        ("approver", set(&[&w.erin_orders, &w.alice_grant])),
        ("auditor", all_requests.clone()),
        ("admin", all_requests),
    ];
    for (role, want) in &want {
        let (st, v) = get(&w.s, &w.tokens[role], "/v1/requests").await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(&ids(&v), want, "requests as {role}");
        // A filter cannot widen what one sees.
        let (_, v) = get(&w.s, &w.tokens[role], "/v1/requests?requester=erin").await;
        let erin: BTreeSet<String> = want
            .iter()
            .filter(|id| **id == w.erin_orders || **id == w.erin_debug)
            .cloned()
            .collect();
        assert_eq!(ids(&v), erin, "erin's requests as {role}");
    }
    // Grants: alice's only for those who approve it, or read all.
    for (role, sees) in [
        ("low", false),
        ("approver", true),
        ("auditor", true),
        ("admin", true),
    ] {
        let (_, v) = get(&w.s, &w.tokens[role], "/v1/grants").await;
        assert_eq!(
            ids(&v).contains(&w.alice_grant),
            sees,
            "grants as {role}: {v}"
        );
    }
    // One request by id: carol's entitlement is not bob's.
    let (st, _) = get(
        &w.s,
        &w.tokens["approver"],
        &format!("/v1/requests/{}", w.erin_debug),
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = get(&w.s, &w.erin, &format!("/v1/requests/{}", w.erin_debug)).await;
    assert_eq!(st, 200, "one's own request");
    // Entitlements: what one may request or approve.
    let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    let everything = names(&[
        "flags-prod-operator",
        "orders-db-read",
        "staging-debug",
        "payroll-read",
    ]);
    for (role, want) in [
        (
            "low",
            names(&["flags-prod-operator", "orders-db-read", "staging-debug"]),
        ),
        (
            "approver",
            names(&["flags-prod-operator", "orders-db-read", "payroll-read"]),
        ),
        ("auditor", everything.clone()),
        ("admin", everything),
    ] {
        let (_, v) = get(&w.s, &w.tokens[role], "/v1/entitlements").await;
        assert_eq!(ids(&v), want, "entitlements as {role}");
    }
    // Proposals: the proposer's and the approvers' of the environment.
    for (role, sees) in [
        ("low", false),
        ("approver", true),
        ("auditor", true),
        ("admin", true),
    ] {
        let (_, v) = get(&w.s, &w.tokens[role], "/v1/proposals").await;
        assert_eq!(ids(&v).contains(&w.proposal), sees, "proposals as {role}");
    }
    let (_, v) = get(&w.s, &w.erin, "/v1/proposals").await;
    assert!(ids(&v).contains(&w.proposal), "one's own proposal");
    // Every token's metadata: administrators and auditors.
    for (role, want) in [
        ("low", 403),
        ("approver", 403),
        ("auditor", 200),
        ("admin", 200),
    ] {
        let (st, _) = get(&w.s, &w.tokens[role], "/v1/tokens?all=true").await;
        assert_eq!(st, want, "all tokens as {role}");
    }
}

async fn authzen_questions_about_others_need_a_decider(b: Backend) {
    let Some(w) = world(b).await else { return };
    let ask = |subject: &str| {
        json!({"subject": {"type": "user", "id": subject}, "action": {"name": "toggle"},
               "resource": {"type": "flag", "id": "production/new-search"}})
    };
    let cases = [
        (&w.tokens["low"], "dave", 200),
        (&w.tokens["low"], "alice", 403),
        (&w.tokens["approver"], "alice", 403),
        (&w.tokens["auditor"], "alice", 403),
        (&w.pep, "alice", 200),
        (&w.tokens["admin"], "alice", 200),
    ];
    for (token, subject, want) in cases {
        let (st, v) = w.s.post(token, "/access/v1/evaluation", ask(subject)).await;
        assert_eq!(st.as_u16(), want, "about {subject}: {v}");
        if want == 200 {
            assert_eq!(v["decision"], subject == "alice", "{v}");
        } else {
            assert_eq!(v["code"], "forbidden", "{v}");
        }
    }
    // A batch with one question about someone else is refused whole.
    let batch = json!({"evaluations": [ask("dave"), ask("alice")]});
    let (st, v) =
        w.s.post(&w.tokens["low"], "/access/v1/evaluations", batch.clone())
            .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, v) = w.s.post(&w.pep, "/access/v1/evaluations", batch).await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

backend_tests!(
    every_get_route_answers_each_reader_as_the_table_says,
    lists_hold_own_items_and_what_one_approves,
    authzen_questions_about_others_need_a_decider,
);
