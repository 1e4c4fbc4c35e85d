//! How Sluice rides out a PostgreSQL outage, on the real clock: a server of its own on a fresh
//! database, three probers every 2 ms — an audited write (`POST /v1/requests`), an OFREP
//! evaluation, `/readyz` — then every connection cut and new ones refused
//! (`ALLOW_CONNECTIONS false` + `pg_terminate_backend`, waiting until each backend is gone) for a while, then the database back.
//! Printed per round: what each prober got during the outage, how long after the database
//! came back the first write and the first ready answer succeeded, and whether every
//! acknowledged write is in the store and the chain verifies. Medians at the end.
//!
//! Run: `bench-outage postgres://postgres@127.0.0.1:5432/test [ROUNDS] [OUTAGE_MS]`

use serde_json::{json, Value};
use sluice_core::token::SecretToken;
use sluice_server::{Server, ServerConfig};
use sluice_store::StoreOptions;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADMIN: &str = "slu_api_00000000000000000000000000000000000000000000000000000000000000ad";

const POLICY: &str = r#"
users: [dave, erin]
entitlements:
  - name: orders-db-read
    scopes:
      - resource: "db:orders"
        actions: [read]
    requesters: [dave]
    max_duration: 2h
    approval: { required: 1, approvers: [erin] }
"#;

/// What one prober saw: (when, HTTP status, stable code if any).
type Seen = Vec<(Instant, u16, String)>;

async fn probe(
    http: reqwest::Client,
    req: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    stop: Arc<AtomicBool>,
) -> Seen {
    let mut seen = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let at = Instant::now();
        let (status, code) = match req(&http).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                (status, body["code"].as_str().unwrap_or("").to_owned())
            }
            Err(_) => (0, "no answer".to_owned()),
        };
        seen.push((at, status, code));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    seen
}

