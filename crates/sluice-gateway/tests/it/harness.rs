//! A Sluice server and its gateway, an upstream database with a reader and a writer role.

use serde_json::{json, Value};
use sluice_core::token::SecretToken;
use sluice_gateway::{
    DatabaseConfig, Gateway, GatewayConfig, LogMode, RoleConfig, TlsSource, UpstreamConfig,
};
use sluice_server::{App, Server, ServerConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::NoTls;

pub const ADMIN_TOKEN: &str =
    "slu_api_00000000000000000000000000000000000000000000000000000000000000ad";

/// The upstream: one database, a reader and a writer role (members of `sluice_scram`, so
/// they authenticate with SCRAM-SHA-256), and a table `orders`.
pub struct Upstream {
    pub admin_url: String,
    pub dbname: String,
    pub reader: String,
    pub writer: String,
    pub password: String,
}

fn rand_hex() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

pub async fn pg_admin(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(conn);
    client
}

/// The database and roles go when the test ends (the server is shared; runs must not pile up).
impl Drop for Upstream {
    fn drop(&mut self) {
        let status = std::process::Command::new("psql")
            .arg(&self.admin_url)
            .args(["-q", "-v", "ON_ERROR_STOP=0", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.dbname
            ))
            .arg("-c")
            .arg(format!("DROP ROLE IF EXISTS {}", self.reader))
            .arg("-c")
            .arg(format!("DROP ROLE IF EXISTS {}", self.writer))
            .stdout(std::process::Stdio::null())
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!(
                "notice: could not drop test database {} ({status:?})",
                self.dbname
            );
        }
    }
}

