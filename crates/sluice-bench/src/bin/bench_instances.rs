//! PostgreSQL and several instances (issue 5): audited writes per second (request + approve
//! pairs over HTTP) with one and two `sluice serve` processes on one PostgreSQL database
//! against SQLite in the same run; AuthZEN decision and OFREP throughput with two instances
//! against one; propagation delay of a revocation and of a flag change from one instance to
//! the other, through PostgreSQL `LISTEN`/`NOTIFY` and, in the same run, with the instances
//! started `--no-listen` (the 200 ms poll alone).
//!
//! Run (release): `cargo build --release -p sluice -p sluice-bench`, then
//! `target/release/bench_instances --sluice target/release/sluice --pg postgres://postgres@127.0.0.1:5432/test`
//! (`--runs 3 --pairs 600 --tasks 16 --secs 3 --trials 100 --only all|throughput|propagation`;
//! `--configs 0,3` runs only those throughput configurations, counted from 0 in the table's
//! order, e.g. to profile one). Each configuration gets a fresh
//! SQLite directory or a fresh PostgreSQL schema.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark harness")]

use anyhow::{ensure, Context as _};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const USAGE: &str =
    "bench_instances: audited writes, decisions and OFREP with one and two instances on
PostgreSQL against SQLite in the same run, and propagation between instances.

Options (each takes a value):
  --sluice PATH    the sluice binary (default target/release/sluice)
  --pg URL         PostgreSQL (default: $SLUICE_TEST_DATABASE_URL)
  --runs N         runs of each configuration (default 3; the table shows medians)
  --pairs N        request+approve pairs per run (default 600)
  --tasks N        concurrent clients (default 16)
  --secs N         seconds of decisions and of OFREP per run (default 3)
  --trials N       propagation trials (default 100)
  --only WHAT      all | throughput | propagation (default all)
  --configs LIST   throughput configurations to run, e.g. 0,3 (0 SQLite, 1 and 2 PostgreSQL
                   without batching with 1 and 2 instances, 3 and 4 PostgreSQL with 1 and 2)
  --requesters N   engineers who ask for access (default 32; with thousands of pairs each
                   then holds hundreds of live grants, more than anyone does: raise it to
                   keep a few each)
  --principals N   declare N more users in the policy who take no part (default 0): the
                   size of the organisation each instance's access snapshot holds
  --instance-cpus F
                   give each `sluice serve` its own processor budget of F cores (a CPU
                   quota in a cgroup of its own; Linux, root), as if each instance ran on
                   a machine of its own, while PostgreSQL and the clients keep the rest.
                   Without it every process shares the host's cores, and a second
                   instance on the same cores can only add work, not processors";

const ADMIN: &str = "slu_api_00000000000000000000000000000000000000000000000000000000000000ad";
/// Requesters by default: with thousands of pairs each holds hundreds of live grants.
const REQUESTERS: usize = 32;
const LEADS: usize = 8;

struct Opts {
    sluice: PathBuf,
    pg: String,
    runs: usize,
    pairs: usize,
    tasks: usize,
    secs: u64,
    trials: usize,
    only: String,
    configs: Option<Vec<usize>>,
    instance_cpus: Option<f64>,
    principals: usize,
    requesters: usize,
}

