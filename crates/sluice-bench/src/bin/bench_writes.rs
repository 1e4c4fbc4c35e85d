//! Audited writes per second: request + approve pairs through the real `Server` on
//! 127.0.0.1:0 over a temporary SQLite file (WAL, fsynced before any writer is answered; see
//! `sluice-store/src/batch.rs`), driven through `App` directly and over HTTP, at several
//! concurrencies; then the cost of each part of the write path (fsync, the statements, token
//! lookup, `App::refresh` against the number of live grants) and what batching commits buys.
//!
//! Run (release): `cargo run --release -p sluice-bench --bin bench-writes -- [--pairs N] [--runs R] [--only throughput|breakdown|sqlite|checkpoints] [--path direct|http] [--tasks 1,8,32]`
//! The database lives under `$TMPDIR` (default `/tmp`): put it on the disk you mean to measure.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark harness")]

use anyhow::{anyhow, ensure, Context as _};
use chrono::TimeDelta;
use serde_json::{json, Value};
use sluice_core::access::{AccessRequest, Origin, RequestInput, RequestStatus, Vote};
use sluice_core::decision::AccessSnapshot;
use sluice_core::duration::Duration as SDuration;
use sluice_core::policy::Policy;
use sluice_core::token::SecretToken;
use sluice_core::{Clock as _, SystemClock};
use sluice_server::auth::authenticate;
use sluice_server::caller::Caller;
use sluice_server::checkpointer::AuditOptions;
use sluice_server::{App, Server, ServerConfig};
use sluice_store::NewEntry;
use sqlx::{Connection, Executor};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

const ADMIN_TOKEN: &str =
    "slu_api_00000000000000000000000000000000000000000000000000000000000000ad";
const REQUESTERS: usize = 64;
const LEADS: usize = 8;

fn policy_yaml() -> String {
    let mut y = String::from("users:\n");
    for i in 0..REQUESTERS {
        writeln!(y, "  - eng-{i}").unwrap();
    }
    for i in 0..LEADS {
        writeln!(y, "  - lead-{i}").unwrap();
    }
    y.push_str("groups:\n  engineers:\n");
    for i in 0..REQUESTERS {
        writeln!(y, "    - eng-{i}").unwrap();
    }
    y.push_str("  leads:\n");
    for i in 0..LEADS {
        writeln!(y, "    - lead-{i}").unwrap();
    }
    y.push_str(
        r#"entitlements:
  - name: team-flags
    scopes:
      - resource: "flag:production/**"
        actions: [toggle]
    requesters: [group:engineers]
    max_duration: 8h
    approval: { required: 1, approvers: [group:leads] }
    reason: optional
"#,
    );
    y
}

struct Bench {
    app: App,
    base: String,
    http: reqwest::Client,
    /// (token, caller)
    requesters: Vec<(String, Caller)>,
    leads: Vec<(String, Caller)>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Bench {
    async fn start() -> anyhow::Result<Bench> {
        Self::start_with(AuditOptions::manual()).await
    }

    /// With `audit`'s checkpoints (the plain [`Bench::start`] signs none while it runs).
    async fn start_with(audit: AuditOptions) -> anyhow::Result<Bench> {
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
        let mut server = Server::build(config, Arc::new(sluice_core::SystemClock)).await?;
        server.audit = audit;
        let addr = server.local_addr()?;
        let app = server.app.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            server
                .run(async {
                    let _ = rx.await;
                })
                .await
                .expect("server runs");
        });
        let mut b = Bench {
            app,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            requesters: Vec::new(),
            leads: Vec::new(),
            shutdown: Some(tx),
            handle: Some(handle),
            _dir: dir,
        };
        let (s, v) = b
            .post(ADMIN_TOKEN, "/v1/policy", json!({"source": policy_yaml()}))
            .await?;
        ensure!(s == 200, "apply policy: {s} {v}");
        for i in 0..REQUESTERS {
            let c = b.caller(&format!("eng-{i}")).await?;
            b.requesters.push(c);
        }
        for i in 0..LEADS {
            let c = b.caller(&format!("lead-{i}")).await?;
            b.leads.push(c);
        }
        Ok(b)
    }

    async fn caller(&self, principal: &str) -> anyhow::Result<(String, Caller)> {
        let (s, v) = self
            .post(
                ADMIN_TOKEN,
                "/v1/tokens",
                json!({"principal": principal, "name": "bench"}),
            )
            .await?;
        ensure!(s == 201, "token: {s} {v}");
        let token = v["token"].as_str().context("token")?.to_owned();
        let caller = authenticate(&self.app, Some(SecretToken::from_presented(&token)))
            .await
            .map_err(|e| anyhow!("{e}"))?;
        Ok((token, Caller::clone(&caller)))
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let s = resp.status().as_u16();
        let v = resp.json::<Value>().await.unwrap_or(Value::Null);
        Ok((s, v))
    }

    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        self.app.store.close().await;
    }
}

