//! Outages say so: a PostgreSQL that drops and refuses connections, and a lock held elsewhere,
//! answer 503 with a stable code (never `500 internal`), `/readyz` says not ready while nothing
//! can be written, and the server recovers by itself when the database does.

use crate::harness::{t0, ADMIN_TOKEN, POLICY};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sluice_core::token::SecretToken;
use sluice_server::{Server, ServerConfig};
use sluice_store::StoreOptions;
use sqlx::Connection as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A server of its own on `url`, with short store timeouts.
async fn start(url: &str, dir: &std::path::Path) -> (String, tokio::task::JoinHandle<()>) {
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database_url: url.to_owned(),
        signing_key: dir.join("audit-signing.pem"),
        admin_token: Some(SecretToken::from_presented(ADMIN_TOKEN)),
        reaper_interval: Duration::from_secs(3600),
        checkpoint_interval: Duration::from_secs(3600),
        sync_interval: Duration::from_millis(100),
        db_clock: None,
        client_rate_limit: None,
        cors_origins: Default::default(),
        public_url: None,
    };
    let options = StoreOptions {
        lock_timeout: Duration::from_millis(300),
        statement_timeout: Duration::from_secs(5),
        ..StoreOptions::default()
    };
    let clock: Arc<dyn sluice_core::Clock> = Arc::new(sluice_core::ManualClock::new(t0()));
    let server = Server::build_with(config, options, clock)
        .await
        .expect("server builds");
    let base = format!("http://{}", server.local_addr().expect("bound"));
    let handle = tokio::spawn(async move {
        let _ = server.run(std::future::pending()).await;
    });
    (base, handle)
}

async fn call(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.expect("sent");
    let st = resp.status();
    let text = resp.text().await.expect("body");
    (
        st,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body);
        call(req).await
    }
    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token);
        call(req).await
    }
    async fn request(&self, token: &str) -> (StatusCode, Value) {
        self.post(
            token,
            "/v1/requests",
            json!({"entitlement": "orders-db-read", "duration": "1h", "reason": "outage test"}),
        )
        .await
    }
    async fn decide(&self) -> (StatusCode, Value) {
        let q = json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "toggle"}, "resource": {"type": "flag", "id": "production/x"}});
        self.post(ADMIN_TOKEN, "/access/v1/evaluation", q).await
    }
}

fn assert_503(got: (StatusCode, Value), code: &str, what: &str) {
    let (st, body) = got;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert_eq!(body["code"], code, "{what}: {body}");
}

/// A database of its own on the test server (connections to it are cut by name), and a pool
/// on the server's maintenance database to cut them with.
async fn fresh_database() -> Option<(String, String, sqlx::PgPool)> {
    let Ok(base) = std::env::var("SLUICE_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but SLUICE_TEST_DATABASE_URL is not set: the PostgreSQL tests must run"
        );
        eprintln!("notice: SLUICE_TEST_DATABASE_URL not set; skipping the outage test");
        return None;
    };
    let admin = sqlx::PgPool::connect(&base).await.expect("connect");
    let name = format!("sluice_outage_{:016x}", rand::random::<u64>());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .expect("create database");
    let mut url = url::Url::parse(&base).expect("a URL");
    url.set_path(&name);
    Some((name, url.to_string(), admin))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_outage_answers_503_and_the_server_recovers_without_restart() {
    let Some((name, url, admin)) = fresh_database().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (base, server) = start(&url, dir.path()).await;
    let c = Client {
        http: reqwest::Client::new(),
        base,
    };
    let (st, v) = c
        .post(ADMIN_TOKEN, "/v1/policy", json!({"source": POLICY}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = c
        .post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"principal": "dave", "name": "t"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let dave = v["token"].as_str().expect("token").to_owned();
    assert_eq!(c.request(&dave).await.0, StatusCode::CREATED);
    assert_eq!(c.get("", "/readyz").await.0, StatusCode::OK);

    // Every connection dropped, new ones refused.
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&admin)
        .await
        .expect("refuse connections");
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
    )
    .bind(&name)
    .fetch_all(&admin)
    .await
    .expect("terminate");
    assert!(!cut.is_empty(), "the server held connections to cut");
    assert_503(c.request(&dave).await, "unavailable", "a write");
    assert_503(c.decide().await, "unavailable", "an audited decision");
    assert_503(c.get("", "/readyz").await, "unavailable", "readiness");

    // Back: the next requests succeed, without a restart.
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&admin)
        .await
        .expect("accept connections");
    assert_eq!(c.get("", "/readyz").await.0, StatusCode::OK, "ready again");
    let (st, v) = c.request(&dave).await;
    assert_eq!(st, StatusCode::CREATED, "a write after recovery: {v}");
    assert_eq!(c.decide().await.0, StatusCode::OK);

    // A lock held elsewhere on the chain head: each write fails after the lock timeout, 503,
    // instead of waiting as long as the lock is held; readiness says so too.
    let mut holder = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql("BEGIN; SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
        .execute(&mut holder)
        .await
        .expect("hold the chain head");
    let started = Instant::now();
    assert_503(
        c.request(&dave).await,
        "store_busy",
        "a write behind a held lock",
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "gave up after the lock timeout, not when the lock was released: {:?}",
        started.elapsed()
    );
    assert_503(
        c.get("", "/readyz").await,
        "store_busy",
        "readiness behind a held lock",
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("release");
    assert_eq!(c.request(&dave).await.0, StatusCode::CREATED);
    assert_eq!(c.get("", "/readyz").await.0, StatusCode::OK);

    // Nothing acknowledged was lost and the chain verifies.
    let (st, v) = c.get(ADMIN_TOKEN, "/v1/requests").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let n = v
        .as_array()
        .map_or_else(|| v["requests"].as_array().map_or(0, Vec::len), Vec::len);
    assert_eq!(n, 3, "three acknowledged requests: {v}");
    let (st, v) = c.get(ADMIN_TOKEN, "/v1/audit/verify").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["ok"], true, "{v}");

    server.abort();
    let _ = server.await;
    drop(holder);
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&admin)
        .await
        .expect("drop database");
}

/// SQLite: another process holding the write lock makes writes fail after the lock timeout
/// with `503 store_busy` and `/readyz` say not ready, and both recover once it lets go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_database_answers_503_store_busy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("sluice.db").display());
    let (base, server) = start(&url, dir.path()).await;
    let c = Client {
        http: reqwest::Client::new(),
        base,
    };
    let (st, v) = c
        .post(ADMIN_TOKEN, "/v1/policy", json!({"source": POLICY}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, v) = c
        .post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"principal": "dave", "name": "t"}),
        )
        .await;
    let dave = v["token"].as_str().expect("token").to_owned();

    let mut holder = sqlx::SqliteConnection::connect(&url).await.expect("open");
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .expect("take the write lock");
    assert_503(c.request(&dave).await, "store_busy", "a write while locked");
    assert_503(
        c.get("", "/readyz").await,
        "store_busy",
        "readiness while locked",
    );
    assert_eq!(
        c.get("", "/healthz").await.0,
        StatusCode::OK,
        "alive all the same"
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("release");
    let (st, v) = c.request(&dave).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(c.get("", "/readyz").await.0, StatusCode::OK);
    server.abort();
    let _ = server.await;
}