impl Upstream {
    /// `None` (with a notice) when PostgreSQL is not configured outside CI.
    pub async fn create() -> Option<Upstream> {
        let Ok(base) = std::env::var("SLUICE_TEST_DATABASE_URL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but SLUICE_TEST_DATABASE_URL is not set: the gateway tests must run"
            );
            eprintln!("\n*** notice: SLUICE_TEST_DATABASE_URL not set; SKIPPING the gateway tests (they need PostgreSQL) ***\n");
            return None;
        };
        let id = rand_hex();
        let up = Upstream {
            dbname: format!("gw_{id}"),
            reader: format!("gw_{id}_reader"),
            writer: format!("gw_{id}_writer"),
            password: format!("pw-{}", rand_hex()),
            admin_url: base.clone(),
        };
        let admin = pg_admin(&base).await;
        admin
            .batch_execute(&format!(
                "CREATE ROLE {r} LOGIN PASSWORD '{p}' IN ROLE sluice_scram;
                 CREATE ROLE {w} LOGIN PASSWORD '{p}' IN ROLE sluice_scram;",
                r = up.reader,
                w = up.writer,
                p = up.password,
            ))
            .await
            .expect("create roles (does the role sluice_scram exist? see .ci/run)");
        admin
            .batch_execute(&format!("CREATE DATABASE {}", up.dbname))
            .await
            .expect("create database");
        let db = pg_admin(&up.url_as_admin()).await;
        db.batch_execute(&format!(
            "REVOKE ALL ON SCHEMA public FROM PUBLIC;
             GRANT USAGE ON SCHEMA public TO {r}, {w};
             CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL);
             INSERT INTO orders (item) VALUES ('apple'), ('pear');
             GRANT SELECT ON orders TO {r};
             GRANT SELECT, INSERT ON orders TO {w};
             GRANT USAGE ON SEQUENCE orders_id_seq TO {w};",
            r = up.reader,
            w = up.writer
        ))
        .await
        .expect("create table");
        Some(up)
    }

    pub fn url_as_admin(&self) -> String {
        let base = self.admin_url.split('?').next().unwrap_or(&self.admin_url);
        let (root, _) = base.rsplit_once('/').expect("database url has a path");
        format!("{root}/{}", self.dbname)
    }

    /// Backends of this database's roles, from `pg_stat_activity`.
    pub async fn backends(&self) -> i64 {
        let admin = pg_admin(&self.admin_url).await;
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND usename IN ($2, $3)",
                &[&self.dbname, &self.reader, &self.writer],
            )
            .await
            .expect("pg_stat_activity");
        row.get(0)
    }

    /// Waits until no backend of the gateway roles is left; returns how long it took.
    pub async fn wait_no_backends(&self, within: Duration) -> Duration {
        let start = std::time::Instant::now();
        while self.backends().await > 0 {
            assert!(
                start.elapsed() < within,
                "upstream backends still there after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        start.elapsed()
    }
}

pub fn policy(db: &str) -> String {
    format!(
        r#"
users: [alice, bob, carol]
groups:
  leads: [bob]
environments:
  production: {{}}
entitlements:
  - name: orders-db-read
    scopes:
      - resource: "db:{db}"
        actions: [read]
    requesters: [alice, carol]
    max_duration: 2h
    approval: {{ required: 1, approvers: [group:leads] }}
    auto_approve: {{ requester_in: [alice, carol], max_duration: 2h }}
  - name: orders-db-write
    scopes:
      - resource: "db:{db}"
        actions: [read, write]
    requesters: [alice]
    max_duration: 2h
    approval: {{ required: 1, approvers: [group:leads] }}
    auto_approve: {{ requester_in: [alice], max_duration: 2h }}
"#
    )
}

pub struct Env {
    pub up: Upstream,
    pub http: SocketAddr,
    pub pg: SocketAddr,
    pub app: App,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub fingerprint: String,
}

/// Starts everything, or returns from the test (skip) when PostgreSQL is not available.
#[macro_export]
macro_rules! env {
    () => {
        $crate::env!(sluice_gateway::LogMode::SessionLog)
    };
    ($mode:expr) => {
        $crate::env!($mode, true)
    };
    ($mode:expr, $plaintext_loopback:expr) => {{
        let Some(up) = $crate::harness::Upstream::create().await else {
            return;
        };
        $crate::harness::Env::start(up, $mode, $plaintext_loopback).await
    }};
}

impl Env {
    pub async fn start(up: Upstream, mode: LogMode, plaintext_loopback: bool) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let env_var = format!("GW_TEST_PW_{}", up.dbname.to_uppercase());
        // The tests' own process: the variable names are unique per test.
        std::env::set_var(&env_var, &up.password);
        let pw_file = dir.path().join("writer.password");
        std::fs::write(&pw_file, format!("{}\n", up.password)).expect("password file");
        let config = server_config(dir.path());
        let server = Server::build(config, Arc::new(sluice_core::SystemClock))
            .await
            .expect("server builds");
        let http = server.local_addr().expect("bound");
        let app = server.app.clone();
        tokio::spawn(async move {
            let _ = server.run(std::future::pending()).await;
        });
        let gw = GatewayConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            databases: vec![DatabaseConfig {
                name: up.dbname.clone(),
                upstream: UpstreamConfig {
                    host: "127.0.0.1".into(),
                    port: pg_port(&up.admin_url),
                    dbname: up.dbname.clone(),
                },
                roles: vec![
                    RoleConfig {
                        action: "read".into(),
                        user: up.reader.clone(),
                        password_env: Some(env_var),
                        password_file: None,
                    },
                    RoleConfig {
                        action: "write".into(),
                        user: up.writer.clone(),
                        password_env: None,
                        password_file: Some(pw_file),
                    },
                ],
                log: mode,
                max_statement_bytes: 200,
            }],
            tls: TlsSource::SelfSigned {
                dir: dir.path().to_path_buf(),
            },
            allow_plaintext_loopback: plaintext_loopback,
        };
        let gateway = Gateway::bind(app.clone(), gw).await.expect("gateway binds");
        let pg = gateway.local_addr().expect("bound");
        let fingerprint = gateway.fingerprint.clone();
        tokio::spawn(gateway.run(std::time::Duration::from_secs(5), std::future::pending()));
        let env = Env {
            up,
            http,
            pg,
            app,
            client: reqwest::Client::new(),
            dir,
            fingerprint,
        };
        let policy = policy(&env.up.dbname);
        env.post(ADMIN_TOKEN, "/v1/policy", json!({"source": policy}), 200)
            .await;
        env
    }

    /// A second instance on the same store (and signing key), without a gateway: what an
    /// administrator reaches when the load balancer picks another instance.
    pub async fn second_instance(&self) -> SocketAddr {
        let config = server_config(self.dir.path());
        let server = Server::build(config, Arc::new(sluice_core::SystemClock))
            .await
            .expect("second instance builds");
        let http = server.local_addr().expect("bound");
        tokio::spawn(async move {
            let _ = server.run(std::future::pending()).await;
        });
        http
    }

    pub async fn post(&self, token: &str, path: &str, body: Value, want: u16) -> Value {
        let r = self
            .client
            .post(format!("http://{}{path}", self.http))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, want, "POST {path}: {v}");
        v
    }

    pub async fn get(&self, token: &str, path: &str) -> Value {
        let r = self
            .client
            .get(format!("http://{}{path}", self.http))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("json")
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
        v["token"].as_str().expect("token").to_owned()
    }

    /// Requests an (auto-approved) grant; returns its id.
    pub async fn grant(&self, token: &str, entitlement: &str, duration: &str) -> String {
        let v = self
            .post(
                token,
                "/v1/requests",
                json!({"entitlement": entitlement, "duration": duration, "reason": "test"}),
                201,
            )
            .await;
        assert_eq!(v["status"], "active", "{v}");
        v["id"].as_str().expect("id").to_owned()
    }

    /// A `tokio-postgres` connection string through the gateway (plaintext, loopback).
    pub fn conninfo(&self, user: &str, token: &str, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} password={token} dbname={dbname} sslmode=disable",
            self.pg.port()
        )
    }

    pub async fn connect(
        &self,
        user: &str,
        token: &str,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
        ),
        tokio_postgres::Error,
    > {
        let (client, conn) =
            tokio_postgres::connect(&self.conninfo(user, token, &self.up.dbname), NoTls).await?;
        Ok((client, tokio::spawn(conn)))
    }

    /// Runs `psql` through the gateway; returns (success, stdout, stderr).
    pub fn psql(
        &self,
        user: &str,
        token: &str,
        sslmode: &str,
        sql: &str,
    ) -> (bool, String, String) {
        let out = std::process::Command::new("psql")
            .arg(format!(
                "host=127.0.0.1 port={} user={user} dbname={} sslmode={sslmode}",
                self.pg.port(),
                self.up.dbname
            ))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", token)
            .env_remove("PGSERVICE")
            .output()
            .expect("psql is installed (postgresql-client)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// A server over the SQLite store and signing key in `dir` (every instance of a test shares
/// them).
fn server_config(dir: &std::path::Path) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
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

fn pg_port(url: &str) -> u16 {
    url.split('@')
        .nth(1)
        .and_then(|h| h.split('/').next())
        .and_then(|h| h.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(5432)
}

/// The SQLSTATE and message of a failed `tokio-postgres` call.
pub fn db_error(e: &tokio_postgres::Error) -> (String, String) {
    match e.as_db_error() {
        Some(d) => (d.code().code().to_owned(), d.message().to_owned()),
        None => (String::new(), e.to_string()),
    }
}