fn input() -> RequestInput {
    RequestInput {
        entitlement: "team-flags".into(),
        scopes: None,
        duration: Some(SDuration::from_secs(3600)),
        reason: "bench".into(),
        ticket: None,
        break_glass: false,
    }
}

/// One request + approve pair through `App`.
async fn pair_direct(app: &App, requester: &Caller, lead: &Caller) -> anyhow::Result<()> {
    let r = app
        .open_request(requester, input(), None)
        .await
        .map_err(|e| anyhow!("open: {e}"))?;
    let (r, _) = app
        .vote(lead, &r.id, true, String::new())
        .await
        .map_err(|e| anyhow!("vote: {e}"))?;
    ensure!(r.status == RequestStatus::Active, "not activated");
    Ok(())
}

/// One request + approve pair over HTTP.
async fn pair_http(b: &Bench, requester: &str, lead: &str) -> anyhow::Result<()> {
    let (s, v) = b
        .post(
            requester,
            "/v1/requests",
            json!({"entitlement": "team-flags", "duration": "1h", "reason": "bench"}),
        )
        .await?;
    ensure!(s == 201, "request: {s} {v}");
    let id = v["id"].as_str().context("id")?;
    let (s, v) = b
        .post(
            lead,
            &format!("/v1/requests/{id}/approve"),
            json!({"comment": ""}),
        )
        .await?;
    ensure!(s == 200, "approve: {s} {v}");
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Direct,
    Http,
}