fn opts() -> anyhow::Result<Opts> {
    let mut o = Opts {
        sluice: PathBuf::from("target/release/sluice"),
        pg: std::env::var("SLUICE_TEST_DATABASE_URL").unwrap_or_default(),
        runs: 3,
        pairs: 600,
        tasks: 16,
        secs: 3,
        trials: 100,
        only: "all".to_owned(),
        configs: None,
        instance_cpus: None,
        principals: 0,
        requesters: REQUESTERS,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        std::process::exit(0);
    }
    for w in args.chunks(2) {
        let v = w.get(1).context("every option takes a value")?;
        match w[0].as_str() {
            "--sluice" => o.sluice = PathBuf::from(v),
            "--pg" => o.pg.clone_from(v),
            "--runs" => o.runs = v.parse()?,
            "--pairs" => o.pairs = v.parse()?,
            "--tasks" => o.tasks = v.parse()?,
            "--secs" => o.secs = v.parse()?,
            "--trials" => o.trials = v.parse()?,
            "--only" => o.only.clone_from(v),
            "--principals" => o.principals = v.parse()?,
            "--requesters" => {
                o.requesters = v.parse()?;
                ensure!(o.requesters > 0, "--requesters must be at least 1");
            }
            "--instance-cpus" => {
                let f: f64 = v.parse().context("--instance-cpus takes cores, e.g. 0.5")?;
                ensure!(f > 0.0, "--instance-cpus must be more than 0");
                o.instance_cpus = Some(f);
            }
            "--configs" => {
                o.configs = Some(
                    v.split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .context("--configs takes indices such as 0,3")?,
                );
            }
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    ensure!(
        !o.pg.is_empty(),
        "pass --pg postgres://… or set SLUICE_TEST_DATABASE_URL"
    );
    // Each server runs in its own directory: resolve the binary now.
    o.sluice = std::fs::canonicalize(&o.sluice)
        .with_context(|| format!("no sluice binary at {}", o.sluice.display()))?;
    Ok(o)
}

fn policy(requesters: usize, bystanders: usize) -> String {
    let mut y = String::from("users:\n");
    let eng: Vec<String> = (0..requesters).map(|i| format!("eng-{i}")).collect();
    let leads: Vec<String> = (0..LEADS).map(|i| format!("lead-{i}")).collect();
    let others = (0..bystanders).map(|i| format!("user-{i}"));
    for u in eng.iter().chain(&leads).cloned().chain(others) {
        writeln!(y, "  - {u}").unwrap();
    }
    writeln!(
        y,
        "groups:\n  engineers: [{}]\n  leads: [{}]",
        eng.join(", "),
        leads.join(", ")
    )
    .unwrap();
    y.push_str(
        r#"entitlements:
  - name: team-db
    scopes:
      - resource: "db:orders"
        actions: [read]
    requesters: [group:engineers]
    max_duration: 8h
    approval: { required: 1, approvers: [group:leads] }
    reason: optional
"#,
    );
    y
}

struct Instance {
    base: String,
    child: Child,
    _budget: Option<CpuBudget>,
    _dir: tempfile::TempDir,
}

/// A cgroup of its own with a CPU quota, holding one process: the processor budget of an
/// instance "on its own machine". cgroup v2 (`cpu.max`) where the unified hierarchy has the
/// cpu controller, else v1 (`cpu.cfs_quota_us`). Removed on drop, once its process is gone.
struct CpuBudget {
    dir: PathBuf,
}

impl CpuBudget {
    fn new(pid: u32, cpus: f64) -> anyhow::Result<Self> {
        const PERIOD_US: u64 = 100_000;
        let quota = (cpus * PERIOD_US as f64).round() as u64;
        let name = format!("sluice-bench-{}-{pid}", std::process::id());
        let v2 = PathBuf::from("/sys/fs/cgroup");
        let v2_has_cpu = std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "cpu"));
        let (dir, settings) = if v2_has_cpu {
            (
                v2.join(&name),
                vec![("cpu.max", format!("{quota} {PERIOD_US}"))],
            )
        } else {
            (
                v2.join("cpu").join(&name),
                vec![
                    ("cpu.cfs_period_us", PERIOD_US.to_string()),
                    ("cpu.cfs_quota_us", quota.to_string()),
                ],
            )
        };
        std::fs::create_dir(&dir).with_context(|| {
            format!(
                "--instance-cpus: cannot make the cgroup {} (Linux, as root)",
                dir.display()
            )
        })?;
        let budget = Self { dir };
        for (file, value) in settings {
            std::fs::write(budget.dir.join(file), value)
                .with_context(|| format!("--instance-cpus: write {file}"))?;
        }
        std::fs::write(budget.dir.join("cgroup.procs"), pid.to_string())
            .context("--instance-cpus: move the instance into its cgroup")?;
        Ok(budget)
    }
}

