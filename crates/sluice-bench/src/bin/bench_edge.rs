//! Time from a flag change on the central server to an SSE subscriber *of an edge* hearing
//! `refetchEvaluation`, beside a subscriber of the central server itself in the same run (the
//! baseline: what the edge adds is its hop — the change stream, a snapshot fetch, a compile).
//!
//! Starts the real server (SQLite in a temp dir, the real clock) and a real edge following it
//! over loopback HTTP, both in this process; imports one flag; subscribes to both servers'
//! `/ofrep/v1/events`; toggles the flag N times through the API. For each change it records
//! when the API call returned and when each subscriber heard of it.
//!
//! Run: `cargo run --release -p sluice-bench --bin bench-edge -- 500`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark harness")]

use serde_json::json;
use sluice_core::token::SecretToken;
use sluice_server::edge::EdgeConfig;
use sluice_server::{Server, ServerConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADMIN: &str = "slu_api_00000000000000000000000000000000000000000000000000000000000000ad";

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Waits for the next `refetchEvaluation` on an SSE response.
async fn heard(sse: &mut reqwest::Response) -> anyhow::Result<Instant> {
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(5), sse.chunk())
            .await??
            .expect("stream open");
        if String::from_utf8_lossy(&chunk).contains("refetchEvaluation") {
            return Ok(Instant::now());
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir()?;
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse()?,
        database_url: format!("sqlite://{}", dir.path().join("sluice.db").display()),
        signing_key: dir.path().join("audit-signing.pem"),
        admin_token: Some(SecretToken::from_presented(ADMIN)),
        reaper_interval: Duration::from_secs(3600),
        checkpoint_interval: Duration::from_secs(3600),
        sync_interval: Duration::from_millis(200),
        db_clock: None,
        client_rate_limit: None,
        cors_origins: Default::default(),
        public_url: None,
    };
    let server = Server::build(config, Arc::new(sluice_core::SystemClock)).await?;
    let base = format!("http://{}", server.local_addr()?);
    tokio::spawn(async move {
        server
            .run(std::future::pending())
            .await
            .expect("server runs")
    });
    let http = reqwest::Client::new();
    let flags = json!({"flags": {"checkout-v2": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}}});
    http.put(format!(
        "{base}/v1/environments/staging/flags?create_env=true"
    ))
    .bearer_auth(ADMIN)
    .json(&flags)
    .send()
    .await?
    .error_for_status()?;
    let token = |kind: &'static str| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let v: serde_json::Value = http
                .post(format!("{base}/v1/tokens"))
                .bearer_auth(ADMIN)
                .json(&json!({"name": format!("bench-{kind}"), "kind": kind, "environment": "staging"}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            anyhow::Ok(v["token"].as_str().expect("token").to_owned())
        }
    };
    let key = token("client").await?;
    let edge_key = token("edge").await?;

    let edge_dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let edge_base = format!("http://{}", listener.local_addr()?);
    let edge_config = EdgeConfig::new(
        base.clone(),
        SecretToken::from_presented(&edge_key),
        edge_dir.path().to_owned(),
        listener.local_addr()?,
    );
    tokio::spawn(sluice_server::edge::run(
        edge_config,
        Arc::new(sluice_core::SystemClock),
        listener,
        std::future::pending(),
    ));
    // Ready once it holds the environment with the key.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = http
            .post(format!("{edge_base}/ofrep/v1/evaluate/flags/checkout-v2"))
            .header("x-api-key", &key)
            .body("{}")
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the edge did not sync");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let subscribe = |url: String| {
        let http = http.clone();
        let key = key.clone();
        async move { http.get(url).header("x-api-key", key).send().await }
    };
    let mut central_sse = subscribe(format!("{base}/ofrep/v1/events")).await?;
    let mut edge_sse = subscribe(format!("{edge_base}/ofrep/v1/events")).await?;
    let (mut at_central, mut at_edge) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let enabled = i % 2 == 1;
        http.post(format!(
            "{base}/v1/environments/staging/flags/checkout-v2/changes"
        ))
        .bearer_auth(ADMIN)
        .json(&json!({"change": {"op": "set-state", "enabled": enabled}, "base_revision": i + 1}))
        .send()
        .await?
        .error_for_status()?;
        let returned = Instant::now();
        let (c, e) = tokio::join!(heard(&mut central_sse), heard(&mut edge_sse));
        at_central.push(c?.saturating_duration_since(returned).as_secs_f64() * 1000.0);
        at_edge.push(e?.saturating_duration_since(returned).as_secs_f64() * 1000.0);
    }
    let (c50, c99) = (pct(&mut at_central, 0.5), pct(&mut at_central, 0.99));
    let (e50, e99) = (pct(&mut at_edge, 0.5), pct(&mut at_edge, 0.99));
    println!("changes: {n}");
    println!("event at a central subscriber after the API call returned: p50 {c50:.3} ms, p99 {c99:.3} ms");
    println!("event at an edge subscriber after the API call returned:   p50 {e50:.3} ms, p99 {e99:.3} ms");
    println!(
        "edge / central: p50 {:.1}x, p99 {:.1}x",
        e50 / c50.max(1e-9),
        e99 / c99.max(1e-9)
    );
    Ok(())
}
