//! Token hygiene: a raw token appears nowhere but in the answer that creates it — not in the
//! database file (its bytes, write-ahead log included), not in the server's log (human or
//! JSON, at debug level), not in error bodies. The administrator token from the environment is
//! never logged.

use crate::harness::{command, free_port, ADMIN_TOKEN};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt as _;

/// Every file of the data directory, as bytes (the SQLite database, its WAL and SHM, the key).
fn data_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .expect("data dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The SHA-256 a token is stored as.
fn sha256_hex(s: &str) -> String {
    sluice_core::token::SecretToken::from_presented(s).hash()
}

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("sent");
    (r.status().as_u16(), r.text().await.expect("body"))
}

async fn no_raw_token_is_stored_logged_or_echoed(format: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = command()
        .args([
            "serve",
            "--listen",
            &addr,
            "--log-format",
            format,
            "--data-dir",
        ])
        .arg(&data)
        .env("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "debug")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sluice serve");
    let mut stderr = child.stderr.take().expect("stderr");
    let log = tokio::spawn(async move {
        let mut all = Vec::new();
        stderr.read_to_end(&mut all).await.expect("read stderr");
        String::from_utf8_lossy(&all).into_owned()
    });
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{addr}{p}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http
        .get(url("/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "sluice serve did not start");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // Use every kind of secret: an API token, a client key, a wrong guess.
    let (st, body) = send(
        &http,
        reqwest::Method::POST,
        url("/v1/policy"),
        ADMIN_TOKEN,
        Some(json!({"source": "users: [alice]\nenvironments:\n  dev: {}\n"})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = send(
        &http,
        reqwest::Method::PUT,
        url("/v1/environments/dev/flags"),
        ADMIN_TOKEN,
        Some(json!({"flags": {"f": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"}}})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let mut secrets = vec![ADMIN_TOKEN.to_owned()];
    for body in [
        json!({"principal": "alice", "name": "laptop"}),
        json!({"name": "app", "kind": "client", "environment": "dev"}),
    ] {
        let (st, created) = send(
            &http,
            reqwest::Method::POST,
            url("/v1/tokens"),
            ADMIN_TOKEN,
            Some(body),
        )
        .await;
        assert_eq!(st, 201, "{created}");
        let v: Value = serde_json::from_str(&created).expect("json");
        secrets.push(v["token"].as_str().expect("token").to_owned());
    }
    let (api, client) = (secrets[1].clone(), secrets[2].clone());
    let (st, body) = send(&http, reqwest::Method::GET, url("/v1/whoami"), &api, None).await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = send(
        &http,
        reqwest::Method::POST,
        url("/ofrep/v1/evaluate/flags/f"),
        &client,
        Some(json!({"context": {"targetingKey": "u1"}})),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    // Wrong, malformed and misplaced secrets: the errors never repeat them.
    let guess = format!("slu_api_{}", "7".repeat(64));
    secrets.push(guess.clone());
    let mut bodies = Vec::new();
    for (method, path, token) in [
        (reqwest::Method::GET, "/v1/whoami", guess.clone()),
        (reqwest::Method::GET, "/v1/whoami", format!("{guess}x")),
        (reqwest::Method::GET, "/v1/whoami", client.clone()),
        (
            reqwest::Method::POST,
            "/ofrep/v1/evaluate/flags/f",
            api.clone(),
        ),
        (reqwest::Method::GET, "/v1/audit", api.clone()),
    ] {
        let (st, body) = send(&http, method, url(path), &token, None).await;
        assert!((400..500).contains(&st), "{path}: {st} {body}");
        bodies.push(body);
    }
    // A client key in the query string, as browsers' EventSource sends it.
    let r = http
        .get(url(&format!("/ofrep/v1/events?key={guess}")))
        .send()
        .await
        .expect("sent");
    bodies.push(r.text().await.expect("body"));
    for body in &bodies {
        for s in &secrets {
            assert!(
                !body.contains(s.as_str()),
                "an error body repeats a secret: {body}"
            );
        }
    }

    // Stop cleanly, so every log line is out, then read the log and the files.
    let pid = child.id().expect("pid").to_string();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(ok.success());
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits")
        .expect("waited");
    let log = log.await.expect("log");
    assert!(
        log.contains("sluice listening"),
        "the log was captured: {log}"
    );
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "the log holds a secret:\n{log}");
    }
    // Not even a part of a generated secret (the fixed ones are runs of one digit).
    for s in [&api, &client] {
        assert!(
            !log.contains(&s[8..40]),
            "the log holds part of a secret:\n{log}"
        );
    }
    let files = data_bytes(&data);
    assert!(
        files.iter().any(|(n, _)| n == "sluice.db"),
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for s in &secrets {
        for (name, bytes) in &files {
            assert!(!contains(bytes, s), "{name} holds a raw token");
        }
    }
    // The scan sees what is stored: the API token's hash is there.
    let hash = sha256_hex(&api);
    assert!(
        files.iter().any(|(_, b)| contains(b, &hash)),
        "the stored hash of the token is found by the same scan"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_raw_token_in_the_database_human_logs_or_error_bodies() {
    no_raw_token_is_stored_logged_or_echoed("human").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_raw_token_in_the_database_json_logs_or_error_bodies() {
    no_raw_token_is_stored_logged_or_echoed("json").await;
}