impl Drop for CpuBudget {
    fn drop(&mut self) {
        // Whether the budget bound: how many of its periods the instance was throttled in.
        if let Ok(stat) = std::fs::read_to_string(self.dir.join("cpu.stat")) {
            let field = |k: &str| {
                stat.lines()
                    .find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            eprintln!(
                "  instance throttled in {} of {} periods of its CPU budget",
                field("nr_throttled"),
                field("nr_periods")
            );
        }
        // The process may take a moment to leave after its kill.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("bench_instances: could not remove {}", self.dir.display());
    }
}

async fn spawn(
    o: &Opts,
    url: &str,
    key: &std::path::Path,
    extra: &[&str],
) -> anyhow::Result<Instance> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(&o.sluice)
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(dir.path())
        .args(["--database-url", url, "--signing-key"])
        .arg(key)
        .args(extra)
        .env("SLUICE_ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "error")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("spawn sluice serve (pass --sluice PATH)")?;
    let budget = match (o.instance_cpus, child.id()) {
        (Some(cpus), Some(pid)) => Some(CpuBudget::new(pid, cpus)?),
        _ => None,
    };
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        ensure!(Instant::now() < deadline, "sluice serve did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Instance {
        base,
        child,
        _budget: budget,
        _dir: dir,
    })
}

/// One installation: `n` instances on one database, policy applied, tokens made.
struct Setup {
    inst: Vec<Instance>,
    requesters: Vec<String>,
    leads: Vec<String>,
    client_key: String,
    /// PostgreSQL: the schema it made, dropped by `stop` (the server's URL and its name).
    schema: Option<(String, String)>,
    _keys: tempfile::TempDir,
}

/// A new schema on the server at `base`: the URL that uses it, and its name.
async fn fresh_pg(base: &str) -> anyhow::Result<(String, String)> {
    let schema = format!("bench_{}", uuid_like());
    let pool = sqlx::PgPool::connect(base).await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await?;
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok((
        format!("{base}{sep}options=-c%20search_path%3D{schema}"),
        schema,
    ))
}

fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{}_{random:016x}", std::process::id())
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> anyhow::Result<(u16, Value)> {
    let r = http.post(url).bearer_auth(token).json(body).send().await?;
    let s = r.status().as_u16();
    Ok((s, r.json().await.unwrap_or(Value::Null)))
}

