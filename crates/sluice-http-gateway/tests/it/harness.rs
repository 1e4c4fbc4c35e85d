//! A Sluice server with its HTTP gateway, and an upstream that records what reaches it.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use sluice_core::token::SecretToken;
use sluice_core::Clock;
use sluice_http_gateway::{
    AuditMode, CredentialConfig, HttpGateway, HttpGatewayConfig, ServiceConfig,
};
use sluice_server::serve::HttpOptions;
use sluice_server::{Server, ServerConfig};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const ADMIN_TOKEN: &str =
    "slu_api_00000000000000000000000000000000000000000000000000000000000000ad";

/// What the upstream received: method, path and query as sent, headers.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
}

#[derive(Clone, Default)]
pub struct Upstream {
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// The upstream's one handler: records the request; `/stream` answers with a chunk every
/// 50 ms for ever; a path ending in `/slow` answers after 3 s; everything else with
/// `{"ok": true}` and a header that echoes the `Authorization` it got (a careless upstream:
/// the gateway must not pass it back).
async fn upstream(State(up): State<Upstream>, req: Request) -> Response {
    up.seen.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        uri: req.uri().to_string(),
        headers: req.headers().clone(),
    });
    if req.uri().path().ends_with("/slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if req.uri().path() == "/stream" {
        let chunks = futures_util::stream::unfold(0u64, |n| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Some((Ok::<_, std::io::Error>(format!("chunk {n}\n")), n + 1))
        });
        return Response::new(Body::from_stream(chunks));
    }
    let echoed = req
        .headers()
        .get("authorization")
        .cloned()
        .unwrap_or(HeaderValue::from_static("none"));
    let mut resp = axum::Json(json!({"ok": true})).into_response();
    resp.headers_mut().insert("x-debug-authorization", echoed);
    resp.headers_mut()
        .insert("connection", HeaderValue::from_static("x-upstream-hop"));
    resp.headers_mut()
        .insert("x-upstream-hop", HeaderValue::from_static("1"));
    resp
}

async fn start_upstream() -> (Upstream, SocketAddr) {
    let up = Upstream::default();
    let app = axum::Router::new()
        .fallback(upstream)
        .with_state(up.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (up, addr)
}

pub const POLICY: &str = r#"
users: [alice, bob]
service_accounts: [ci-bot]
groups:
  leads: [bob]
entitlements:
  - name: refunds-admin
    description: Issue refunds through the payments admin API.
    scopes:
      - resource: "http:payments-admin"
        actions: ["POST /v1/refunds/*"]
    requesters: [ci-bot, alice]
    max_duration: 10m
    approval: { required: 1, approvers: [group:leads] }
    auto_approve: { requester_in: [ci-bot, alice], max_duration: 10m }
  - name: payments-read
    scopes:
      - resource: "http:payments-admin"
        actions: ["GET /v1/orders/**"]
    requesters: [alice]
    max_duration: 1h
    approval: { required: 1, approvers: [group:leads] }
    auto_approve: { requester_in: [alice], max_duration: 1h }
  - name: stream-read
    scopes:
      - resource: "http:payments-admin"
        actions: ["GET /stream"]
    requesters: [alice]
    max_duration: 1h
    approval: { required: 1, approvers: [group:leads] }
    auto_approve: { requester_in: [alice], max_duration: 1h }
  - name: chat
    scopes:
      - resource: "http:chat"
        actions: ["GET /socket", "GET /v1/**"]
    requesters: [alice]
    max_duration: 1h
    approval: { required: 1, approvers: [group:leads] }
    auto_approve: { requester_in: [alice], max_duration: 1h }
  - name: ledger
    scopes:
      - resource: "http:ledger"
        actions: ["GET /**"]
    requesters: [alice]
    max_duration: 1h
    approval: { required: 1, approvers: [group:leads] }
    auto_approve: { requester_in: [alice], max_duration: 1h }
"#;

/// The upstream credential every test's upstream expects.
pub const UPSTREAM_SECRET: &str = "Bearer upstream-secret-7f3a9c";

pub struct Env {
    pub http: SocketAddr,
    pub gateway: SocketAddr,
    pub upstream: Upstream,
    /// Where the recording upstream listens (to declare more services in front of it).
    pub upstream_addr: SocketAddr,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub struct Options {
    pub audit: AuditMode,
    pub clock: Option<Arc<sluice_core::ManualClock>>,
    /// Point `payments-admin` at a closed port.
    pub upstream_down: bool,
    /// The gateway's connection bounds.
    pub http: HttpOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            audit: AuditMode::Before,
            clock: None,
            upstream_down: false,
            http: HttpOptions::default(),
        }
    }
}

