//! Starts `sluice serve` as a child process and runs CLI commands against it.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

pub const ADMIN_TOKEN: &str =
    "slu_api_00000000000000000000000000000000000000000000000000000000000000ad";

/// Two flags (one with targeting, one disabled) for the CLI tests that import a set.
pub const FLAGS: &str = r##"{
  "flags": {
    "checkout-v2": {
      "state": "ENABLED",
      "variants": {"on": true, "off": false},
      "defaultVariant": "off",
      "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", "off"]}
    },
    "banner": {
      "state": "DISABLED",
      "variants": {"blue": "#00f", "red": "#f00"},
      "defaultVariant": "blue"
    }
  }
}"##;

pub const POLICY: &str = r#"
users: [alice, bob, carol, dave]
groups:
  oncall: [alice]
  engineers: [alice, dave]
  leads: [bob, carol]
environments:
  production: { protected: true }
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
    approval: { required: 1, approvers: [group:leads] }
    reason: optional
"#;

/// Environment variables of the CLI that must not leak in from the caller's shell.
const SLUICE_VARS: [&str; 9] = [
    "SLUICE_ADDR",
    "SLUICE_TOKEN",
    "SLUICE_LISTEN",
    "SLUICE_DATA_DIR",
    "SLUICE_DATABASE_URL",
    "SLUICE_SIGNING_KEY",
    "SLUICE_CONFIG",
    "SLUICE_LOG_FORMAT",
    "SLUICE_ADMIN_TOKEN",
];

pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    for v in SLUICE_VARS {
        c.env_remove(v);
    }
    c.env("RUST_LOG", "warn").stdin(Stdio::null());
    c
}

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running `sluice serve`; killed when dropped.
pub struct Serve {
    pub addr: String,
    pub data_dir: PathBuf,
    child: Child,
}

impl Serve {
    /// Starts `sluice serve` on a free port over `data_dir` and waits for `/healthz`.
    pub async fn start(data_dir: &Path) -> Serve {
        Self::start_with(data_dir, &[]).await
    }

    /// Like [`Serve::start`], with extra `sluice serve` arguments (e.g. `--database-url`).
    pub async fn start_with(data_dir: &Path, extra: &[&str]) -> Serve {
        Self::start_with_env(data_dir, extra, &[]).await
    }

    /// Like [`Serve::start_with`], with variables set in the server's environment.
    pub async fn start_with_env(data_dir: &Path, extra: &[&str], vars: &[(&str, &str)]) -> Serve {
        let addr = format!("127.0.0.1:{}", free_port());
        Self::start_at(data_dir, &addr, extra, vars).await
    }