struct RunResult {
    pairs_per_s: f64,
    first_quarter: f64,
    last_quarter: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `pairs` pairs with `conc` tasks; returns throughput, the rate over the first and last
/// quarter of completions (the live-grant count grows by one per pair), and pair latency.
async fn run(b: Arc<Bench>, mode: Mode, conc: usize, pairs: usize) -> anyhow::Result<RunResult> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..conc {
        let (b, next) = (b.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut done: Vec<(f64, f64)> = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= pairs {
                    break;
                }
                let (rt, rc) = &b.requesters[i % REQUESTERS];
                let (lt, lc) = &b.leads[t % LEADS];
                let t0 = Instant::now();
                match mode {
                    Mode::Direct => pair_direct(&b.app, rc, lc).await?,
                    Mode::Http => pair_http(&b, rt, lt).await?,
                }
                done.push((
                    start.elapsed().as_secs_f64(),
                    t0.elapsed().as_secs_f64() * 1e3,
                ));
            }
            anyhow::Ok(done)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let total = start.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let q = pairs / 4;
    let first_quarter = q as f64 / all[q - 1].0;
    let last_quarter = q as f64 / (all[pairs - 1].0 - all[pairs - 1 - q].0);
    let mut lat: Vec<f64> = all.iter().map(|x| x.1).collect();
    lat.sort_by(f64::total_cmp);
    Ok(RunResult {
        pairs_per_s: pairs as f64 / total,
        first_quarter,
        last_quarter,
        p50_ms: lat[lat.len() / 2],
        p99_ms: lat[(lat.len() * 99) / 100],
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median wall time of `n` calls, in microseconds.
async fn time_us<F, Fut, T>(n: usize, mut f: F) -> anyhow::Result<f64>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        std::hint::black_box(f(i).await?);
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(median(v))
}

async fn throughput(
    pairs: usize,
    runs: usize,
    modes: &[Mode],
    concs: &[usize],
) -> anyhow::Result<()> {
    println!("## throughput: {pairs} request+approve pairs per run, fresh database per run, {runs} runs, medians");
    println!("| path | tasks | pairs/s | first 1/4 | last 1/4 | pair p50 ms | pair p99 ms |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for &mode in modes {
        for &conc in concs {
            let mut rs = Vec::new();
            for _ in 0..runs {
                let b = Arc::new(Bench::start().await?);
                rs.push(run(b.clone(), mode, conc, pairs).await?);
                if let Ok(b) = Arc::try_unwrap(b) {
                    b.stop().await;
                }
            }
            let m = |f: fn(&RunResult) -> f64| median(rs.iter().map(f).collect());
            println!(
                "| {mode:?} | {conc} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} |",
                m(|r| r.pairs_per_s),
                m(|r| r.first_quarter),
                m(|r| r.last_quarter),
                m(|r| r.p50_ms),
                m(|r| r.p99_ms),
            );
        }
    }
    Ok(())
}

/// Writes/s with a checkpoint after every commit (no gap, and at most one a second) against
/// none while running (the 60 s timer never fires in a run), alternating the three on fresh
/// databases in the same run; also how many checkpoints the signing runs wrote per pair.
async fn checkpoint_cost(
    pairs: usize,
    runs: usize,
    modes: &[Mode],
    concs: &[usize],
) -> anyhow::Result<()> {
    println!("## checkpoint per commit: {pairs} request+approve pairs per run, fresh database per run, {runs} runs of each, alternating, medians");
    println!("| path | tasks | none pairs/s | every commit pairs/s (ratio, checkpoints/pair) | gap 1 s pairs/s (ratio, checkpoints/pair) |");
    println!("| --- | --- | --- | --- | --- |");
    let variants = [
        AuditOptions::manual(),
        AuditOptions {
            min_gap: Duration::ZERO,
            ..AuditOptions::default()
        },
        AuditOptions {
            min_gap: Duration::from_secs(1),
            ..AuditOptions::default()
        },
    ];
    for &mode in modes {
        for &conc in concs {
            let mut rate: [Vec<f64>; 3] = Default::default();
            let mut per_pair: [Vec<f64>; 3] = Default::default();
            for _ in 0..runs {
                for (i, audit) in variants.iter().enumerate() {
                    let b = Arc::new(Bench::start_with(audit.clone()).await?);
                    let before = b.app.store.checkpoints().await?.len();
                    let r = run(b.clone(), mode, conc, pairs).await?;
                    let made = b.app.store.checkpoints().await?.len() - before;
                    rate[i].push(r.pairs_per_s);
                    per_pair[i].push(made as f64 / pairs as f64);
                    if let Ok(b) = Arc::try_unwrap(b) {
                        b.stop().await;
                    }
                }
            }
            let [none, every, gap] = rate.map(median);
            let [_, every_n, gap_n] = per_pair.map(median);
            println!(
                "| {mode:?} | {conc} | {none:.0} | {every:.0} ({:.2}, {every_n:.2}) | {gap:.0} ({:.2}, {gap_n:.3}) |",
                every / none,
                gap / none,
            );
        }
    }
    Ok(())
}

fn active_request(i: usize, requester: &str, lead: &str) -> AccessRequest {
    let now = SystemClock.now();
    AccessRequest {
        id: format!("req-bulk-{i:08}"),
        requester: requester.into(),
        entitlement: "team-flags".into(),
        scopes: vec![serde_json::from_value(
            json!({"resource": format!("flag:production/team-{i}-*"), "actions": ["toggle"]}),
        )
        .unwrap()],
        duration: SDuration::from_secs(8 * 3600),
        reason: "bench".into(),
        ticket: None,
        status: RequestStatus::Active,
        origin: Origin::Approval,
        extends: None,
        created_at: now,
        pending_until: now + TimeDelta::hours(1),
        starts_at: Some(now),
        expires_at: Some(now + TimeDelta::hours(8)),
        votes: vec![Vote {
            approver: lead.into(),
            approve: true,
            comment: String::new(),
            at: now,
        }],
        ended_at: None,
        ended_by: None,
        end_reason: None,
        needs_review: false,
        reviewed_by: None,
    }
}

/// Adds live grants straight into the store, 500 per transaction (setup only).
async fn populate(b: &Bench, from: usize, to: usize) -> anyhow::Result<()> {
    let mut i = from;
    while i < to {
        let mut tx = b.app.store.begin().await?;
        let end = (i + 500).min(to);
        for k in i..end {
            let r = active_request(k, &format!("eng-{}", k % REQUESTERS), "lead-0");
            tx.insert_request(&r).await?;
        }
        tx.audit(SystemClock.now(), NewEntry::new("bench", "bench.populate"))
            .await?;
        tx.commit().await?;
        i = end;
    }
    Ok(())
}

/// The statements of `k` request+approve pairs in one transaction (one fsync): what group
/// commit would cost per pair, without any snapshot refresh.
async fn grouped_pairs(b: &Bench, k: usize, seq: &mut usize) -> anyhow::Result<()> {
    let now = SystemClock.now();
    let mut tx = b.app.store.begin().await?;
    for _ in 0..k {
        *seq += 1;
        let mut r = active_request(*seq + 10_000_000, "eng-0", "lead-0");
        r.id = format!("req-group-{seq:08}");
        r.status = RequestStatus::Pending;
        let v = r.votes.pop().context("vote")?;
        tx.insert_request(&r).await?;
        tx.audit(
            now,
            NewEntry::new("eng-0", "access.requested").details(json!({"bench": true})),
        )
        .await?;
        let mut r = tx.lock_request(&r.id).await?.context("locked")?;
        r.status = RequestStatus::Active;
        r.votes.push(v.clone());
        tx.audit(
            now,
            NewEntry::new("lead-0", "access.approved").details(json!({"bench": true})),
        )
        .await?;
        tx.audit(
            now,
            NewEntry::new("system:policy", "access.granted").details(json!({"bench": true})),
        )
        .await?;
        tx.insert_vote(&r.id, &v).await?;
        tx.update_request(&r).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn breakdown() -> anyhow::Result<()> {
    let b = Arc::new(Bench::start().await?);
    let app = b.app.clone();
    let (rt, rc) = b.requesters[0].clone();
    let (_, lc) = b.leads[0].clone();
    println!("## write path, part by part (one task, medians)");
    let n = 300;
    let commit = time_us(n, |_| async {
        let mut tx = app.store.begin().await?;
        tx.audit(SystemClock.now(), NewEntry::new("bench", "bench.noop"))
            .await?;
        tx.commit().await?;
        anyhow::Ok(())
    })
    .await?;
    println!(
        "- empty audited transaction (lock head, 1 audit entry, commit + fsync): {commit:.0} µs"
    );
    let auth = time_us(2000, |_| async {
        authenticate(&app, Some(SecretToken::from_presented(&rt)))
            .await
            .map_err(|e| anyhow!("{e}"))
    })
    .await?;
    println!("- authenticate (token hash → token row → principal): {auth:.1} µs");
    let mut ids = Vec::new();
    let open = {
        let mut v = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            let r = app
                .open_request(&rc, input(), None)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            v.push(t.elapsed().as_secs_f64() * 1e6);
            ids.push(r.id);
        }
        median(v)
    };
    println!("- open_request (pending, no refresh): {open:.0} µs");
    let vote = time_us(n, |i| {
        let (app, lc, id) = (app.clone(), lc.clone(), ids[i].clone());
        async move {
            app.vote(&lc, &id, true, String::new())
                .await
                .map_err(|e| anyhow!("{e}"))
        }
    })
    .await?;
    println!("- vote → active (commit + App::refresh), 0–{n} live grants: {vote:.0} µs");

    println!();
    println!("### App::refresh and the pair against the number of live grants");
    println!("| live grants | refresh | state_revs | current_policy | principals | active_requests (SQL + JSON) | Policy::from_yaml | AccessSnapshot::build | open_request | vote (incl. refresh) | pairs/s, 1 task | pairs/s, 8 tasks |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut have = n;
    let mut bulk = 0;
    for target in [300usize, 1_000, 2_500, 5_000, 10_000] {
        if target > have {
            populate(&b, bulk, bulk + target - have).await?;
            bulk += target - have;
            have = target;
        }
        app.refresh().await.map_err(|e| anyhow!("{e}"))?;
        let live = app.access.load().grant_count();
        let reps = 15;
        let refresh = time_us(reps, |_| async {
            app.refresh().await.map_err(|e| anyhow!("{e}"))
        })
        .await?;
        let revs = time_us(reps, |_| async { Ok(app.store.state_revs().await?) }).await?;
        let pol = time_us(reps, |_| async { Ok(app.store.current_policy().await?) }).await?;
        let prin = time_us(reps, |_| async { Ok(app.store.principals().await?) }).await?;
        let act = time_us(reps, |_| async { Ok(app.store.active_requests().await?) }).await?;
        let src = app.store.current_policy().await?.context("policy")?.1;
        let parse = time_us(reps, |_| {
            let src = src.clone();
            async move { Policy::from_yaml(&src).map_err(|e| anyhow!("{e}")) }
        })
        .await?;
        let policy = Arc::new(Policy::from_yaml(&src).map_err(|e| anyhow!("{e}"))?);
        let principals = app.store.principals().await?;
        // As the store's cache of active requests holds them.
        let active: Vec<Arc<_>> = app
            .store
            .active_requests()
            .await?
            .into_iter()
            .map(Arc::new)
            .collect();
        let build = time_us(reps, |_| {
            let p = policy.clone();
            let (pr, ac) = (&principals, &active);
            async move {
                Ok(AccessSnapshot::build(
                    p,
                    pr.iter().map(|p| p.name.as_str()),
                    ac.iter().cloned(),
                ))
            }
        })
        .await?;
        // Pairs at this size: 50 with one task (open and vote timed apart), then 8 tasks.
        let mut opens = Vec::new();
        let mut votes = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let r = app
                .open_request(&rc, input(), None)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            opens.push(t.elapsed().as_secs_f64() * 1e6);
            let t = Instant::now();
            app.vote(&lc, &r.id, true, String::new())
                .await
                .map_err(|e| anyhow!("{e}"))?;
            votes.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let pairs1 = 50.0 / ((opens.iter().sum::<f64>() + votes.iter().sum::<f64>()) / 1e6);
        let r8 = run(b.clone(), Mode::Direct, 8, 200).await?;
        have += 250;
        println!(
            "| {live} | {:.2} ms | {:.0} µs | {:.0} µs | {:.0} µs | {:.2} ms | {:.2} ms | {:.2} ms | {:.0} µs | {:.2} ms | {:.0} | {:.0} |",
            refresh / 1e3,
            revs,
            pol,
            prin,
            act / 1e3,
            parse / 1e3,
            build / 1e3,
            median(opens),
            median(votes) / 1e3,
            pairs1,
            r8.pairs_per_s,
        );
    }

    println!();
    println!("### group commit, estimated: the SQL of K pairs in one transaction (one fsync), no refresh");
    println!("| pairs per commit | pairs/s |");
    println!("| --- | --- |");
    let mut seq = 0usize;
    for k in [1usize, 8, 32] {
        let rounds = (1600 / k).max(50);
        let t = Instant::now();
        for _ in 0..rounds {
            grouped_pairs(&b, k, &mut seq).await?;
        }
        let rate = (rounds * k) as f64 / t.elapsed().as_secs_f64();
        println!("| {k} | {rate:.0} |");
    }
    if let Ok(b) = Arc::try_unwrap(b) {
        b.stop().await;
    }
    Ok(())
}

/// The floor under any durable write: a one-row INSERT + COMMIT on a bare SQLite file in WAL
/// mode, by `synchronous` level. No Sluice code involved.
async fn sqlite_floor() -> anyhow::Result<()> {
    println!("## bare SQLite commit (WAL, one-row insert per transaction, 1,000 commits, median)");
    println!("| synchronous | µs per commit | commits/s |");
    println!("| --- | --- | --- |");
    for level in ["FULL", "NORMAL", "OFF"] {
        let dir = tempfile::tempdir()?;
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("floor.db").display()
        );
        let mut c = sqlx::SqliteConnection::connect(&url).await?;
        c.execute("PRAGMA journal_mode = WAL").await?;
        c.execute(format!("PRAGMA synchronous = {level}").as_str())
            .await?;
        c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
            .await?;
        let mut v = Vec::new();
        for i in 0..1000i64 {
            let t = Instant::now();
            let mut tx = c.begin().await?;
            sqlx::query("INSERT INTO t (id, body) VALUES (?, ?)")
                .bind(i)
                .bind("x".repeat(400))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            v.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let m = median(v);
        println!("| {level} | {m:.0} | {:.0} |", 1e6 / m);
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let pairs: usize = arg("--pairs")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1000);
    let runs: usize = arg("--runs").map(|s| s.parse()).transpose()?.unwrap_or(3);
    let only = arg("--only");
    ensure!(pairs >= 8 && runs >= 1, "--pairs ≥ 8, --runs ≥ 1");
    let concs: Vec<usize> = arg("--tasks")
        .unwrap_or_else(|| "1,8,32".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let modes: Vec<Mode> = match arg("--path").as_deref() {
        None => vec![Mode::Direct, Mode::Http],
        Some("direct") => vec![Mode::Direct],
        Some("http") => vec![Mode::Http],
        Some(other) => anyhow::bail!("--path direct|http, not {other}"),
    };
    if only.as_deref().is_none_or(|o| o == "sqlite") {
        sqlite_floor().await?;
        println!();
    }
    if only.as_deref().is_none_or(|o| o == "throughput") {
        throughput(pairs, runs, &modes, &concs).await?;
        println!();
    }
    if only.as_deref().is_none_or(|o| o == "breakdown") {
        breakdown().await?;
    }
    if only.as_deref() == Some("checkpoints") {
        checkpoint_cost(pairs, runs, &modes, &concs).await?;
    }
    Ok(())
}
