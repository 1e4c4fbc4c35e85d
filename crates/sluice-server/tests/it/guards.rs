//! Guarded rollouts against a real Prometheus (the `prometheus` binary, started here on a
//! loopback port with a temporary TSDB, scraping every second) that scrapes a small test
//! application whose error rate the test controls. On the real clock: how fast a guard reacts
//! is what these tests check. Under `CI=true` a missing `prometheus` fails them.

use crate::harness::{Backend, Db, TestServer, ADMIN_TOKEN};
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sluice_server::guards::GuardConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The guard every test uses: the share of 5xx over the last 4 s, below 10%.
const ERROR_RATE: &str =
    r#"sum(rate(app_requests_total{status="500"}[4s])) / sum(rate(app_requests_total[4s]))"#;
const SAMPLE: &str = "sum(increase(app_requests_total[4s])) >= 10";
const INTERVAL: Duration = Duration::from_secs(1);

/// The test application: request counters by status, served at `/metrics`; a task adds
/// 20 requests every 100 ms, `errors_permille` of them failing.
pub struct TestApp {
    pub addr: SocketAddr,
    pub errors_permille: Arc<AtomicU64>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    pub async fn start() -> TestApp {
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let errors_permille = Arc::new(AtomicU64::new(0));
        let (o, f) = (ok.clone(), failed.clone());
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let (ok, failed) = (o.load(Ordering::SeqCst), f.load(Ordering::SeqCst));
                async move {
                    format!(
                        "# HELP app_requests_total Requests served, by status.\n# TYPE app_requests_total counter\napp_requests_total{{status=\"200\"}} {ok}\napp_requests_total{{status=\"500\"}} {failed}\n"
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind test app");
        let addr = listener.local_addr().expect("addr");
        let serve = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let (o, f, e) = (ok.clone(), failed.clone(), errors_permille.clone());
        let traffic = tokio::spawn(async move {
            loop {
                let bad = 20 * e.load(Ordering::SeqCst) / 1000;
                f.fetch_add(bad, Ordering::SeqCst);
                o.fetch_add(20 - bad, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        TestApp {
            addr,
            errors_permille,
            ok,
            failed,
            tasks: vec![serve, traffic],
        }
    }

    /// From now on this share of requests fails.
    pub fn fail(&self, permille: u64) {
        self.errors_permille.store(permille, Ordering::SeqCst);
    }

    pub fn counts(&self) -> (u64, u64) {
        (
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The `prometheus` binary, or `None` (with a notice) outside CI.
pub fn prometheus_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("prometheus"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but the `prometheus` binary is not installed (Debian package prometheus): the guard tests must run"
        );
        eprintln!("notice: no `prometheus` binary; skipping the guarded-rollout tests");
    }
    found
}

/// A real Prometheus on a loopback port scraping the test application every second.
pub struct Prom {
    binary: PathBuf,
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Prom {
    pub async fn start(binary: PathBuf, app: SocketAddr) -> Prom {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{app}']\n"
            ),
        )
        .expect("config");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut p = Prom {
            binary,
            port,
            dir,
            child: None,
        };
        p.resume().await;
        p
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts it (again: same port, same TSDB) and waits until it is ready.
    pub async fn resume(&mut self) {
        let dir: &Path = self.dir.path();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new(&self.binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        self.child = Some(child);
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http
                .get(format!("{}/-/ready", self.url()))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 30 s: {}",
                std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops it (SIGKILL: as sudden as an outage).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The value of an instant query, if it is one number.
    pub async fn value(&self, query: &str) -> Option<f64> {
        let v: Value = reqwest::Client::new()
            .post(format!("{}/api/v1/query", self.url()))
            .form(&[("query", query)])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits until the guard's own query gives a number.
    pub async fn wait_for_data(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.value(ERROR_RATE).await.is_none_or(f64::is_nan) {
            assert!(Instant::now() < deadline, "no error-rate data in 30 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prom {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Guarded {
    pub s: TestServer,
    pub app: TestApp,
    pub prom: Prom,
}

const POLICY: &str = "users: [alice]\nenvironments:\n  staging: {}\n";

/// A server whose guards read a fresh Prometheus scraping a fresh test application, with a
/// flag `new-search` in staging; `None` outside CI without `prometheus`.
pub async fn setup(b: Backend) -> Option<Guarded> {
    setup_notifying(b, None).await
}

/// [`setup`] with notifications.
pub async fn setup_notifying(
    b: Backend,
    notify: Option<sluice_server::notify::NotifyConfig>,
) -> Option<Guarded> {
    let binary = prometheus_binary()?;
    let db = Db::new(b).await?;
    let app = TestApp::start().await;
    let prom = Prom::start(binary, app.addr).await;
    let s = TestServer::start_guarded(
        db,
        GuardConfig {
            prometheus_url: prom.url(),
            interval: INTERVAL,
        },
        notify,
    )
    .await;
    s.apply(POLICY).await;
    let (st, v) = s
        .send(
            reqwest::Method::PUT,
            ADMIN_TOKEN,
            "/v1/environments/staging/flags?create_env=true",
            Some(json!({"flags": {"new-search": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}}})),
        )
        .await;
    assert!(st.is_success(), "{v}");
    Some(Guarded { s, app, prom })
}

pub async fn start(db: Db, prom: &Prom) -> TestServer {
    TestServer::start_guarded(
        db,
        GuardConfig {
            prometheus_url: prom.url(),
            interval: INTERVAL,
        },
        None,
    )
    .await
}

pub async fn start_rollout(s: &TestServer, steps: Value, on_breach: &str) -> Value {
    let (st, v) = s
        .send(
            reqwest::Method::PUT,
            ADMIN_TOKEN,
            "/v1/environments/staging/flags/new-search/rollout",
            Some(json!({"variant": "on", "steps": steps, "guards": [
                {"condition": format!("{ERROR_RATE} < 0.1"), "min_sample": SAMPLE, "on_breach": on_breach}
            ]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v
}

pub async fn status(s: &TestServer) -> Value {
    let (st, v) = s
        .get(
            ADMIN_TOKEN,
            "/v1/environments/staging/flags/new-search/rollout",
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v
}

/// Polls the rollout's status until `ok` holds for it, for at most `within`.
pub async fn status_until(s: &TestServer, within: Duration, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let v = status(s).await;
        if ok(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "not reached in {within:?}: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

/// Starts a rollout held at its first step for an hour, waits until its guard passes, then
/// makes every request fail. Returns when the guard acted, with the moments: failing began,
/// Prometheus first showed the breach (polled every 50 ms), the guard's entry was written.
pub async fn breach(g: &Guarded, on_breach: &str) -> (Value, [DateTime<Utc>; 3]) {
    start_rollout(
        &g.s,
        json!([{"percent": 10, "hold": "1h"}, {"percent": 100, "hold": "1h"}]),
        on_breach,
    )
    .await;
    g.prom.wait_for_data().await;
    status_until(&g.s, Duration::from_secs(20), |v| {
        v["guards"][0]["state"] == "passing"
    })
    .await;
    let failing = g.s.clock_now();
    g.app.fail(1000);
    let mut seen = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    let entry = loop {
        if seen.is_none() && g.prom.value(ERROR_RATE).await.is_some_and(|v| v >= 0.1) {
            seen = Some(g.s.clock_now());
        }
        let action = if on_breach == "pause" {
            "rollout.paused"
        } else {
            "rollout.rolled-back"
        };
        if let Some(e) = g.s.audit_actions(action).await.into_iter().next() {
            break e;
        }
        assert!(Instant::now() < deadline, "no {action} in 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let acted = time(&entry["at"]);
    (entry, [failing, seen.unwrap_or(acted), acted])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_guarded_rollout_advances_through_its_steps_and_completes() {
    let Some(g) = setup(Backend::Sqlite).await else {
        return;
    };
    g.prom.wait_for_data().await;
    let started = start_rollout(
        &g.s,
        json!([{"percent": 10, "hold": "2s"}, {"percent": 50, "hold": "2s"}, {"percent": 100, "hold": "1s"}]),
        "pause",
    )
    .await;
    assert_eq!(started["guards"][0]["state"], "unread");
    assert_eq!(started["guards"][0]["threshold"], 0.1);
    let v = status_until(&g.s, Duration::from_secs(10), |v| {
        v["guards"][0]["state"] == "passing"
    })
    .await;
    let value = v["guards"][0]["value"].as_f64().expect("a value");
    assert!(value < 0.1, "{v:#}");
    assert!(v["guards"][0]["sample"].as_f64().expect("a sample") >= 10.0);
    assert!(time(&v["guards"][0]["read_at"]) <= g.s.clock_now());
    let done = status_until(&g.s, Duration::from_secs(30), |v| v["state"] == "completed").await;
    assert_eq!(done["current_percent"], 100.0);
    let advanced = g.s.audit_actions("rollout.advanced").await;
    let steps: Vec<(Value, Value)> = advanced
        .iter()
        .map(|e| (e["actor"].clone(), e["details"]["step"].clone()))
        .collect();
    assert_eq!(steps.len(), 2, "{advanced:#?}");
    for (actor, _) in &steps {
        assert_eq!(actor, "system:guard");
    }
    for e in &advanced {
        let read = e["details"]["guards"][0]["value"].as_f64().expect("value");
        assert!(read < 0.1, "{e:#}");
    }
    assert_eq!(g.s.audit_actions("rollout.completed").await.len(), 1);
    assert!(g.s.audit_actions("rollout.paused").await.is_empty());
    assert!(g.app.counts().0 > 0);
    g.s.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_climb_and_the_guard_pauses_the_rollout_by_itself() {
    let Some(g) = setup(Backend::Sqlite).await else {
        return;
    };
    let (entry, [failing, seen, acted]) = breach(&g, "pause").await;
    assert_eq!(entry["actor"], "system:guard");
    let d = &entry["details"]["guard"];
    assert_eq!(d["query"], ERROR_RATE);
    assert_eq!(d["threshold"], 0.1);
    assert!(d["value"].as_f64().expect("value") >= 0.1, "{entry:#}");
    // Within one evaluation interval of Prometheus showing it (plus the query's own time).
    let after_seen = (acted - seen).num_milliseconds();
    assert!(
        after_seen <= 1_500,
        "paused {after_seen} ms after Prometheus showed the breach"
    );
    let after_failing = (acted - failing).num_milliseconds();
    assert!(
        after_failing <= 6_000,
        "paused {after_failing} ms after failing began"
    );
    let v = status(&g.s).await;
    assert_eq!(v["state"], "paused");
    assert_eq!(v["current_step"], 0);
    assert_eq!(v["guards"][0]["on_breach"], "pause");
    eprintln!("reaction: {after_failing} ms from failing, {after_seen} ms from Prometheus");
}

/// The guard's rollback is announced like a person's: a `rollout.rolled_back` webhook, signed,
/// naming the guard, its query, value and threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_climb_and_the_guard_rolls_the_rollout_back() {
    use crate::notify::{webhook, Receiver};
    let (url, receiver) = Receiver::start().await;
    let notify = sluice_server::notify::NotifyConfig {
        sinks: vec![webhook("ops", &format!("{url}/hooks"))],
        ..sluice_server::notify::NotifyConfig::default()
    };
    let Some(g) = setup_notifying(Backend::Sqlite, Some(notify)).await else {
        return;
    };
    let (entry, [_, seen, acted]) = breach(&g, "rollback").await;
    assert_eq!(entry["actor"], "system:guard");
    assert_eq!(entry["details"]["guard"]["on_breach"], "rollback");
    assert!((acted - seen).num_milliseconds() <= 1_500);
    assert_eq!(status(&g.s).await["state"], "rolled-back");
    assert!(g.s.audit_actions("rollout.paused").await.is_empty());
    let announced = |r: &Receiver| {
        r.on("/hooks")
            .iter()
            .any(|got| got.json()["type"] == "rollout.rolled_back")
    };
    receiver
        .until("the guard's rollback announced", announced)
        .await;
    let got = receiver
        .on("/hooks")
        .into_iter()
        .find(|got| got.json()["type"] == "rollout.rolled_back")
        .expect("announced");
    let data = &got.json()["data"];
    assert_eq!(data["actor"], "system:guard");
    assert_eq!(data["resource"], "flag:staging/new-search");
    assert_eq!(data["details"]["guard"]["query"], ERROR_RATE);
    assert_eq!(data["details"]["guard"]["threshold"], 0.1);
    assert!(data["details"]["guard"]["value"].as_f64().expect("value") >= 0.1);
    assert!(got.headers.contains_key("webhook-signature"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_down_holds_the_rollout_and_it_resumes_when_prometheus_returns() {
    let Some(mut g) = setup(Backend::Sqlite).await else {
        return;
    };
    g.prom.wait_for_data().await;
    start_rollout(
        &g.s,
        json!([{"percent": 10, "hold": "2s"}, {"percent": 100, "hold": "1s"}]),
        "rollback",
    )
    .await;
    status_until(&g.s, Duration::from_secs(10), |v| {
        v["guards"][0]["state"] == "passing"
    })
    .await;
    g.prom.stop();
    // Past the step's time: held, and it says why.
    let held = status_until(&g.s, Duration::from_secs(10), |v| !v["held"].is_null()).await;
    assert_eq!(held["state"], "running");
    assert_eq!(held["current_step"], 0);
    assert_eq!(held["guards"][0]["state"], "unknown");
    let reason = held["guards"][0]["reason"].as_str().expect("reason");
    assert!(reason.contains("unreachable"), "{reason}");
    assert!(held["held"]
        .as_str()
        .expect("held")
        .contains("cannot be evaluated"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        status(&g.s).await["current_step"],
        0,
        "never advances blind"
    );
    assert!(g.s.audit_actions("rollout.advanced").await.is_empty());
    assert!(g.s.audit_actions("rollout.rolled-back").await.is_empty());
    g.prom.resume().await;
    let done = status_until(&g.s, Duration::from_secs(30), |v| v["state"] == "completed").await;
    assert!(done["held"].is_null());
    let advanced = g.s.audit_actions("rollout.advanced").await;
    assert_eq!(advanced.len(), 1, "{advanced:#?}");
    assert_eq!(advanced[0]["actor"], "system:guard");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_needs_a_condition_and_a_prometheus() {
    let Some(g) = setup(Backend::Sqlite).await else {
        return;
    };
    for (guard, word) in [
        (json!({"condition": "errors"}), "comparison"),
        (json!({"condition": "errors == 1"}), "comparison"),
        (
            json!({"condition": "errors < 1", "min_sample": "n"}),
            "minimum sample",
        ),
    ] {
        let (st, v) = g
            .s
            .send(
                reqwest::Method::PUT,
                ADMIN_TOKEN,
                "/v1/environments/staging/flags/new-search/rollout",
                Some(json!({"variant": "on", "steps": [{"percent": 100, "hold": "1m"}], "guards": [guard]})),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["code"], "invalid_guard");
        assert!(
            v["message"].as_str().expect("message").contains(word),
            "{v}"
        );
    }
    let (st, v) =
        g.s.get(
            ADMIN_TOKEN,
            "/v1/environments/staging/flags/new-search/rollout",
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "nothing was started: {v}");
    // A server without a Prometheus refuses guards.
    let plain = TestServer::start(Db::new(Backend::Sqlite).await.expect("db")).await;
    plain.apply(POLICY).await;
    plain
        .send(
            reqwest::Method::PUT,
            ADMIN_TOKEN,
            "/v1/environments/staging/flags?create_env=true",
            Some(json!({"flags": {"f": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}}})),
        )
        .await;
    let (st, v) = plain
        .send(
            reqwest::Method::PUT,
            ADMIN_TOKEN,
            "/v1/environments/staging/flags/f/rollout",
            Some(json!({"variant": "on", "steps": [{"percent": 100, "hold": "1m"}], "guards": [{"condition": "x < 1"}]})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["message"]
            .as_str()
            .expect("message")
            .contains("--prometheus-url"),
        "{v}"
    );
}

/// Two instances on one PostgreSQL database read the same guards: the breach is recorded
/// once, and so is each step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_apply_a_guard_once() {
    let Some(g) = setup(Backend::Postgres).await else {
        return;
    };
    let second = Db {
        url: g.s.db.url.clone(),
        key: g.s.db.key.clone(),
        _dir: tempfile::tempdir().expect("tempdir"),
    };
    let other = start(second, &g.prom).await;
    g.prom.wait_for_data().await;
    start_rollout(
        &g.s,
        json!([{"percent": 10, "hold": "1s"}, {"percent": 50, "hold": "1h"}, {"percent": 100, "hold": "1h"}]),
        "pause",
    )
    .await;
    status_until(&g.s, Duration::from_secs(20), |v| v["current_step"] == 1).await;
    status_until(&other, Duration::from_secs(10), |v| {
        v["guards"][0]["state"] == "passing"
    })
    .await;
    g.app.fail(1000);
    status_until(&other, Duration::from_secs(20), |v| v["state"] == "paused").await;
    // Both instances read the breach; give the slower one time to have tried.
    tokio::time::sleep(INTERVAL * 3).await;
    assert_eq!(g.s.audit_actions("rollout.paused").await.len(), 1);
    assert_eq!(g.s.audit_actions("rollout.advanced").await.len(), 1);
    g.s.verify().await;
}
