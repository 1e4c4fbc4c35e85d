//! A real server on 127.0.0.1:0 with an injected clock, over a real SQLite file or a real
//! PostgreSQL schema, driven by a real HTTP client.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sluice_core::token::SecretToken;
use sluice_core::ManualClock;
use sluice_server::checkpointer::AuditOptions;
use sluice_server::{App, Server, ServerConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_TOKEN: &str =
    "slu_api_00000000000000000000000000000000000000000000000000000000000000ad";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where a test's database lives; kept across restarts.
pub struct Db {
    pub url: String,
    pub key: PathBuf,
    /// Keeps the SQLite file and key alive for the test's duration.
    pub _dir: tempfile::TempDir,
}

impl Db {
    /// A fresh database for one test, or `None` (with a notice) when PostgreSQL is not
    /// configured outside CI. Under `CI=true` a missing PostgreSQL fails the test.
    pub async fn new(backend: Backend) -> Option<Db> {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("audit-signing.pem");
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("sluice.db").display()),
            Backend::Postgres => {
                let Ok(base) = std::env::var("SLUICE_TEST_DATABASE_URL") else {
                    assert!(
                        std::env::var("CI").as_deref() != Ok("true"),
                        "CI=true but SLUICE_TEST_DATABASE_URL is not set: the PostgreSQL tests must run"
                    );
                    eprintln!(
                        "notice: SLUICE_TEST_DATABASE_URL not set; skipping the PostgreSQL variant"
                    );
                    return None;
                };
                let schema = format!("t_{}", uuid_like());
                let pool = sqlx::PgPool::connect(&base)
                    .await
                    .expect("connect to PostgreSQL");
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&pool)
                    .await
                    .expect("create schema");
                pool.close().await;
                let sep = if base.contains('?') { '&' } else { '?' };
                format!("{base}{sep}options=-c%20search_path%3D{schema}")
            }
        };
        Some(Db {
            url,
            key,
            _dir: dir,
        })
    }
}