/// "200 ×12, 503 unavailable ×40" for the answers started within [from, to).
fn summary(seen: &Seen, from: Instant, to: Instant) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (at, status, code) in seen {
        if *at >= from && *at < to {
            let key = if code.is_empty() || *status < 400 {
                status.to_string()
            } else {
                format!("{status} {code}")
            };
            *counts.entry(key).or_default() += 1;
        }
    }
    counts
        .iter()
        .map(|(k, n)| format!("{k} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Milliseconds from `back` to the first answer started after it with a status in `ok`.
fn recovered(seen: &Seen, back: Instant, ok: &[u16]) -> Option<f64> {
    seen.iter()
        .find(|(at, status, _)| *at >= back && ok.contains(status))
        .map(|(at, _, _)| at.duration_since(back).as_secs_f64() * 1000.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let base_url = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: bench-outage DATABASE_URL [ROUNDS] [OUTAGE_MS]"))?;
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let outage = Duration::from_millis(args.next().and_then(|a| a.parse().ok()).unwrap_or(2000));
    let admin_db = sqlx::PgPool::connect(&base_url).await?;
    let (mut write_ms, mut ready_ms) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let name = format!("sluice_outage_bench_{round}_{}", std::process::id());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin_db)
            .await?;
        let mut url = reqwest::Url::parse(&base_url)?;
        url.set_path(&name);
        let dir = tempfile::tempdir()?;
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse()?,
            database_url: url.to_string(),
            signing_key: dir.path().join("audit-signing.pem"),
            admin_token: Some(SecretToken::from_presented(ADMIN)),
            reaper_interval: Duration::from_secs(3600),
            checkpoint_interval: Duration::from_secs(3600),
            sync_interval: Duration::from_millis(100),
            db_clock: None,
            client_rate_limit: None,
            cors_origins: Default::default(),
            public_url: None,
        };
        // The defaults `sluice serve` runs with.
        let server = Server::build_with(
            config,
            StoreOptions::default(),
            Arc::new(sluice_core::SystemClock),
        )
        .await?;
        let base = format!("http://{}", server.local_addr()?);
        let running = tokio::spawn(async move {
            let _ = server.run(std::future::pending()).await;
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let post = |path: &str, token: &str, body: Value| {
            http.post(format!("{base}{path}"))
                .bearer_auth(token)
                .json(&body)
                .send()
        };
        let r = post("/v1/policy", ADMIN, json!({"source": POLICY})).await?;
        anyhow::ensure!(r.status().is_success(), "policy: {}", r.text().await?);
        let dave: Value = post(
            "/v1/tokens",
            ADMIN,
            json!({"principal": "dave", "name": "bench"}),
        )
        .await?
        .json()
        .await?;
        let dave = dave["token"].as_str().unwrap_or_default().to_owned();
        let flags = json!({"flags": {"banner": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}}});
        let r = http
            .put(format!("{base}/v1/environments/dev/flags?create_env=true"))
            .bearer_auth(ADMIN)
            .json(&flags)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "flags: {}", r.text().await?);
        let key: Value = post(
            "/v1/tokens",
            ADMIN,
            json!({"name": "web", "kind": "client", "environment": "dev"}),
        )
        .await?
        .json()
        .await?;
        let key = key["token"].as_str().unwrap_or_default().to_owned();

        let stop = Arc::new(AtomicBool::new(false));
        let writes = {
            let (base, dave) = (base.clone(), dave.clone());
            tokio::spawn(probe(
                http.clone(),
                move |h| {
                    h.post(format!("{base}/v1/requests"))
                    .bearer_auth(&dave)
                    .json(&json!({"entitlement": "orders-db-read", "duration": "1h", "reason": "outage bench"}))
                },
                stop.clone(),
            ))
        };
        let evals = {
            let (base, key) = (base.clone(), key.clone());
            tokio::spawn(probe(
                http.clone(),
                move |h| {
                    h.post(format!("{base}/ofrep/v1/evaluate/flags/banner"))
                        .bearer_auth(&key)
                        .json(&json!({"context": {"targetingKey": "u1"}}))
                },
                stop.clone(),
            ))
        };
        let ready = {
            let base = base.clone();
            tokio::spawn(probe(
                http.clone(),
                move |h| h.get(format!("{base}/readyz")),
                stop.clone(),
            ))
        };
        tokio::time::sleep(Duration::from_millis(500)).await;

        sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
            .execute(&admin_db)
            .await?;
        sqlx::query(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = $1",
        )
        .bind(&name)
        .execute(&admin_db)
        .await?;
        // From here on, every connection is gone and no new one is let in.
        let cut = Instant::now();
        tokio::time::sleep(outage).await;
        sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
            .execute(&admin_db)
            .await?;
        let back = Instant::now();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::Relaxed);
        let (writes, evals, ready) = (writes.await?, evals.await?, ready.await?);

        let acked = writes.iter().filter(|(_, s, _)| *s == 201).count();
        // Counted in the database itself: every acknowledged request must be there once
        // (one more may be, committed when its answer was cut off).
        let db = sqlx::PgPool::connect(url.as_str()).await?;
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM requests")
            .fetch_one(&db)
            .await?;
        db.close().await;
        let verify: Value = http
            .get(format!("{base}/v1/audit/verify"))
            .bearer_auth(ADMIN)
            .send()
            .await?
            .json()
            .await?;
        let w = recovered(&writes, back, &[201]);
        let r = recovered(&ready, back, &[200]);
        println!("round {round}: outage {} ms", outage.as_millis());
        println!("  during: writes {}", summary(&writes, cut, back));
        println!("          OFREP  {}", summary(&evals, cut, back));
        println!("          readyz {}", summary(&ready, cut, back));
        println!(
            "  after the database returned: first write {} ms, first ready {} ms",
            w.map_or("never".into(), |v| format!("{v:.1}")),
            r.map_or("never".into(), |v| format!("{v:.1}"))
        );
        println!(
            "  acknowledged writes {acked}, stored {stored}, chain ok: {}",
            verify["ok"]
        );
        write_ms.extend(w);
        ready_ms.extend(r);
        running.abort();
        let _ = running.await;
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&admin_db)
            .await?;
    }
    println!(
        "median over {rounds} rounds: first write {:.1} ms, first ready {:.1} ms after the database returned",
        median(write_ms),
        median(ready_ms)
    );
    Ok(())
}
