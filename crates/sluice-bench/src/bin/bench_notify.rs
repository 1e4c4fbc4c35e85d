//! Notifications: (1) the outbox's delivery lag — from the audited change (its entry's
//! timestamp, in the webhook body) to the receiver having the signed webhook — at a steady
//! rate of access requests; (2) what notifications cost an audited write: requests opened over
//! HTTP by concurrent clients, against a server with one webhook sink and against one without,
//! alternating, in the same run. The real `Server` on 127.0.0.1:0 over a temporary SQLite file,
//! the real clock, a real receiver (axum) on 127.0.0.1:0.
//!
//! Run (release): `cargo run --release -p sluice-bench --bin bench-notify -- [--rate 100]
//! [--secs 10] [--writes 2000] [--tasks 16] [--runs 3]`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark harness")]

use anyhow::ensure;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{json, Value};
use sluice_core::token::SecretToken;
use sluice_core::{Clock as _, SystemClock};
use sluice_server::checkpointer::AuditOptions;
use sluice_server::notify::config::webhook_key;
use sluice_server::notify::{NotifyConfig, Sink, SinkKind};
use sluice_server::{Server, ServerConfig};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str =
    "slu_api_00000000000000000000000000000000000000000000000000000000000000ad";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const REQUESTERS: usize = 32;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn policy() -> String {
    let mut y = String::from("users:\n");
    for i in 0..REQUESTERS {
        writeln!(y, "  - eng-{i}").unwrap();
    }
    y.push_str("  - lead\ngroups:\n  engineers:\n");
    for i in 0..REQUESTERS {
        writeln!(y, "    - eng-{i}").unwrap();
    }
    y.push_str(
        "entitlements:\n  - name: team-flags\n    scopes:\n      - resource: \"flag:production/**\"\n        actions: [toggle]\n    requesters: [group:engineers]\n    max_duration: 8h\n    approval: { required: 1, approvers: [lead] }\n    reason: optional\n    pending_ttl: 24h\n",
    );
    y
}

/// Lags (ms) of the webhooks received.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<f64>>>);

async fn receive(State(r): State<Receiver>, body: String) -> StatusCode {
    let now = SystemClock.now();
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    if let Some(at) = v["timestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    {
        let lag = (now - at.with_timezone(&chrono::Utc))
            .num_microseconds()
            .unwrap_or(0);
        r.0.lock().unwrap().push(lag as f64 / 1000.0);
    }
    StatusCode::NO_CONTENT
}

struct Running {
    base: String,
    tokens: Vec<String>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start(notify: Option<NotifyConfig>) -> anyhow::Result<Running> {
    let dir = tempfile::tempdir()?;
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse()?,
        database_url: format!("sqlite://{}", dir.path().join("sluice.db").display()),
        signing_key: dir.path().join("audit-signing.pem"),
        admin_token: Some(SecretToken::from_presented(ADMIN_TOKEN)),
        reaper_interval: Duration::from_secs(3600),
        checkpoint_interval: Duration::from_secs(3600),
        sync_interval: Duration::from_millis(200),
        db_clock: None,
        client_rate_limit: None,
        cors_origins: Default::default(),
        public_url: None,
    };
    let mut server = Server::build(config, Arc::new(SystemClock)).await?;
    server.audit = AuditOptions::default();
    server.notify = notify;
    let base = format!("http://{}", server.local_addr()?);
    let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        server
            .run(async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
    });
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/v1/policy"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"source": policy()}))
        .send()
        .await?;
    ensure!(r.status().is_success(), "policy: {}", r.text().await?);
    let mut tokens = Vec::new();
    for i in 0..REQUESTERS {
        let v: Value = http
            .post(format!("{base}/v1/tokens"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"principal": format!("eng-{i}"), "name": "bench"}))
            .send()
            .await?
            .json()
            .await?;
        tokens.push(v["token"].as_str().unwrap_or_default().to_owned());
    }
    Ok(Running {
        base,
        tokens,
        shutdown,
        handle,
        _dir: dir,
    })
}

async fn open(http: &reqwest::Client, base: &str, token: &str) {
    let r = http
        .post(format!("{base}/v1/requests"))
        .bearer_auth(token)
        .json(&json!({"entitlement": "team-flags", "duration": "1h", "reason": "bench"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Writes per second: `writes` requests opened by `tasks` clients.
async fn throughput(s: &Running, writes: usize, tasks: usize) -> f64 {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut all = Vec::new();
    for t in 0..tasks {
        let (next, base, token) = (
            next.clone(),
            s.base.clone(),
            s.tokens[t % REQUESTERS].clone(),
        );
        all.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < writes {
                open(&http, &base, &token).await;
            }
        }));
    }
    for t in all {
        t.await.unwrap();
    }
    writes as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rate = arg("--rate", 100);
    let secs = arg("--secs", 10);
    let writes = arg("--writes", 2000);
    let tasks = arg("--tasks", 16);
    let runs = arg("--runs", 3);

    let rx = Receiver::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let notify = NotifyConfig {
        sinks: vec![Sink {
            name: "hook".into(),
            kind: SinkKind::Webhook,
            url,
            key: Some(webhook_key(SECRET).map_err(anyhow::Error::msg)?),
            events: Vec::new(),
            entitlements: Vec::new(),
            environments: Vec::new(),
            recipients: Vec::new(),
        }],
        ..NotifyConfig::default()
    };

    // (1) Lag at a steady rate.
    let on = start(Some(notify.clone())).await?;
    let total = rate * secs;
    let http = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let mut sent = Vec::new();
    for i in 0..total {
        tick.tick().await;
        let (http, base, token) = (
            http.clone(),
            on.base.clone(),
            on.tokens[i % REQUESTERS].clone(),
        );
        sent.push(tokio::spawn(
            async move { open(&http, &base, &token).await },
        ));
    }
    for s in sent {
        s.await?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while rx.0.lock().unwrap().len() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut lags = rx.0.lock().unwrap().clone();
    ensure!(
        lags.len() >= total,
        "only {} of {total} delivered",
        lags.len()
    );
    lags.sort_by(f64::total_cmp);
    println!(
        "delivery lag at {rate} events/s for {secs} s ({} webhooks): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lags.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags[lags.len() - 1]
    );

    // (2) The cost of an audited write with notifications on vs off, alternating.
    let off = start(None).await?;
    // Warm both.
    throughput(&on, 200, tasks).await;
    throughput(&off, 200, tasks).await;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for r in 0..runs {
        let w = throughput(&on, writes, tasks).await;
        let wo = throughput(&off, writes, tasks).await;
        println!(
            "run {r}: notifications on {w:.0} writes/s, off {wo:.0} writes/s, ratio {:.2}",
            w / wo
        );
        with.push(w);
        without.push(wo);
    }
    with.sort_by(f64::total_cmp);
    without.sort_by(f64::total_cmp);
    let (w, wo) = (with[with.len() / 2], without[without.len() / 2]);
    println!(
        "median of {runs}: on {w:.0}/s, off {wo:.0}/s: on/off = {:.2} ({writes} requests opened over HTTP by {tasks} clients, each one audited write and, when on, one webhook)",
        w / wo
    );
    for s in [on, off] {
        let _ = s.shutdown.send(());
        let _ = s.handle.await;
    }
    Ok(())
}