impl Env {
    pub async fn start() -> Env {
        Env::with(Options::default()).await
    }

    pub async fn with(o: Options) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(env_credentials_dir(dir.path())).unwrap();
        let secret_file = dir.path().join("payments-admin.credential");
        std::fs::write(&secret_file, format!("{UPSTREAM_SECRET}\n")).unwrap();
        let clock: Arc<dyn Clock> = match &o.clock {
            Some(c) => c.clone(),
            None => Arc::new(sluice_core::SystemClock),
        };
        let server = Server::build(server_config(dir.path()), clock)
            .await
            .unwrap();
        let http = server.local_addr().unwrap();
        let app = server.app.clone();
        tokio::spawn(async move {
            let _ = server.run(std::future::pending()).await;
        });
        let (upstream, up_addr) = start_upstream().await;
        let target = if o.upstream_down {
            // Bound then dropped: nothing listens there.
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        } else {
            up_addr
        };
        let config = HttpGatewayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            services: vec![ServiceConfig {
                name: "payments-admin".into(),
                upstream: format!("http://{target}"),
                credential: Some(CredentialConfig {
                    header: "authorization".into(),
                    value_env: None,
                    value_file: Some(secret_file),
                }),
                audit: o.audit,
                timeout: sluice_core::duration::Duration::from_secs(5),
                max_body_bytes: 1024,
            }],
            credentials_dir: Some(env_credentials_dir(dir.path())),
        };
        let gw = HttpGateway::bind(app.clone(), config).await.unwrap();
        let gateway = gw.local_addr().unwrap();
        tokio::spawn(gw.run(o.http, std::future::pending()));
        let env = Env {
            http,
            gateway,
            upstream,
            upstream_addr: up_addr,
            client: reqwest::Client::new(),
            dir,
        };
        env.post(ADMIN_TOKEN, "/v1/policy", json!({"source": POLICY}), 200)
            .await;
        env
    }

    pub async fn post(&self, token: &str, path: &str, body: Value, want: u16) -> Value {
        let r = self
            .client
            .post(format!("http://{}{path}", self.http))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, want, "POST {path}: {v}");
        v
    }

    /// Any API request; returns the status and the JSON body.
    pub async fn api(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(
                method.parse().unwrap(),
                format!("http://{}{path}", self.http),
            )
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, token: &str, path: &str) -> Value {
        let r = self
            .client
            .get(format!("http://{}{path}", self.http))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn token(&self, principal: &str) -> String {
        let v = self
            .post(
                ADMIN_TOKEN,
                "/v1/tokens",
                json!({"principal": principal, "name": "test"}),
                201,
            )
            .await;
        v["token"].as_str().unwrap().to_owned()
    }

    /// Requests an (auto-approved) grant; returns its id and end.
    pub async fn grant(
        &self,
        token: &str,
        entitlement: &str,
        duration: &str,
    ) -> (String, chrono::DateTime<chrono::Utc>) {
        let v = self
            .post(
                token,
                "/v1/requests",
                json!({"entitlement": entitlement, "duration": duration, "reason": "test"}),
                201,
            )
            .await;
        assert_eq!(v["status"], "active", "{v}");
        let end = v["expires_at"].as_str().unwrap().parse().unwrap();
        (v["id"].as_str().unwrap().to_owned(), end)
    }

    /// A call through the gateway with the token as `Authorization: Bearer`.
    pub async fn call(&self, token: &str, method: &str, path: &str) -> reqwest::Response {
        self.client
            .request(
                method.parse().unwrap(),
                format!("http://{}{path}", self.gateway),
            )
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// The status and JSON body of a call.
    pub async fn call_json(&self, token: &str, method: &str, path: &str) -> (u16, Value) {
        let r = self.call(token, method, path).await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The audit entries with this action, oldest first.
    pub async fn entries(&self, action: &str) -> Vec<Value> {
        let v = self
            .get(
                ADMIN_TOKEN,
                &format!("/v1/audit?action={action}&limit=1000"),
            )
            .await;
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action)
            .cloned()
            .collect()
    }

    /// What `/v1/http/calls` lists for `payments-admin` (calls ended and refused), oldest
    /// first.
    pub async fn listed(&self) -> Vec<Value> {
        let v = self
            .get(
                ADMIN_TOKEN,
                "/v1/http/calls?service=payments-admin&limit=1000",
            )
            .await;
        v["calls"].as_array().unwrap().clone()
    }

    /// Waits (polling the call log, which the gateway writes in batches after the response)
    /// until `n` calls that were forwarded are listed; returns them.
    pub async fn wait_calls(&self, n: usize) -> Vec<Value> {
        self.wait_listed(n, false).await
    }

    /// Likewise for calls the gateway refused.
    pub async fn wait_refused(&self, n: usize) -> Vec<Value> {
        self.wait_listed(n, true).await
    }

    async fn wait_listed(&self, n: usize, refused: bool) -> Vec<Value> {
        let start = std::time::Instant::now();
        loop {
            let calls: Vec<Value> = self
                .listed()
                .await
                .into_iter()
                .filter(|c| c["refused"] == refused)
                .collect();
            if calls.len() >= n {
                return calls;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "only {} calls (refused: {refused}) listed after 5s, wanted {n}",
                calls.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The store file, for what the API does not show (and for tampering with it).
    pub async fn db(&self) -> sqlx::SqlitePool {
        sqlx::SqlitePool::connect(&format!(
            "sqlite://{}",
            self.dir.path().join("sluice.db").display()
        ))
        .await
        .unwrap()
    }

    /// The call ids of the call log's records of `event`, in order.
    pub async fn records(&self, event: &str) -> Vec<String> {
        let db = self.db().await;
        let ids = sqlx::query_scalar(
            "SELECT call_id FROM http_calls WHERE event = $1 ORDER BY batch_seq, pos",
        )
        .bind(event)
        .fetch_all(&db)
        .await
        .unwrap();
        db.close().await;
        ids
    }
}

/// The gateway's `http_credentials_dir`: credential files named through the API.
pub fn env_credentials_dir(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("credentials")
}

fn server_config(dir: &std::path::Path) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: format!("sqlite://{}", dir.join("sluice.db").display()),
        signing_key: dir.join("audit-signing.pem"),
        admin_token: Some(SecretToken::from_presented(ADMIN_TOKEN)),
        reaper_interval: Duration::from_millis(500),
        checkpoint_interval: Duration::from_secs(3600),
        sync_interval: Duration::from_millis(200),
        db_clock: None,
        client_rate_limit: None,
        cors_origins: Default::default(),
        public_url: None,
    }
}

impl Env {
    /// A call written byte for byte on a TCP connection (HTTP/1.1), so the path reaches the
    /// gateway exactly as given: URL libraries resolve `..` and `%2e%2e` before sending.
    /// Returns the status and, for a JSON answer, its body.
    pub async fn raw(&self, token: &str, method: &str, path: &str) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.gateway).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8_lossy(&out);
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"));
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let json = head
            .to_ascii_lowercase()
            .contains("content-type: application/json")
            && !head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked");
        let v = if json {
            serde_json::from_str(body).unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        (status, v)
    }
}
