//! Guarded rollouts: how fast a guard pauses a rollout once the application it watches starts
//! failing. A real Prometheus (the `prometheus` binary on a loopback port, scraping every
//! second) scrapes a test application (axum on 127.0.0.1:0: request counters by status, 200
//! requests/s); the real `Server` on 127.0.0.1:0 over a temporary SQLite file reads a guard
//! (`5xx share over 4 s < 10%`, at least 10 requests) every `--interval-ms`. Each run starts a
//! rollout held at its first step, waits until its guard passes, makes every request fail, and
//! measures from (a) that moment and (b) the moment Prometheus first answers the guard's query
//! with a breach (polled every 20 ms) to the guard's `rollout.paused` entry; then lets the
//! application recover before the next run.
//!
//! Run (release): `cargo run --release -p sluice-bench --bin bench-guards -- [--runs 20]
//! [--interval-ms 1000]`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark harness")]

use serde_json::{json, Value};
use sluice_core::token::SecretToken;
use sluice_core::{Clock as _, SystemClock};
use sluice_server::checkpointer::AuditOptions;
use sluice_server::guards::GuardConfig;
use sluice_server::{Server, ServerConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str =
    "slu_api_00000000000000000000000000000000000000000000000000000000000000ad";
const ERROR_RATE: &str =
    r#"sum(rate(app_requests_total{status="500"}[4s])) / sum(rate(app_requests_total[4s]))"#;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now() -> chrono::DateTime<chrono::Utc> {
    SystemClock.now()
}

/// Counters by status at `/metrics`; 20 requests every 100 ms, `permille` of them failing.
async fn test_app(permille: Arc<AtomicU64>) -> std::net::SocketAddr {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let (o, f) = (ok.clone(), failed.clone());
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (ok, failed) = (o.load(Ordering::SeqCst), f.load(Ordering::SeqCst));
            async move {
                format!("app_requests_total{{status=\"200\"}} {ok}\napp_requests_total{{status=\"500\"}} {failed}\n")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    tokio::spawn(async move {
        loop {
            let bad = 20 * permille.load(Ordering::SeqCst) / 1000;
            failed.fetch_add(bad, Ordering::SeqCst);
            ok.fetch_add(20 - bad, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    addr
}

async fn prom_value(http: &reqwest::Client, base: &str, query: &str) -> Option<f64> {
    let v: Value = http
        .post(format!("{base}/api/v1/query"))
        .form(&[("query", query)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs = arg("--runs", 20);
    let interval = Duration::from_millis(arg("--interval-ms", 1000));
    let http = reqwest::Client::new();
    let permille = Arc::new(AtomicU64::new(0));
    let app = test_app(permille.clone()).await;

    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{app}']\n"),
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let prom_url = format!("http://127.0.0.1:{port}");
    let mut prom = std::process::Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!("cannot start `prometheus` (Debian package prometheus): {e}")
        })?;
    while prom_value(&http, &prom_url, ERROR_RATE)
        .await
        .is_none_or(f64::is_nan)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let config = ServerConfig {
        listen: "127.0.0.1:0".parse()?,
        database_url: format!("sqlite://{}", dir.path().join("sluice.db").display()),
        signing_key: dir.path().join("audit.pem"),
        admin_token: Some(SecretToken::from_presented(ADMIN_TOKEN)),
        reaper_interval: Duration::from_secs(1),
        checkpoint_interval: Duration::from_secs(60),
        sync_interval: Duration::from_millis(200),
        db_clock: None,
        client_rate_limit: None,
        cors_origins: Default::default(),
        public_url: None,
    };
    let mut server = Server::build(config, Arc::new(SystemClock)).await?;
    server.audit = AuditOptions::manual();
    server.guards = Some(GuardConfig {
        prometheus_url: prom_url.clone(),
        interval,
    });
    let base = format!("http://{}", server.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let send = |method: reqwest::Method, path: &str, body: Value| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    send(
        reqwest::Method::POST,
        "/v1/policy",
        json!({"source": "users: [alice]\n"}),
    )
    .await?;
    let flags: serde_json::Map<String, Value> = (0..runs)
        .map(|i| (format!("f{i}"), json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"})))
        .collect();
    let r = send(
        reqwest::Method::PUT,
        "/v1/environments/bench/flags?create_env=true",
        json!({"flags": flags}),
    )
    .await?;
    anyhow::ensure!(r.status().is_success(), "flags: {}", r.text().await?);

    let (mut from_failing, mut from_seen) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let key = format!("f{i}");
        let path = format!("/v1/environments/bench/flags/{key}/rollout");
        let r = send(reqwest::Method::PUT, &path, json!({"variant": "on",
            "steps": [{"percent": 10, "hold": "1h"}, {"percent": 100, "hold": "1h"}],
            "guards": [{"condition": format!("{ERROR_RATE} < 0.1"), "min_sample": "sum(increase(app_requests_total[4s])) >= 10", "on_breach": "pause"}]})).await?;
        anyhow::ensure!(r.status().is_success(), "rollout: {}", r.text().await?);
        loop {
            let v: Value = http
                .get(format!("{base}{path}"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await?
                .json()
                .await?;
            if v["guards"][0]["state"] == "passing" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Fail at a random point of the guard's interval, as a real failure would.
        tokio::time::sleep(Duration::from_millis(
            u64::from(now().timestamp_subsec_millis()) % 1000,
        ))
        .await;
        let failing = now();
        permille.store(1000, Ordering::SeqCst);
        let mut seen = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        let acted = loop {
            if seen.is_none()
                && prom_value(&http, &prom_url, ERROR_RATE)
                    .await
                    .is_some_and(|v| v >= 0.1)
            {
                seen = Some(now());
            }
            let v: Value = http
                .get(format!("{base}/v1/audit?action=rollout.paused&limit=1000"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await?
                .json()
                .await?;
            let at = v["entries"].as_array().and_then(|es| {
                es.iter()
                    .find(|e| {
                        e["resource"] == format!("flag:bench/{key}") && e["actor"] == "system:guard"
                    })
                    .and_then(|e| e["at"].as_str())
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            });
            if let Some(at) = at {
                break at.with_timezone(&chrono::Utc);
            }
            anyhow::ensure!(Instant::now() < deadline, "run {i}: no pause in 60 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let seen = seen.unwrap_or(acted);
        let a = (acted - failing).num_milliseconds() as f64;
        let b = (acted - seen).num_milliseconds() as f64;
        eprintln!(
            "run {i}: paused {a:.0} ms after failing began, {b:.0} ms after Prometheus showed it"
        );
        from_failing.push(a);
        from_seen.push(b);
        // Recover before the next run.
        permille.store(0, Ordering::SeqCst);
        while prom_value(&http, &prom_url, ERROR_RATE)
            .await
            .is_none_or(|v| v.is_nan() || v >= 0.01)
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for v in [&mut from_failing, &mut from_seen] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "guard interval {} ms, scrape 1 s, {runs} runs: from failing p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; from Prometheus showing it p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        interval.as_millis(),
        pct(&from_failing, 0.5),
        pct(&from_failing, 0.99),
        pct(&from_failing, 1.0),
        pct(&from_seen, 0.5),
        pct(&from_seen, 0.99),
        pct(&from_seen, 1.0),
    );
    let _ = stop.send(());
    let _ = handle.await;
    let _ = prom.kill();
    let _ = prom.wait();
    Ok(())
}
