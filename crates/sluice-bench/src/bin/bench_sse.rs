//! Time from a flag change to an SSE subscriber hearing `refetchEvaluation`.
//!
//! Starts the real server in process (SQLite in a temp dir, the real clock), imports one flag,
//! subscribes to `/ofrep/v1/events` with a client key, then toggles the flag N times through
//! the HTTP API. For each change it records when the API call was sent, when it returned, and
//! when the event arrived; prints p50/p99 of (event − return) and (event − sent).
//!
//! Run: `cargo run --release -p sluice-bench --bin bench-sse -- 1000`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark harness")]

use serde_json::json;
use sluice_core::token::SecretToken;
use sluice_server::{Server, ServerConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADMIN: &str = "slu_api_00000000000000000000000000000000000000000000000000000000000000ad";

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
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
    let key: serde_json::Value = http
        .post(format!("{base}/v1/tokens"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "bench", "kind": "client", "environment": "staging"}))
        .send()
        .await?
        .json()
        .await?;
    let key = key["token"].as_str().expect("client key").to_owned();
    let mut sse = http
        .get(format!("{base}/ofrep/v1/events"))
        .header("x-api-key", &key)
        .send()
        .await?;
    let (mut after_return, mut after_send) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let enabled = i % 2 == 1;
        let sent = Instant::now();
        http.post(format!(
            "{base}/v1/environments/staging/flags/checkout-v2/changes"
        ))
        .bearer_auth(ADMIN)
        .json(&json!({"change": {"op": "set-state", "enabled": enabled}, "base_revision": i + 1}))
        .send()
        .await?
        .error_for_status()?;
        let returned = Instant::now();
        loop {
            let chunk = tokio::time::timeout(Duration::from_secs(5), sse.chunk())
                .await??
                .expect("stream open");
            if String::from_utf8_lossy(&chunk).contains("refetchEvaluation") {
                break;
            }
        }
        let got = Instant::now();
        after_return.push(got.saturating_duration_since(returned).as_secs_f64() * 1000.0);
        after_send.push(got.duration_since(sent).as_secs_f64() * 1000.0);
    }
    println!("changes: {n}");
    println!(
        "event after the API call returned: p50 {:.3} ms, p99 {:.3} ms",
        pct(&mut after_return, 0.5),
        pct(&mut after_return, 0.99)
    );
    println!(
        "event after the API call was sent:  p50 {:.3} ms, p99 {:.3} ms",
        pct(&mut after_send, 0.5),
        pct(&mut after_send, 0.99)
    );
    Ok(())
}
