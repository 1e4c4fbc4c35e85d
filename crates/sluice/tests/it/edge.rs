//! `sluice edge` as a real process beside a real `sluice serve`: the key made with the CLI,
//! the central server killed (the edge keeps answering, even across its own restart, from
//! its sealed snapshot) and back (the edge catches up), and a tampered snapshot file refused
//! with a clear log line.

use crate::harness::{command, free_port, Serve, ADMIN_TOKEN};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Child;

const DOC: &str = r##"{"flags": {"banner": {"state": "ENABLED", "variants": {"blue": "#00f", "red": "#f00"}, "defaultVariant": "blue"}}}"##;

/// A running `sluice edge`, its log in a file; killed when dropped.
struct EdgeProc {
    addr: String,
    log: PathBuf,
    child: Child,
}

impl EdgeProc {
    async fn start(upstream: &str, key: &str, data_dir: &Path, log: &Path) -> EdgeProc {
        let addr = format!("127.0.0.1:{}", free_port());
        let out = std::fs::File::create(log).expect("log file");
        let child = command()
            .args([
                "edge",
                "--upstream",
                upstream,
                "--listen",
                &addr,
                "--data-dir",
            ])
            .arg(data_dir)
            .env("SLUICE_EDGE_KEY", key)
            .env("RUST_LOG", "info")
            .env("SLUICE_LOG_FORMAT", "human")
            .stdout(Stdio::null())
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sluice edge");
        let e = EdgeProc {
            addr,
            log: log.to_owned(),
            child,
        };
        e.wait_listening().await;
        e
    }

    async fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(self.url("/healthz")).await.is_err() {
            assert!(Instant::now() < deadline, "sluice edge did not listen");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn ready(&self) -> bool {
        reqwest::get(self.url("/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// The `banner` flag's variant, or the status when it is not 200.
    async fn banner(&self, key: &str) -> Result<String, u16> {
        let resp = reqwest::Client::new()
            .post(self.url("/ofrep/v1/evaluate/flags/banner"))
            .bearer_auth(key)
            .json(&json!({"context": {}}))
            .send()
            .await
            .expect("edge answers");
        if resp.status() != 200 {
            return Err(resp.status().as_u16());
        }
        let v: Value = resp.json().await.expect("json");
        Ok(v["variant"].as_str().unwrap_or_default().to_owned())
    }

    async fn wait_banner(&self, key: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.banner(key).await.as_deref() == Ok(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the edge never answered {want}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the snapshot is saved in `dir`.
    async fn wait_saved(&self, dir: &Path) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dir.join("edge-snapshot.json").exists() {
            assert!(
                Instant::now() < deadline,
                "no snapshot saved:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn kill(mut self) {
        self.child.kill().await.expect("kill edge");
    }
}

async fn import(s: &Serve, doc: &str) {
    let resp = reqwest::Client::new()
        .put(s.url("/v1/environments/staging/flags?create_env=true"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(doc.to_owned())
        .send()
        .await
        .expect("import");
    assert!(
        resp.status().is_success(),
        "{}",
        resp.text().await.unwrap_or_default()
    );
}

/// A central server with `banner`, an edge key and a client key made with the CLI.
async fn central(dir: &Path) -> (Serve, String, String) {
    let s = Serve::start(dir).await;
    import(&s, DOC).await;
    let edge_key = s
        .ok(
            Some(ADMIN_TOKEN),
            &[
                "tokens", "create", "--kind", "edge", "--env", "staging", "--name", "edge-1",
            ],
        )
        .await
        .trim()
        .to_owned();
    assert!(edge_key.starts_with("slu_edg_"), "{edge_key}");
    let client = s
        .ok(
            Some(ADMIN_TOKEN),
            &[
                "tokens", "create", "--kind", "client", "--env", "staging", "--name", "web",
            ],
        )
        .await
        .trim()
        .to_owned();
    (s, edge_key, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_outlives_its_upstream_and_catches_up_when_it_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let edge_dir = tempfile::tempdir().expect("tempdir");
    let (s, key, client) = central(dir.path()).await;
    let upstream = format!("http://{}", s.addr);
    let log = edge_dir.path().join("edge.log");
    let edge = EdgeProc::start(&upstream, &key, edge_dir.path(), &log).await;
    edge.wait_banner(&client, "blue").await;
    edge.wait_saved(edge_dir.path()).await;

    // The central server dies: the edge answers on.
    let addr = s.addr.clone();
    s.kill().await;
    for _ in 0..20 {
        assert_eq!(edge.banner(&client).await, Ok("blue".into()));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The edge restarts meanwhile: it answers from its saved snapshot.
    edge.kill().await;
    let edge = EdgeProc::start(&upstream, &key, edge_dir.path(), &log).await;
    assert!(edge.ready().await, "{}", edge.log());
    assert_eq!(edge.banner(&client).await, Ok("blue".into()));
    assert!(
        edge.log().contains("serving the snapshot saved in"),
        "{}",
        edge.log()
    );

    // The central server returns on its address; a change made there reaches the edge.
    let s = Serve::start_at(dir.path(), &addr, &[], &[]).await;
    import(
        &s,
        &DOC.replace(
            "\"defaultVariant\": \"blue\"",
            "\"defaultVariant\": \"red\"",
        ),
    )
    .await;
    edge.wait_banner(&client, "red").await;
    edge.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_snapshot_file_is_refused_with_a_clear_log_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let edge_dir = tempfile::tempdir().expect("tempdir");
    let (s, key, client) = central(dir.path()).await;
    let upstream = format!("http://{}", s.addr);
    let log = edge_dir.path().join("edge.log");
    let edge = EdgeProc::start(&upstream, &key, edge_dir.path(), &log).await;
    edge.wait_banner(&client, "blue").await;
    edge.wait_saved(edge_dir.path()).await;
    edge.kill().await;

    // Someone turns the banner red in the saved file.
    let file = edge_dir.path().join("edge-snapshot.json");
    let text = std::fs::read_to_string(&file).expect("saved snapshot");
    assert!(text.contains("\"defaultVariant\":\"blue\""), "{text}");
    std::fs::write(
        &file,
        text.replace("\"defaultVariant\":\"blue\"", "\"defaultVariant\":\"red\""),
    )
    .expect("write");

    // Without the upstream, the edge refuses the file and serves nothing rather than it.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let log2 = edge_dir.path().join("edge2.log");
    let edge = EdgeProc::start(&nowhere, &key, edge_dir.path(), &log2).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !edge.log().contains("refusing the saved snapshot") {
        assert!(
            Instant::now() < deadline,
            "no refusal logged:\n{}",
            edge.log()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        edge.log().contains("fails its integrity check"),
        "{}",
        edge.log()
    );
    assert!(!edge.ready().await);
    assert_eq!(edge.banner(&client).await, Err(401));
    edge.kill().await;

    // With the upstream, it syncs and seals a good file again.
    let log3 = edge_dir.path().join("edge3.log");
    let edge = EdgeProc::start(&upstream, &key, edge_dir.path(), &log3).await;
    edge.wait_banner(&client, "blue").await;
    edge.kill().await;
    drop(s);
}
