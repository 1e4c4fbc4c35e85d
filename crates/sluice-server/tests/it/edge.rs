//! The edge against a real central server on either store: it answers OFREP as the central
//! server does (bodies, statuses, ETags), a change on the central server reaches its SSE
//! subscribers, expiring targets end on the edge's own clock with nothing pushed, its counts
//! land in the central tables, and an edge key does nothing but sync.

use crate::backend_tests;
use crate::harness::{t0, Backend, Db, TestServer, ADMIN_TOKEN};
use crate::ofrep::{client_key, document, import};
use chrono::TimeDelta;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sluice_core::token::SecretToken;
use sluice_core::ManualClock;
use sluice_server::edge::EdgeConfig;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// An edge running in this process (its own clock), on 127.0.0.1:0.
pub struct Edge {
    pub addr: SocketAddr,
    pub clock: ManualClock,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl Edge {
    pub async fn start(upstream: &str, key: &str, dir: &Path, clock: ManualClock) -> Edge {
        Self::start_with(upstream, key, dir, clock, Default::default()).await
    }

    /// Like [`Edge::start`], letting web pages on `cors_origins` call it.
    pub async fn start_with(
        upstream: &str,
        key: &str,
        dir: &Path,
        clock: ManualClock,
        cors_origins: sluice_server::cors::BrowserOrigins,
    ) -> Edge {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut config = EdgeConfig::new(
            upstream.to_owned(),
            SecretToken::from_presented(key),
            dir.to_owned(),
            addr,
        );
        config.report_interval = Duration::from_millis(200);
        config.cors_origins = cors_origins;
        let (tx, rx) = oneshot::channel::<()>();
        let c: Arc<dyn sluice_core::Clock> = Arc::new(clock.clone());
        let handle = tokio::spawn(async move {
            sluice_server::edge::run(config, c, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("edge runs");
        });
        Edge {
            addr,
            clock,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until the edge holds `env` at `revision` or later.
    pub async fn wait_for(&self, env: &str, revision: i64) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(self.url("/readyz")).send().await {
                if r.status() == StatusCode::OK {
                    let v: Value = r.json().await.expect("json");
                    if v["revisions"][env].as_i64().is_some_and(|r| r >= revision) {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "the edge did not reach {env}@{revision}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the edge (which reports its last counts on the way out).
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("edge stopped");
        }
    }
}

/// An edge key for `envs` (comma-separated).
pub async fn edge_key(s: &TestServer, envs: &str) -> String {
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"name": "edge", "kind": "edge", "environment": envs}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "edge key: {v}");
    v["token"].as_str().expect("token").to_owned()
}

/// Changes a staging flag's default variant through the API.
async fn set_default(s: &TestServer, flag: &str, variant: &str) {
    let path = format!("/v1/environments/staging/flags/{flag}");
    let (st, v) = s.get(ADMIN_TOKEN, &path).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            &format!("{path}/changes"),
            json!({"change": {"op": "set-default", "variant": variant}, "base_revision": v["revision"]}),
        )
        .await;
    assert!(st.is_success(), "{st}: {v}");
}

/// Status, ETag and body of an OFREP call, with the answering server's own event-stream URL
/// replaced (the one part that names where it was asked).
async fn ask(
    base: &str,
    key: &str,
    path: &str,
    body: &str,
    if_none_match: Option<&str>,
) -> (u16, Option<String>, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(tag) = if_none_match {
        req = req.header(IF_NONE_MATCH, tag);
    }
    let resp = req.send().await.expect("sent");
    let status = resp.status().as_u16();
    let tag = resp
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.expect("body");
    (status, tag, text.replace(base, "SELF"))
}

async fn central_and_edge(b: Backend) -> Option<(TestServer, Edge, String, tempfile::TempDir)> {
    let db = Db::new(b).await?;
    let s = TestServer::start(db).await;
    let rev = import(&s, "staging", document()).await;
    let key = edge_key(&s, "staging").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = Edge::start(&s.url(""), &key, dir.path(), ManualClock::new(t0())).await;
    edge.wait_for("staging", rev).await;
    Some((s, edge, key, dir))
}

async fn edge_answers_byte_for_byte_as_the_central_server(b: Backend) {
    let Some((s, edge, _, _dir)) = central_and_edge(b).await else {
        return;
    };
    let plain = client_key(&s, "staging").await;
    // A key with a static context of its own: the edge merges it as the central server does.
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"name": "ctx", "kind": "client", "environment": "staging", "context": {"email": "k@example.com"}}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let with_context = v["token"].as_str().expect("token").to_owned();
    // Client keys made after the edge synced reach it with the next snapshot.
    set_default(&s, "int-flag", "one").await;
    let rev = s.app.env_flags("staging").expect("staging").revision;
    edge.wait_for("staging", rev).await;
    let central = s.url("");
    let here = edge.url("");
    let bodies = [
        "",
        "{}",
        r#"{"context": {}}"#,
        r#"{"context": {"targetingKey": "user-1", "email": "a@example.com"}}"#,
        r#"{"context": {"targetingKey": "user-2", "pick": "b"}}"#,
        r#"{"context": {"targetingKey": 7}}"#,
        r#"{"context": []}"#,
        "[]",
        "not json",
    ];
    let flags = [
        "bool-static",
        "string-flag",
        "int-flag",
        "float-zero",
        "object-flag",
        "targeted",
        "split",
        "disabled",
        "no-default",
        "dynamic",
        "no-such-flag",
    ];
    for key in [&plain, &with_context] {
        for body in bodies {
            for flag in flags {
                let path = format!("/ofrep/v1/evaluate/flags/{flag}");
                let c = ask(&central, key, &path, body, None).await;
                let e = ask(&here, key, &path, body, None).await;
                assert_eq!(c, e, "{flag} with {body:?}");
            }
            let c = ask(&central, key, "/ofrep/v1/evaluate/flags", body, None).await;
            let e = ask(&here, key, "/ofrep/v1/evaluate/flags", body, None).await;
            assert_eq!(c, e, "bulk with {body:?}");
            // The central server's tag is good at the edge, and the edge's at the central.
            if let Some(tag) = &c.1 {
                let at_edge = ask(&here, key, "/ofrep/v1/evaluate/flags", body, Some(tag)).await;
                assert_eq!(at_edge.0, 304, "edge 304 with {body:?}");
                let at_central =
                    ask(&central, key, "/ofrep/v1/evaluate/flags", body, Some(tag)).await;
                assert_eq!(at_central.0, 304);
            }
        }
    }
    // Keys the edge does not hold, and tokens that are not client keys.
    let unknown = SecretToken::generate(
        sluice_core::token::TokenKind::Client,
        &mut rand::rngs::OsRng,
    );
    for (key, want) in [(ADMIN_TOKEN, 403), (unknown.expose(), 401), ("", 401)] {
        let e = ask(
            &here,
            key,
            "/ofrep/v1/evaluate/flags/bool-static",
            "{}",
            None,
        )
        .await;
        assert_eq!(e.0, want, "{key}: {}", e.2);
        let body: Value = serde_json::from_str(&e.2).expect("an error body");
        assert!(body["code"].is_string(), "{body}");
    }
}

/// Reads one SSE `data:` line from a response, within `wait`.
async fn next_data(resp: &mut reqwest::Response, buf: &mut String, wait: Duration) -> Value {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(i) = buf.find('\n') {
            let line: String = buf.drain(..=i).collect();
            if let Some(d) = line.strip_prefix("data:") {
                return serde_json::from_str(d.trim()).expect("event JSON");
            }
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, resp.chunk())
            .await
            .expect("an event in time")
            .expect("stream")
            .expect("stream open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn a_change_on_the_central_server_reaches_edge_subscribers(b: Backend) {
    let Some((s, edge, _, _dir)) = central_and_edge(b).await else {
        return;
    };
    let key = client_key(&s, "staging").await;
    // The key is new: it reaches the edge with the next snapshot, brought by this change.
    set_default(&s, "bool-static", "off").await;
    let rev = s.app.env_flags("staging").expect("staging").revision;
    edge.wait_for("staging", rev).await;
    let mut sub = reqwest::Client::new()
        .get(edge.url(&format!("/ofrep/v1/events?key={key}")))
        .send()
        .await
        .expect("subscribed");
    assert_eq!(sub.status(), StatusCode::OK);
    let mut buf = String::new();
    set_default(&s, "bool-static", "on").await;
    let rev = s.app.env_flags("staging").expect("staging").revision;
    let ev = next_data(&mut sub, &mut buf, Duration::from_secs(10)).await;
    assert_eq!(ev["type"], "refetchEvaluation");
    assert_eq!(ev["etag"], format!("\"{rev}\""));
    // And the refetch gets the new answer.
    let (st, _, body) = ask(
        &edge.url(""),
        &key,
        "/ofrep/v1/evaluate/flags/bool-static",
        "{}",
        None,
    )
    .await;
    assert_eq!(st, 200);
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["variant"], "on");
}

async fn an_expiring_target_ends_on_the_edge_clock_exactly(b: Backend) {
    let Some((s, edge, _, _dir)) = central_and_edge(b).await else {
        return;
    };
    let key = client_key(&s, "staging").await;
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/environments/staging/flags/targeted/targets",
            json!({"variant": "on", "keys": ["user-7"], "for": "1h"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let rev = s.app.env_flags("staging").expect("staging").revision;
    edge.wait_for("staging", rev).await;
    let expires = t0() + TimeDelta::hours(1);
    let body = r#"{"context": {"targetingKey": "user-7"}}"#;
    let single = || async {
        let (st, _, text) = ask(
            &edge.url(""),
            &key,
            "/ofrep/v1/evaluate/flags/targeted",
            body,
            None,
        )
        .await;
        assert_eq!(st, 200, "{text}");
        let v: Value = serde_json::from_str(&text).expect("json");
        (
            v["variant"].as_str().unwrap_or("").to_owned(),
            v["reason"].as_str().unwrap_or("").to_owned(),
        )
    };
    let bulk_tag = || async {
        ask(&edge.url(""), &key, "/ofrep/v1/evaluate/flags", body, None)
            .await
            .1
            .expect("etag")
    };
    assert_eq!(single().await, ("on".into(), "TARGETING_MATCH".into()));
    edge.clock.set(expires - TimeDelta::milliseconds(1));
    assert_eq!(single().await, ("on".into(), "TARGETING_MATCH".into()));
    let before = bulk_tag().await;
    // The central server's clock has not moved and nothing was pushed: the edge alone decides.
    edge.clock.set(expires);
    assert_eq!(single().await, ("off".into(), "DEFAULT".into()));
    assert_ne!(
        bulk_tag().await,
        before,
        "a cached bulk answer outlived the target"
    );
    assert!(s.clock_now() < expires);
}

async fn edge_counts_land_in_the_central_tables(b: Backend) {
    let Some((s, mut edge, _, _dir)) = central_and_edge(b).await else {
        return;
    };
    let key = client_key(&s, "staging").await;
    set_default(&s, "float-zero", "half").await;
    let rev = s.app.env_flags("staging").expect("staging").revision;
    edge.wait_for("staging", rev).await;
    for _ in 0..5 {
        let (st, _, _) = ask(
            &edge.url(""),
            &key,
            "/ofrep/v1/evaluate/flags/float-zero",
            "{}",
            None,
        )
        .await;
        assert_eq!(st, 200);
    }
    let (st, _, _) = ask(&edge.url(""), &key, "/ofrep/v1/evaluate/flags", "{}", None).await;
    assert_eq!(st, 200);
    // Reported within the interval (200 ms here); what is left, at shutdown.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (st, v) = s
            .get(ADMIN_TOKEN, "/v1/environments/staging/evaluations")
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let flag = v["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .find(|f| f["key"] == "float-zero")
            .cloned()
            .expect("float-zero listed");
        let client = v["clients"]
            .as_array()
            .expect("clients")
            .iter()
            .find(|c| c["evaluations"].as_i64().is_some_and(|n| n > 5))
            .cloned();
        if flag["evaluations"] == 6 && client.is_some() {
            assert_eq!(flag["answers"][0]["variant"], "half");
            break;
        }
        assert!(Instant::now() < deadline, "counts did not arrive: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    edge.stop().await;
}

async fn an_edge_key_only_syncs_its_environments(b: Backend) {
    let Some(db) = Db::new(b).await else { return };
    let s = TestServer::start(db).await;
    import(&s, "staging", document()).await;
    import(&s, "production", document()).await;
    let key = edge_key(&s, "staging").await;
    let client = client_key(&s, "production").await;
    // Its own environment, and only that.
    let (st, v) = s.get(&key, "/v1/edge/snapshot").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let envs: Vec<&str> = v["environments"]
        .as_array()
        .expect("environments")
        .iter()
        .filter_map(|e| e["environment"].as_str())
        .collect();
    assert_eq!(envs, ["staging"]);
    assert!(!v.to_string().contains(&client), "a secret in a snapshot");
    let (st, v) = s
        .get(&key, "/v1/edge/snapshot?environment=production")
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    // Counts of an environment it does not sync change nothing.
    let report = json!({"flags": [{"environment": "production", "flag": "bool-static", "variant": "on",
        "reason": "STATIC", "day": 20000, "count": 3, "last_at": "2026-11-27T09:00:00Z"}], "clients": []});
    let (st, v) = s.post(&key, "/v1/edge/evaluations", report).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["code"], "forbidden");
    // Not the other way round either: API tokens and client keys do not sync.
    for t in [ADMIN_TOKEN, client.as_str()] {
        let (st, _) = s.get(t, "/v1/edge/snapshot").await;
        assert_eq!(st, StatusCode::FORBIDDEN);
    }
    // Every other route of the document refuses it.
    let doc: Value = s
        .http
        .get(s.url("/openapi.json"))
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("json");
    let mut wrong = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "delete", "patch"] {
            let Some(op) = item.get(method) else { continue };
            let open = op["security"].as_array().is_some_and(|s| {
                s.is_empty()
                    || s.iter()
                        .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
            });
            if open || path.starts_with("/v1/edge/") {
                continue;
            }
            let concrete = path
                .replace("{env}", "staging")
                .replace("{key}", "bool-static")
                .replace('{', "x")
                .replace('}', "");
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let resp = s
                .http
                .request(m, s.url(&concrete))
                .bearer_auth(&key)
                .json(&json!({}))
                .send()
                .await
                .expect("sent");
            if resp.status() != StatusCode::FORBIDDEN {
                wrong.push(format!("{method} {path}: {}", resp.status()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "an edge key was not refused:\n{}",
        wrong.join("\n")
    );
}

/// An edge started with `--cors-origin` answers a web page on that origin as the central
/// server does (preflight, then the answer marked for it), and no other.
async fn an_edge_answers_browsers_on_its_configured_origins(b: Backend) {
    const APP: &str = "http://localhost:3000";
    let Some(db) = Db::new(b).await else { return };
    let s = TestServer::start(db).await;
    let rev = import(&s, "staging", document()).await;
    let key = edge_key(&s, "staging").await;
    // Made before the edge starts: it learns of client keys with the snapshot.
    let client = client_key(&s, "staging").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let origins = sluice_server::cors::BrowserOrigins::parse(&[APP.into()]).expect("origin");
    let edge = Edge::start_with(
        &s.url(""),
        &key,
        dir.path(),
        ManualClock::new(t0()),
        origins,
    )
    .await;
    edge.wait_for("staging", rev).await;
    let url = format!("http://{}/ofrep/v1/evaluate/flags", edge.addr);
    let http = reqwest::Client::new();
    let r = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", APP)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("preflight");
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], APP);
    for origin in [APP, "http://localhost:3001"] {
        let r = http
            .post(&url)
            .header("origin", origin)
            .bearer_auth(&client)
            .body("{}")
            .send()
            .await
            .expect("evaluate");
        assert_eq!(r.status(), StatusCode::OK);
        let marked = r
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        assert_eq!(marked, (origin == APP).then(|| APP.to_owned()), "{origin}");
    }
}

backend_tests!(
    an_edge_answers_browsers_on_its_configured_origins,
    edge_answers_byte_for_byte_as_the_central_server,
    a_change_on_the_central_server_reaches_edge_subscribers,
    an_expiring_target_ends_on_the_edge_clock_exactly,
    edge_counts_land_in_the_central_tables,
    an_edge_key_only_syncs_its_environments,
);
