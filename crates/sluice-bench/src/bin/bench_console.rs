//! The web console: server time to render the inbox with N pending requests, and the weight of
//! every page.
//!
//! Starts the real server in process (SQLite in a temp dir, the real clock), applies a policy,
//! opens N pending requests by alice through the API, signs bob (a lead) in to the console,
//! then GETs `/ui/inbox` R times in a row on loopback and prints the median and p90 of the
//! time to the last byte, beside the same-run baseline: the API's own listing of the same
//! requests (`GET /v1/requests?status=pending&limit=N`, JSON, which the CLI reads). Then the
//! size of each page and asset.
//!
//! Run: `cargo run --release -p sluice-bench --bin bench-console -- 1000 50`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark harness")]

use serde_json::json;
use sluice_core::token::SecretToken;
use sluice_server::{Server, ServerConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADMIN: &str = "slu_api_00000000000000000000000000000000000000000000000000000000000000ad";

const POLICY: &str = r#"
users: [alice, bob]
groups:
  engineers: [alice]
  leads: [bob]
environments:
  production: { protected: true }
entitlements:
  - name: orders-db-read
    scopes:
      - resource: "db:orders"
        actions: [read]
    requesters: [group:engineers]
    max_duration: 2h
    approval: { required: 1, approvers: [group:leads] }
"#;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Times `runs` sequential GETs; (median ms, p90 ms, bytes of the last body).
async fn time_gets(
    http: &reqwest::Client,
    url: &str,
    header: (&str, &str),
    runs: usize,
) -> (f64, f64, usize) {
    let mut ms = Vec::with_capacity(runs);
    let mut bytes = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let resp = http
            .get(url)
            .header(header.0, header.1)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        bytes = resp.bytes().await.unwrap().len();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    (pct(&mut ms, 0.5), pct(&mut ms, 0.9), bytes)
}

async fn token(http: &reqwest::Client, base: &str, principal: &str) -> String {
    let v: serde_json::Value = http
        .post(format!("{base}/v1/tokens"))
        .bearer_auth(ADMIN)
        .json(&json!({"principal": principal, "name": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["token"].as_str().unwrap().to_owned()
}

/// Signs `token` in to the console; the session cookie.
async fn session(base: &str, token: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .post(format!("{base}/ui/sign-in"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let set = resp.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
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
    let flags = json!({"flags": {
        "checkout-v2": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"},
        "new-search": {"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}
    }});
    let r = http
        .put(format!(
            "{base}/v1/environments/production/flags?create_env=true"
        ))
        .bearer_auth(ADMIN)
        .json(&flags)
        .send()
        .await?;
    assert!(r.status().is_success());
    // An unprotected environment with a staged rollout and a target, so that the flags page
    // is weighed with its step chart (the administrator's standing permission allows both).
    let staging = [
        ("PUT", "staging/flags?create_env=true", flags.clone()),
        (
            "PUT",
            "staging/flags/checkout-v2/rollout",
            json!({"variant": "on", "steps": [
                {"percent": 1, "hold": "30m"}, {"percent": 10, "hold": "30m"},
                {"percent": 50, "hold": "30m"}, {"percent": 100, "hold": "30m"}]}),
        ),
        (
            "POST",
            "staging/flags/checkout-v2/targets",
            json!({"variant": "on", "keys": ["alice", "bob"], "group": "testers", "for": "2h"}),
        ),
    ];
    for (method, path, body) in staging {
        let url = format!("{base}/v1/environments/{path}");
        let req = match method {
            "PUT" => http.put(url),
            _ => http.post(url),
        };
        let r = req.bearer_auth(ADMIN).json(&body).send().await?;
        if !r.status().is_success() {
            eprintln!("{method} {path}: {} {}", r.status(), r.text().await?);
        }
    }
    let r = http
        .post(format!("{base}/v1/policy"))
        .bearer_auth(ADMIN)
        .json(&json!({"source": POLICY}))
        .send()
        .await?;
    assert!(r.status().is_success(), "{}", r.text().await?);
    let alice = token(&http, &base, "alice").await;
    let bob = token(&http, &base, "bob").await;

    // N pending requests, 16 at a time.
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (http, base, alice) = (http.clone(), base.clone(), alice.clone());
        tasks.spawn(async move {
            let r = http
                .post(format!("{base}/v1/requests"))
                .bearer_auth(&alice)
                .json(&json!({"entitlement": "orders-db-read", "duration": "30m",
                              "reason": format!("INC-{i} look at the stuck orders"), "ticket": format!("OPS-{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::CREATED);
        });
        if tasks.len() >= 16 {
            tasks.join_next().await;
        }
    }
    while tasks.join_next().await.is_some() {}
    eprintln!(
        "opened {n} pending requests in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let bob_cookie = session(&base, &bob).await;
    let admin_cookie = session(&base, ADMIN).await;
    // Warm up both paths once.
    let cookie = ("cookie", bob_cookie.as_str());
    time_gets(&http, &format!("{base}/ui/inbox"), cookie, 3).await;
    let bearer = format!("Bearer {bob}");
    let auth = ("authorization", bearer.as_str());
    let api_url = format!("{base}/v1/requests?status=pending&limit={n}");
    time_gets(&http, &api_url, auth, 3).await;

    let (ui_p50, ui_p90, ui_bytes) =
        time_gets(&http, &format!("{base}/ui/inbox"), cookie, runs).await;
    let (api_p50, api_p90, api_bytes) = time_gets(&http, &api_url, auth, runs).await;
    println!("inbox with {n} pending requests, {runs} sequential GETs each, loopback:");
    println!(
        "  /ui/inbox (HTML)          median {ui_p50:.2} ms  p90 {ui_p90:.2} ms  {ui_bytes} bytes"
    );
    println!(
        "  /v1/requests (JSON, base) median {api_p50:.2} ms  p90 {api_p90:.2} ms  {api_bytes} bytes"
    );
    println!("  ratio (median) {:.2}", ui_p50 / api_p50);

    println!("page weight (HTML as served; assets once per browser):");
    let alice_cookie = session(&base, &alice).await;
    let pages: [(&str, &str); 9] = [
        ("/ui/sign-in", ""),
        ("/ui/inbox", bob_cookie.as_str()),
        ("/ui/access", alice_cookie.as_str()),
        ("/ui/flags?env=production", alice_cookie.as_str()),
        ("/ui/flags?env=staging", admin_cookie.as_str()),
        ("/ui/audit", admin_cookie.as_str()),
        ("/ui/sessions", admin_cookie.as_str()),
        ("/ui/assets/console.css", ""),
        ("/ui/assets/console.js", ""),
    ];
    for (path, c) in pages {
        let (_, _, bytes) = time_gets(&http, &format!("{base}{path}"), ("cookie", c), 1).await;
        println!("  {path:<28} {bytes:>8} bytes");
    }
    Ok(())
}