async fn setup(o: &Opts, backend: &str, n: usize, extra: &[&str]) -> anyhow::Result<Setup> {
    let keys = tempfile::tempdir()?;
    let key = keys.path().join("audit-signing.pem");
    let (url, schema) = if backend == "sqlite" {
        let url = format!("sqlite://{}", keys.path().join("sluice.db").display());
        (url, None)
    } else {
        let (url, schema) = fresh_pg(&o.pg).await?;
        (url, Some((o.pg.clone(), schema)))
    };
    let mut inst = Vec::new();
    for _ in 0..n {
        inst.push(spawn(o, &url, &key, extra).await?);
    }
    let http = reqwest::Client::new();
    let a = &inst[0].base;
    let (s, v) = post(
        &http,
        &format!("{a}/v1/policy"),
        ADMIN,
        &json!({"source": policy(o.requesters, o.principals)}),
    )
    .await?;
    ensure!(s == 200, "policy: {v}");
    let tok = |p: String| {
        let http = http.clone();
        let a = a.clone();
        async move {
            let (s, v) = post(
                &http,
                &format!("{a}/v1/tokens"),
                ADMIN,
                &json!({"principal": p, "name": "bench"}),
            )
            .await?;
            ensure!(s == 201, "token: {v}");
            anyhow::Ok(v["token"].as_str().context("token")?.to_owned())
        }
    };
    let mut requesters = Vec::new();
    for i in 0..o.requesters {
        requesters.push(tok(format!("eng-{i}")).await?);
    }
    let mut leads = Vec::new();
    for i in 0..LEADS {
        leads.push(tok(format!("lead-{i}")).await?);
    }
    // The import creates `staging`; a client key names an environment that exists.
    import(&http, a, "off").await?;
    let (s, v) = post(
        &http,
        &format!("{a}/v1/tokens"),
        ADMIN,
        &json!({"principal": "admin", "name": "web", "kind": "client", "environment": "staging"}),
    )
    .await?;
    ensure!(s == 201, "client key: {v}");
    let client_key = v["token"].as_str().context("key")?.to_owned();
    // Every instance knows every token and the flags before measuring.
    for i in &inst {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let w = http
                .get(format!("{}/v1/whoami", i.base))
                .bearer_auth(&leads[LEADS - 1])
                .send()
                .await?;
            let f = post(
                &http,
                &format!("{}/ofrep/v1/evaluate/flags/checkout-v2", i.base),
                &client_key,
                &json!({"context": {"targetingKey": "u"}}),
            )
            .await?;
            if w.status() == 200 && f.0 == 200 {
                break;
            }
            ensure!(Instant::now() < deadline, "instance did not sync");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(Setup {
        inst,
        requesters,
        leads,
        client_key,
        schema,
        _keys: keys,
    })
}

async fn import(http: &reqwest::Client, base: &str, default: &str) -> anyhow::Result<()> {
    let doc = json!({"flags": {"checkout-v2": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": default}}});
    let r = http
        .put(format!(
            "{base}/v1/environments/staging/flags?create_env=true"
        ))
        .bearer_auth(ADMIN)
        .json(&doc)
        .send()
        .await?;
    ensure!(r.status() == 200, "import: {}", r.status());
    Ok(())
}

impl Setup {
    /// Asks each instance to stop (SIGTERM: it drains and exits, and a profiler wrapped
    /// around it writes its profile), killing whichever is still up after 10 s.
    async fn stop(mut self) {
        for i in &self.inst {
            if let Some(pid) = i.child.id() {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
        }
        for i in &mut self.inst {
            if tokio::time::timeout(Duration::from_secs(10), i.child.wait())
                .await
                .is_err()
            {
                let _ = i.child.kill().await;
            }
        }
        // What the run wrote goes with it: tens of thousands of rows per configuration.
        if let Some((base, schema)) = &self.schema {
            let dropped = async {
                let pool = sqlx::PgPool::connect(base).await?;
                sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                    .execute(&pool)
                    .await?;
                pool.close().await;
                anyhow::Ok(())
            };
            if let Err(e) = dropped.await {
                eprintln!("could not drop the schema {schema}: {e}");
            }
        }
    }
}

/// Processor time a process has used, from `/proc/PID/stat` (utime + stime), in seconds.
fn process_cpu(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    ticks as f64 / 100.0
}

/// Processor time the whole host has used (every core, not idle or waiting), in seconds.
fn host_cpu() -> f64 {
    let ticks: u64 = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().next()?;
            let f: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal
            Some([0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum())
        })
        .unwrap_or(0);
    ticks as f64 / 100.0
}

/// Request + approve pairs, task `t` on instance `t % n`: pairs per second, and the
/// processor a pair took in the instances and in the whole host, in µs.
async fn writes(s: &Setup, o: &Opts) -> anyhow::Result<(f64, (f64, f64))> {
    let pids: Vec<u32> = s.inst.iter().filter_map(|i| i.child.id()).collect();
    let cpu = || -> (f64, f64) { (pids.iter().map(|&p| process_cpu(p)).sum(), host_cpu()) };
    let before = cpu();
    let rate = write_pairs(s, o).await?;
    let after = cpu();
    let per_pair = |a: f64, b: f64| (b - a) * 1e6 / o.pairs as f64;
    Ok((
        rate,
        (per_pair(before.0, after.0), per_pair(before.1, after.1)),
    ))
}

async fn write_pairs(s: &Setup, o: &Opts) -> anyhow::Result<f64> {
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..o.tasks {
        let base = s.inst[t % s.inst.len()].base.clone();
        let (http, next, reqs, lead) = (
            http.clone(),
            next.clone(),
            s.requesters.clone(),
            s.leads[t % LEADS].clone(),
        );
        let pairs = o.pairs;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= pairs {
                    return anyhow::Ok(());
                }
                let body = json!({"entitlement": "team-db", "duration": "1h", "reason": "bench"});
                let (st, v) = post(
                    &http,
                    &format!("{base}/v1/requests"),
                    &reqs[i % reqs.len()],
                    &body,
                )
                .await?;
                ensure!(st == 201, "request: {st} {v}");
                let id = v["id"].as_str().context("id")?;
                let (st, v) = post(
                    &http,
                    &format!("{base}/v1/requests/{id}/approve"),
                    &lead,
                    &json!({}),
                )
                .await?;
                ensure!(st == 200, "approve: {st} {v}");
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(o.pairs as f64 / start.elapsed().as_secs_f64())
}

/// Requests per second over `secs`, `tasks` clients spread over the instances.
async fn rate(s: &Setup, o: &Opts, ofrep: bool) -> anyhow::Result<f64> {
    let http = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..o.tasks * 2 {
        let base = s.inst[t % s.inst.len()].base.clone();
        let (http, stop, done, key) = (
            http.clone(),
            stop.clone(),
            done.clone(),
            s.client_key.clone(),
        );
        let requesters = s.requesters.len();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (st, _) = if ofrep {
                    post(&http, &format!("{base}/ofrep/v1/evaluate/flags/checkout-v2"), &key, &json!({"context": {"targetingKey": format!("u-{t}")}})).await?
                } else {
                    let q = json!({"subject": {"type": "user", "id": format!("eng-{}", t % requesters)}, "action": {"name": "read"}, "resource": {"type": "db", "id": "orders"}});
                    post(&http, &format!("{base}/access/v1/evaluation"), ADMIN, &q).await?
                };
                ensure!(st == 200, "status {st}");
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // warm up
    let (d0, t0) = (done.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(Duration::from_secs(o.secs)).await;
    let (d1, t1) = (done.load(Ordering::Relaxed), t0.elapsed());
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    Ok((d1 - d0) as f64 / t1.as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn decision(http: &reqwest::Client, base: &str, subject: &str) -> anyhow::Result<bool> {
    let q = json!({"subject": {"type": "user", "id": subject}, "action": {"name": "read"}, "resource": {"type": "db", "id": "orders"}});
    let (st, v) = post(http, &format!("{base}/access/v1/evaluation"), ADMIN, &q).await?;
    ensure!(st == 200, "decision {st}");
    v["decision"].as_bool().context("decision")
}

/// Revocation on A → B refuses (ms), polling B every 5 ms.
async fn revocations(s: &Setup, trials: usize) -> anyhow::Result<Vec<f64>> {
    let http = reqwest::Client::new();
    let (a, b) = (&s.inst[0].base, &s.inst[1].base);
    let mut out = Vec::new();
    for i in 0..trials {
        let who = format!("eng-{}", i % s.requesters.len());
        let body = json!({"entitlement": "team-db", "duration": "1h", "reason": "trial"});
        let (st, v) = post(
            &http,
            &format!("{a}/v1/requests"),
            &s.requesters[i % s.requesters.len()],
            &body,
        )
        .await?;
        ensure!(st == 201, "request {v}");
        let id = v["id"].as_str().context("id")?.to_owned();
        let (st, _) = post(
            &http,
            &format!("{a}/v1/requests/{id}/approve"),
            &s.leads[0],
            &json!({}),
        )
        .await?;
        ensure!(st == 200);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !decision(&http, b, &who).await? {
            ensure!(Instant::now() < deadline, "grant never reached B");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let t0 = Instant::now();
        let (st, _) = post(
            &http,
            &format!("{a}/v1/requests/{id}/revoke"),
            ADMIN,
            &json!({"reason": "trial"}),
        )
        .await?;
        ensure!(st == 200);
        while decision(&http, b, &who).await? {
            ensure!(
                t0.elapsed() < Duration::from_secs(5),
                "revocation never reached B"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        out.push(t0.elapsed().as_secs_f64() * 1e3);
        // Another of this principal's grants must not be live for the next trial.
    }
    Ok(out)
}

/// Flag import on A → B's SSE subscriber hears it (ms).
async fn flag_changes(
    s: &Setup,
    trials: usize,
    from: usize,
    to: usize,
) -> anyhow::Result<Vec<f64>> {
    let http = reqwest::Client::new();
    let (a, b) = (&s.inst[from].base, &s.inst[to].base);
    let mut events = http
        .get(format!("{b}/ofrep/v1/events"))
        .bearer_auth(&s.client_key)
        .send()
        .await?;
    ensure!(events.status() == 200);
    let mut out = Vec::new();
    for i in 0..trials {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t0 = Instant::now();
        import(&http, a, if i % 2 == 0 { "on" } else { "off" }).await?;
        let mut got = String::new();
        while !got.contains("refetchEvaluation") {
            let c = tokio::time::timeout(Duration::from_secs(5), events.chunk())
                .await??
                .context("stream ended")?;
            got.push_str(&String::from_utf8_lossy(&c));
        }
        out.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    Ok(out)
}

/// API token revoked on A → B refuses it (ms), polling B's `/v1/whoami` every 5 ms. Each
/// trial makes a token on A and waits until B has it cached. Each trial asks B from a source
/// address of its own (127.0.x.y): the refusal is a failed authentication, and B refuses a
/// source after 20 of them in a minute.
async fn token_revocations(s: &Setup, trials: usize) -> anyhow::Result<Vec<f64>> {
    let http = reqwest::Client::new();
    let (a, b) = (&s.inst[0].base, &s.inst[1].base);
    let mut out = Vec::new();
    for i in 0..trials {
        let source = std::net::Ipv4Addr::new(127, 0, 1 + (i / 200) as u8, 2 + (i % 200) as u8);
        let asker = reqwest::Client::builder()
            .local_address(std::net::IpAddr::V4(source))
            .build()?;
        let whoami = |token: String| {
            let asker = asker.clone();
            let url = format!("{b}/v1/whoami");
            async move {
                anyhow::Ok(
                    asker
                        .get(url)
                        .bearer_auth(token)
                        .send()
                        .await?
                        .status()
                        .as_u16(),
                )
            }
        };
        let (st, v) = post(
            &http,
            &format!("{a}/v1/tokens"),
            ADMIN,
            &json!({"principal": format!("eng-{}", i % s.requesters.len()), "name": "trial"}),
        )
        .await?;
        ensure!(st == 201, "token {v}");
        let token = v["token"].as_str().context("token")?.to_owned();
        let id = v["id"].as_str().context("id")?.to_owned();
        let deadline = Instant::now() + Duration::from_secs(5);
        while whoami(token.clone()).await? != 200 {
            ensure!(Instant::now() < deadline, "token never reached B");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let t0 = Instant::now();
        let r = http
            .delete(format!("{a}/v1/tokens/{id}"))
            .bearer_auth(ADMIN)
            .send()
            .await?;
        ensure!(r.status() == 200, "revoke token {}", r.status());
        while whoami(token.clone()).await? == 200 {
            ensure!(
                t0.elapsed() < Duration::from_secs(5),
                "token revocation never reached B"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        out.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    Ok(out)
}

async fn throughput(o: &Opts) -> anyhow::Result<()> {
    // The PostgreSQL configurations once as they run by default (audited writes batched per
    // instance) and once with a transaction per write (`--no-write-batch`), the baseline.
    let configs: [(&str, &str, usize, &[&str]); 5] = [
        ("SQLite, 1 instance", "sqlite", 1, &[]),
        (
            "PostgreSQL, 1 instance, a transaction per write",
            "pg",
            1,
            &["--no-write-batch"],
        ),
        (
            "PostgreSQL, 2 instances, a transaction per write",
            "pg",
            2,
            &["--no-write-batch"],
        ),
        ("PostgreSQL, 1 instance", "pg", 1, &[]),
        ("PostgreSQL, 2 instances", "pg", 2, &[]),
    ];
    let mut w: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut d: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut f: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    for run in 0..o.runs {
        for (k, (name, backend, n, extra)) in configs.iter().enumerate() {
            if o.configs.as_ref().is_some_and(|c| !c.contains(&k)) {
                continue;
            }
            let s = setup(o, backend, *n, extra).await?;
            let (pairs, (instances_us, host_us)) = writes(&s, o).await?;
            w[k].push(pairs);
            d[k].push(rate(&s, o, false).await?);
            f[k].push(rate(&s, o, true).await?);
            eprintln!(
                "run {run} {name}: {:.0} pairs/s, {:.0} decisions/s, {:.0} OFREP/s\n  \
                 processor per pair: {instances_us:.0} µs in the instances, {host_us:.0} µs in the whole host",
                w[k][run], d[k][run], f[k][run]
            );
            s.stop().await;
        }
    }
    if o.principals > 0 {
        println!(
            "The policy declares {} more users who take no part (`--principals`).\n",
            o.principals
        );
    }
    if let Some(cpus) = o.instance_cpus {
        println!("Each `sluice serve` held to {cpus} cores (`--instance-cpus`).\n");
    }
    println!("| configuration | request+approve pairs/s | AuthZEN decisions/s (each audited) | OFREP evaluations/s |");
    println!("| --- | --- | --- | --- |");
    for (k, (name, _, _, _)) in configs.iter().enumerate() {
        if w[k].is_empty() {
            continue;
        }
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} |",
            median(w[k].clone()),
            median(d[k].clone()),
            median(f[k].clone())
        );
    }
    Ok(())
}

/// Two instances on PostgreSQL, first started `--no-listen` (the poll alone), then listening.
async fn propagation(o: &Opts) -> anyhow::Result<()> {
    println!(
        "| propagation ({} trials each) | poll only: p50 ms | p99 ms | max ms | listening: p50 ms | p99 ms | max ms |",
        o.trials
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut rows: Vec<(&str, Vec<Vec<f64>>)> = vec![
        (
            "revocation on A → refused by B's AuthZEN decisions (B polled every 5 ms)",
            Vec::new(),
        ),
        (
            "API token revoked on A → refused by B (B polled every 5 ms)",
            Vec::new(),
        ),
        ("flag import on A → B's SSE subscriber", Vec::new()),
        (
            "flag import on B → B's own SSE subscriber (reference)",
            Vec::new(),
        ),
    ];
    for extra in [&["--no-listen"][..], &[]] {
        let s = setup(o, "pg", 2, extra).await?;
        rows[0].1.push(revocations(&s, o.trials).await?);
        rows[1].1.push(token_revocations(&s, o.trials).await?);
        rows[2].1.push(flag_changes(&s, o.trials, 0, 1).await?);
        rows[3].1.push(flag_changes(&s, o.trials, 1, 1).await?);
        s.stop().await;
    }
    for (name, v) in &rows {
        let mut line = format!("| {name} |");
        for run in v {
            write!(
                line,
                " {:.0} | {:.0} | {:.0} |",
                pct(run, 0.5),
                pct(run, 0.99),
                pct(run, 1.0)
            )?;
        }
        println!("{line}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = opts()?;
    if matches!(o.only.as_str(), "all" | "throughput") {
        throughput(&o).await?;
        println!();
    }
    if matches!(o.only.as_str(), "all" | "propagation") {
        propagation(&o).await?;
    }
    Ok(())
}
