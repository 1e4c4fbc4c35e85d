//! Starts `sluice serve` as a child process and runs CLI commands against it.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

pub const ADMIN_TOKEN: &str =
    "slu_api_00000000000000000000000000000000000000000000000000000000000000ad";

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

fn command() -> Command {
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
        let addr = format!("127.0.0.1:{}", free_port());
        let child = command()
            .args(["serve", "--listen", &addr, "--data-dir"])
            .arg(data_dir)
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