    /// Like [`Serve::start_with_env`], on `addr` (e.g. the address of one that was killed).
    pub async fn start_at(
        data_dir: &Path,
        addr: &str,
        extra: &[&str],
        vars: &[(&str, &str)],
    ) -> Serve {
        let addr = addr.to_owned();
        let child = command()
            .args(["serve", "--listen", &addr, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .envs(vars.iter().copied())
            .env("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN)
            .current_dir(data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sluice serve");
        let mut s = Serve {
            addr,
            data_dir: data_dir.to_owned(),
            child,
        };
        s.wait_healthy().await;
        s
    }

    async fn wait_healthy(&mut self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sluice serve exited early: {status}");
            }
            let ok = http
                .get(format!("http://{}/healthz", self.addr))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sluice serve did not become healthy"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGTERM, then waits (at most 30 s) for the process to exit; returns its status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-s", "TERM", &pid])
            .status()
            .expect("kill")
            .success();
        assert!(sent, "kill -s TERM {pid}");
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exited within 30 s of SIGTERM")
            .expect("exit status")
    }

    /// SIGKILL: no graceful shutdown, no last checkpoint.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Runs `sluice ARGS` against this server with `token` (none: no SLUICE_TOKEN at all).
    pub async fn cli(&self, token: Option<&str>, args: &[&str]) -> Run {
        let mut c = command();
        c.args(args)
            .env("SLUICE_ADDR", &self.addr)
            .current_dir(&self.data_dir);
        if let Some(t) = token {
            c.env("SLUICE_TOKEN", t);
        }
        run(c).await
    }

    /// Runs `sluice ARGS` with its standard output into a pipe nobody reads (closed before it
    /// starts, as `sluice … | head` leaves it); returns (exit success, stderr).
    pub async fn cli_into_closed_pipe(&self, token: &str, args: &[&str]) -> (bool, String) {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let mut c = command();
        c.args(args)
            .env("SLUICE_ADDR", &self.addr)
            .env("SLUICE_TOKEN", token)
            .current_dir(&self.data_dir)
            .stdout(writer)
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // `spawn`, not `output`: `output` would capture stdout instead of the closed pipe.
        let child = c.spawn().expect("spawned");
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .expect("the command finished within 30 s")
            .expect("ran");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Like [`Serve::cli`], expecting success; returns stdout.
    pub async fn ok(&self, token: Option<&str>, args: &[&str]) -> String {
        let r = self.cli(token, args).await;
        assert!(
            r.success,
            "sluice {args:?} failed:\n{}\n{}",
            r.stdout, r.stderr
        );
        r.stdout
    }

    /// Like [`Serve::ok`] with `-o json`, parsed.
    pub async fn json(&self, token: Option<&str>, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.ok(token, &all).await;
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("sluice {args:?}: not JSON ({e}): {out}"))
    }
}

/// The outcome of one CLI run.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a CLI command that needs no server, e.g. offline verification.
pub async fn offline(args: &[&str], dir: &Path) -> Run {
    let mut c = command();
    c.args(args).current_dir(dir);
    run(c).await
}

async fn run(mut c: Command) -> Run {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), c.output())
        .await
        .expect("the command finished within 30 s")
        .expect("ran");
    Run {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A fresh PostgreSQL schema for one test, as a database URL whose connections use it, or
/// `None` (with a notice) when `SLUICE_TEST_DATABASE_URL` is unset. Under `CI=true` a missing
/// URL fails the test instead.
pub async fn pg_url() -> Option<String> {
    Some(pg_schema(&pg_base()?).await)
}

/// `SLUICE_TEST_DATABASE_URL` itself, or `None` (with a notice) when it is unset; under
/// `CI=true` a missing URL fails the test instead.
pub fn pg_base() -> Option<String> {
    let Ok(base) = std::env::var("SLUICE_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but SLUICE_TEST_DATABASE_URL is not set: the PostgreSQL tests must run"
        );
        eprintln!(
            "\n*** notice: SLUICE_TEST_DATABASE_URL not set; SKIPPING a PostgreSQL test ***\n"
        );
        return None;
    };
    Some(base)
}