fn uuid_like() -> String {
    use rand::RngCore;
    format!("{:016x}", rand::rngs::OsRng.next_u64())
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0)
        .single()
        .expect("valid time")
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub clock: ManualClock,
    pub app: App,
    pub http: reqwest::Client,
    pub db: Db,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(db: Db) -> TestServer {
        Self::start_with_clock(db, ManualClock::new(t0())).await
    }

    /// With the real clock, for the one real-time test.
    pub async fn start_with_clock_system(db: Db) -> TestServer {
        Self::start_inner(
            db,
            ManualClock::new(t0()),
            Arc::new(sluice_core::SystemClock),
            None,
            AuditOptions::manual(),
            None,
            None,
        )
        .await
    }

    /// On the real clock, with rollout guards reading this Prometheus (and notifications, if
    /// given).
    pub async fn start_guarded(
        db: Db,
        guards: sluice_server::guards::GuardConfig,
        notify: Option<sluice_server::notify::NotifyConfig>,
    ) -> TestServer {
        Self::start_inner(
            db,
            ManualClock::new(t0()),
            Arc::new(sluice_core::SystemClock),
            None,
            AuditOptions::manual(),
            notify,
            Some(guards),
        )
        .await
    }

    pub fn clock_now(&self) -> DateTime<Utc> {
        self.app.now()
    }

    pub async fn start_with_clock(db: Db, clock: ManualClock) -> TestServer {
        let c: Arc<dyn sluice_core::Clock> = Arc::new(clock.clone());
        Self::start_inner(db, clock, c, None, AuditOptions::manual(), None, None).await
    }

    /// With notifications (webhooks, chat, reminders) as configured.
    pub async fn start_notifying(
        db: Db,
        clock: ManualClock,
        notify: sluice_server::notify::NotifyConfig,
    ) -> TestServer {
        let c: Arc<dyn sluice_core::Clock> = Arc::new(clock.clone());
        Self::start_inner(
            db,
            clock,
            c,
            None,
            AuditOptions::manual(),
            Some(notify),
            None,
        )
        .await
    }

    /// With checkpoints after every commit and the unsigned-tail bound, as `sluice serve`
    /// runs (the other constructors leave checkpoints to the tests), plus `audit`'s witness.
    pub async fn start_signing(db: Db, audit: AuditOptions) -> TestServer {
        let clock = ManualClock::new(t0());
        let c: Arc<dyn sluice_core::Clock> = Arc::new(clock.clone());
        Self::start_inner(db, clock, c, None, audit, None, None).await
    }

    /// With `--public-url` set.
    pub async fn start_with_public_url(db: Db, public_url: &str) -> TestServer {
        let clock = ManualClock::new(t0());
        let c: Arc<dyn sluice_core::Clock> = Arc::new(clock.clone());
        Self::start_inner(
            db,
            clock,
            c,
            Some(public_url.to_owned()),
            AuditOptions::manual(),
            None,
            None,
        )
        .await
    }

    async fn start_inner(
        db: Db,
        clock: ManualClock,
        real: Arc<dyn sluice_core::Clock>,
        public_url: Option<String>,
        audit: AuditOptions,
        notify: Option<sluice_server::notify::NotifyConfig>,
        guards: Option<sluice_server::guards::GuardConfig>,
    ) -> TestServer {
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            database_url: db.url.clone(),
            signing_key: db.key.clone(),
            admin_token: Some(SecretToken::from_presented(ADMIN_TOKEN)),
            // Background work is driven by the tests (app.reap()), not by a timer.
            reaper_interval: Duration::from_secs(3600),
            checkpoint_interval: Duration::from_secs(3600),
            sync_interval: Duration::from_millis(100),
            db_clock: None,
            client_rate_limit: None,
            cors_origins: Default::default(),
            public_url,
        };
        let mut server = Server::build(config, real).await.expect("server builds");
        server.audit = audit;
        server.notify = notify;
        server.guards = guards;
        let addr = server.local_addr().expect("bound");
        let app = server.app.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            server
                .run(async {
                    let _ = rx.await;
                })
                .await
                .expect("server runs");
        });
        TestServer {
            addr,
            clock,
            app,
            http: reqwest::Client::new(),
            db,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops the server and starts a new one on the same database and key, with the same clock.
    pub async fn restart(mut self) -> TestServer {
        self.stop().await;
        let clock = self.clock.clone();
        let db = std::mem::replace(
            &mut self.db,
            Db {
                url: String::new(),
                key: PathBuf::new(),
                _dir: tempfile::tempdir().expect("tempdir"),
            },
        );
        TestServer::start_with_clock(db, clock).await
    }

    /// Stops the server and hands back its database, for a test to change before it starts
    /// another server on it.
    pub async fn into_db(mut self) -> Db {
        self.stop().await;
        std::mem::replace(
            &mut self.db,
            Db {
                url: String::new(),
                key: PathBuf::new(),
                _dir: tempfile::tempdir().expect("tempdir"),
            },
        )
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        self.app.store.close().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests answered on `route` (a route pattern, or `unmatched`) with a status of
    /// `class` (`2xx`, …), as `/metrics` counts them. The recorder is shared by every test in
    /// the process: compare before and after, and expect other tests only to add.
    pub async fn requests_counted(&self, route: &str, class: &str) -> f64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("text");
        text.lines()
            .filter(|l| l.starts_with("sluice_http_requests_total{"))
            .filter(|l| l.contains(&format!("route=\"{route}\"")))
            .filter(|l| l.contains(&format!("status=\"{class}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn advance(&self, d: TimeDelta) {
        self.clock.advance(d);
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, token, path, None).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, token, path, Some(body))
            .await
    }

    /// Applies a policy as the administrator.
    pub async fn apply(&self, yaml: &str) {
        let (s, v) = self
            .post(ADMIN_TOKEN, "/v1/policy", json!({"source": yaml}))
            .await;
        assert_eq!(s, StatusCode::OK, "apply failed: {v}");
    }

    /// Creates an API token for `principal`.
    pub async fn token(&self, principal: &str) -> String {
        let (s, v) = self
            .post(
                ADMIN_TOKEN,
                "/v1/tokens",
                json!({"principal": principal, "name": "test"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "token: {v}");
        v["token"].as_str().expect("token").to_owned()
    }

    /// Opens a request; returns (status, body).
    pub async fn request(
        &self,
        token: &str,
        entitlement: &str,
        duration: &str,
        reason: &str,
    ) -> (StatusCode, Value) {
        self.post(
            token,
            "/v1/requests",
            json!({"entitlement": entitlement, "duration": duration, "reason": reason}),
        )
        .await
    }

    /// An AuthZEN decision as the administrator.
    pub async fn allowed(&self, subject: &str, action: &str, kind: &str, id: &str) -> bool {
        let body = json!({"subject": {"type": "user", "id": subject}, "action": {"name": action}, "resource": {"type": kind, "id": id}});
        let (s, v) = self.post(ADMIN_TOKEN, "/access/v1/evaluation", body).await;
        assert_eq!(s, StatusCode::OK, "evaluation: {v}");
        v["decision"].as_bool().expect("decision is a boolean")
    }

    /// Verifies the live audit chain; returns the report.
    pub async fn verify(&self) -> Value {
        let (s, v) = self.get(ADMIN_TOKEN, "/v1/audit/verify").await;
        assert_eq!(s, StatusCode::OK, "verify: {v}");
        v
    }

    /// All audit entries with this action.
    pub async fn audit_actions(&self, action: &str) -> Vec<Value> {
        let (s, v) = self
            .get(
                ADMIN_TOKEN,
                &format!("/v1/audit?action={action}&limit=1000"),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "audit: {v}");
        v["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["action"] == action)
            .collect()
    }
}

/// The policy most tests use.
pub const POLICY: &str = r#"
users: [alice, bob, carol, dave, erin, mallory]
service_accounts: [ci-bot]
groups:
  oncall: [alice]
  engineers: [alice, dave, erin, mallory]
  leads: [bob, carol]
  admins-group: [mallory]
admins: [group:admins-group]
environments:
  production: { protected: true }
permissions:
  - to: [group:engineers]
    resource: "flag:staging/**"
    actions: ["*"]
entitlements:
  - name: flags-prod-operator
    scopes:
      - resource: "flag:production/**"
        actions: [toggle]
    requesters: [group:engineers]
    max_duration: 1h
    approval: { required: 1, approvers: [group:leads] }
    auto_approve: { requester_in: [group:oncall], max_duration: 30m }
    break_glass: true
    pending_ttl: 1h
  - name: orders-db-read
    scopes:
      - resource: "db:orders"
        actions: [read]
    requesters: [group:engineers, group:leads]
    max_duration: 2h
    approval: { required: 2, approvers: [group:leads, mallory] }
    reason: optional
    pending_ttl: 30m
"#;

/// Generates a SQLite and a PostgreSQL variant of a test body `async fn(Backend)`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::harness::Backend::Sqlite).await }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::harness::Backend::Postgres).await }
            )*
        }
    };
}

/// Starts a server for `backend` with [`POLICY`] applied, or returns from the test (skip) when
/// the backend is not available outside CI.
#[macro_export]
macro_rules! server {
    ($backend:expr) => {{
        let Some(db) = $crate::harness::Db::new($backend).await else {
            return;
        };
        let s = $crate::harness::TestServer::start(db).await;
        s.apply($crate::harness::POLICY).await;
        s
    }};
}
