//! Shutdown that ends: SIGTERM drains for `shutdown_timeout`, cuts a request that would never
//! finish (an open event stream), signs the chain head and exits; a second signal exits at once.

use crate::harness::{command, free_port, ADMIN_TOKEN};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr};

struct Running {
    child: Child,
    addr: String,
    log: Lines<BufReader<ChildStderr>>,
    seen: String,
}

impl Running {
    async fn start(dir: &std::path::Path, shutdown_timeout: &str) -> Running {
        let config = dir.join("sluice.yaml");
        std::fs::write(&config, format!("shutdown_timeout: {shutdown_timeout}\n")).expect("config");
        let addr = format!("127.0.0.1:{}", free_port());
        let mut child = command()
            .args(["serve", "--listen", &addr, "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sluice serve");
        let log = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut r = Running {
            child,
            addr,
            log,
            seen: String::new(),
        };
        r.wait_for("sluice listening").await;
        r
    }

    /// Reads the log until a line contains `text`.
    async fn wait_for(&mut self, text: &str) {
        let read = async {
            while let Some(line) = self.log.next_line().await.expect("read stderr") {
                self.seen.push_str(&line);
                self.seen.push('\n');
                if line.contains(text) {
                    return true;
                }
            }
            false
        };
        let found = tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .unwrap_or(false);
        assert!(found, "`{text}` in the log:\n{}", self.seen);
    }

    /// An audit event stream, open (headers received) and never ending by itself.
    async fn open_stream(&self) -> reqwest::Response {
        let resp = reqwest::Client::new()
            .get(format!("http://{}/v1/audit/stream", self.addr))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("stream opened");
        assert_eq!(resp.status(), reqwest::StatusCode::OK);
        resp
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running").to_string();
        let ok = std::process::Command::new("kill")
            .args(["-s", name, &pid])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -s {name} {pid}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_for_a_bounded_time_then_cuts_signs_and_exits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Running::start(dir.path(), "1s").await;
    let stream = s.open_stream().await;
    let started = Instant::now();
    s.signal("TERM");
    s.wait_for("cutting 1 connections").await;
    s.wait_for("signed the last checkpoint").await;
    let status = tokio::time::timeout(Duration::from_secs(20), s.child.wait())
        .await
        .expect("exited")
        .expect("status");
    let took = started.elapsed();
    assert!(status.success(), "{status}\n{}", s.seen);
    assert!(
        took >= Duration::from_secs(1),
        "the stream was given its drain time: {took:?}"
    );
    drop(stream);

    // The last checkpoint covers the head: nothing is left unsigned by a clean stop.
    let url = format!("sqlite://{}", dir.path().join("data/sluice.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
    let head: i64 = sqlx::query_scalar("SELECT seq FROM audit_head WHERE id = 1")
        .fetch_one(&pool)
        .await
        .expect("head");
    let signed: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM audit_checkpoints")
        .fetch_one(&pool)
        .await
        .expect("checkpoints");
    assert!(head > 0, "the bootstrap wrote entries");
    assert_eq!(signed, Some(head), "the head is signed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Running::start(dir.path(), "10m").await;
    let _stream = s.open_stream().await;
    s.signal("TERM");
    s.wait_for("a second SIGTERM or Ctrl-C exits at once").await;
    let started = Instant::now();
    s.signal("INT");
    let status = tokio::time::timeout(Duration::from_secs(20), s.child.wait())
        .await
        .expect("exited, not after the 10-minute drain")
        .expect("status");
    assert!(!status.success(), "a forced exit says so: {status}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