/// Creates a fresh schema on the server of `base` and returns `base` pointed at it.
pub async fn pg_schema(base: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Random per process (the default hasher's keys), plus a counter within it.
    let random = {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    let schema = format!("cli_{}_{random:016x}_{n}", std::process::id());
    let pool = sqlx::PgPool::connect(base)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .expect("create schema");
    pool.close().await;
    with_schema(base, &schema)
}

/// `base` with its connections' `search_path` set to `schema`.
pub fn with_schema(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// POST with a bearer token and a JSON body; (status, body or `null`).
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> (reqwest::StatusCode, Value) {
    let resp = http
        .post(url)
        .bearer_auth(token)
        .timeout(Duration::from_secs(10))
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// GET with a bearer token; (status, body or `null`).
pub async fn get_json(
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> (reqwest::StatusCode, Value) {
    let resp = http
        .get(url)
        .bearer_auth(token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

impl Serve {
    /// Applies [`POLICY`] as the administrator.
    pub async fn apply_policy(&self, http: &reqwest::Client, source: &str) {
        let (s, v) = post_json(
            http,
            &self.url("/v1/policy"),
            ADMIN_TOKEN,
            &serde_json::json!({"source": source}),
        )
        .await;
        assert_eq!(s, reqwest::StatusCode::OK, "apply policy: {v}");
    }

    /// A new API token for `principal` (made by the administrator).
    pub async fn api_token(&self, http: &reqwest::Client, principal: &str) -> String {
        let body = serde_json::json!({"principal": principal, "name": "test"});
        let (s, v) = post_json(http, &self.url("/v1/tokens"), ADMIN_TOKEN, &body).await;
        assert_eq!(s, reqwest::StatusCode::CREATED, "token: {v}");
        v["token"].as_str().expect("token").to_owned()
    }

    /// A new OFREP client key bound to `environment`.
    pub async fn client_key(&self, http: &reqwest::Client, environment: &str) -> String {
        let body = serde_json::json!({"principal": "admin", "name": "web", "kind": "client", "environment": environment});
        let (s, v) = post_json(http, &self.url("/v1/tokens"), ADMIN_TOKEN, &body).await;
        assert_eq!(s, reqwest::StatusCode::CREATED, "client key: {v}");
        v["token"].as_str().expect("token").to_owned()
    }

    /// `sluice audit public-key` of the server whose data directory is `dir`, written to
    /// `dir/audit.pub`; its path.
    pub async fn public_key_file(&self, dir: &Path) -> PathBuf {
        let data_dir = dir.to_str().expect("utf-8");
        let pem = self
            .ok(None, &["audit", "public-key", "--data-dir", data_dir])
            .await;
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
        let public = dir.join("audit.pub");
        std::fs::write(&public, &pem).expect("write key");
        public
    }

    /// `subject_id` → how many audit entries with exactly this action.
    pub async fn audit_counts(
        &self,
        http: &reqwest::Client,
        action: &str,
    ) -> std::collections::BTreeMap<String, usize> {
        let mut out = std::collections::BTreeMap::new();
        for e in self.audit_entries(http, Some(action)).await {
            if e["action"] == action {
                let id = e["subject_id"].as_str().unwrap_or_default().to_owned();
                *out.entry(id).or_insert(0) += 1;
            }
        }
        out
    }

    /// Every audit entry (or those whose action starts with `action`), in order.
    pub async fn audit_entries(&self, http: &reqwest::Client, action: Option<&str>) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = 0i64;
        for _ in 0..10_000 {
            let filter = action.map(|a| format!("&action={a}")).unwrap_or_default();
            let url = self.url(&format!("/v1/audit?after={after}&limit=1000{filter}"));
            let (s, page) = get_json(http, &url, ADMIN_TOKEN).await;
            assert_eq!(s, reqwest::StatusCode::OK, "audit: {page}");
            out.extend(page["entries"].as_array().expect("entries").iter().cloned());
            match page["next_after"].as_i64() {
                Some(n) => after = n,
                None => return out,
            }
        }
        panic!("the audit trail did not end");
    }

    /// `GET /v1/audit/verify`, asserting it is ok and that the sequence numbers of the whole
    /// trail are exactly 1..=n; returns n.
    pub async fn verify_gap_free(&self, http: &reqwest::Client) -> i64 {
        let (s, v) = get_json(http, &self.url("/v1/audit/verify"), ADMIN_TOKEN).await;
        assert_eq!(s, reqwest::StatusCode::OK, "verify: {v}");
        assert_eq!(v["ok"], true, "verify: {v}");
        // Entries may still be appended in the background (a sealed batch, an aggregated
        // refusal count) after the verify answered: compare up to the head it verified.
        let head = v["head_seq"].as_i64().expect("head_seq");
        let seqs: Vec<i64> = self
            .audit_entries(http, None)
            .await
            .iter()
            .map(|e| e["seq"].as_i64().expect("seq"))
            .filter(|seq| *seq <= head)
            .collect();
        let n = seqs.len() as i64;
        assert_eq!(
            seqs,
            (1..=n).collect::<Vec<_>>(),
            "gap-free sequence numbers"
        );
        assert_eq!(
            v["entries"].as_i64(),
            Some(n),
            "verify read every entry: {v}"
        );
        n
    }
}
