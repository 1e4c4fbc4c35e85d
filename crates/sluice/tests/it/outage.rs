//! The database goes away under load and comes back. Simulated with a TCP proxy in front of
//! the shared PostgreSQL server (which other tests keep using): cutting the proxy drops every
//! connection and refuses new ones.

use crate::harness::{get_json, pg_url, post_json, Serve, ADMIN_TOKEN, POLICY};
use reqwest::StatusCode;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// 127.0.0.1:0 → `upstream`, until cut.
struct Proxy {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let open = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (o, c) = (open.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    continue;
                };
                if !o.load(Ordering::SeqCst) {
                    drop(down); // refused
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                c.lock().expect("lock").push(task.abort_handle());
            }
        });
        Proxy {
            addr,
            open,
            conns,
            accept,
        }
    }

    /// Drops every connection and refuses new ones.
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for c in self.conns.lock().expect("lock").drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// The proxied URL: `url` with its host and port replaced by the proxy's.
fn via(url: &str, proxy: SocketAddr) -> (String, SocketAddr) {
    let rest = url.strip_prefix("postgres://").expect("a postgres:// URL");
    let (auth_host, path) = rest.split_once('/').expect("a database in the URL");
    let (auth, host) = match auth_host.rsplit_once('@') {
        Some((a, h)) => (format!("{a}@"), h),
        None => (String::new(), auth_host),
    };
    let upstream: SocketAddr = host.parse().expect("host:port as an IP address");
    (format!("postgres://{auth}{proxy}/{path}"), upstream)
}

struct Outcome {
    status: StatusCode,
    code: Option<String>,
    retry_after: bool,
    took: Duration,
}

async fn call(http: &reqwest::Client, req: reqwest::RequestBuilder) -> Outcome {
    let _ = http;
    let start = Instant::now();
    let resp = req
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the server answers");
    let status = resp.status();
    let retry_after = resp.headers().contains_key("retry-after");
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    Outcome {
        status,
        code: v["code"].as_str().map(str::to_owned),
        retry_after,
        took: start.elapsed(),
    }
}

fn assert_unavailable(what: &str, o: &Outcome) {
    assert_eq!(o.status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
    assert_eq!(o.code.as_deref(), Some("unavailable"), "{what}");
    assert!(o.retry_after, "{what}: Retry-After");
    assert!(o.took < Duration::from_secs(3), "{what} took {:?}", o.took);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_gives_503s_and_the_instance_recovers_by_itself() {
    let Some(url) = pg_url().await else { return };
    let (_, upstream) = via(&url, "127.0.0.1:1".parse().expect("addr"));
    let proxy = Proxy::start(upstream).await;
    let (proxied, _) = via(&url, proxy.addr);
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start_with(dir.path(), &["--database-url", &proxied]).await;
    let http = reqwest::Client::new();
    s.apply_policy(&http, POLICY).await;
    let dave = s.api_token(&http, "dave").await;
    let bob = s.api_token(&http, "bob").await;
    // dave holds a grant: during the outage his decision must not come back as an allow.
    let body = json!({"entitlement": "orders-db-read", "duration": "1h", "reason": "before"});
    let (st, v) = post_json(&http, &s.url("/v1/requests"), &dave, &body).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let granted = v["id"].as_str().expect("id").to_owned();
    let url_approve = s.url(&format!("/v1/requests/{granted}/approve"));
    assert_eq!(
        post_json(&http, &url_approve, &bob, &json!({})).await.0,
        StatusCode::OK
    );
    let question = json!({"subject": {"type": "user", "id": "dave"}, "action": {"name": "read"}, "resource": {"type": "db", "id": "orders"}});
    let (st, v) = post_json(
        &http,
        &s.url("/access/v1/evaluation"),
        ADMIN_TOKEN,
        &question,
    )
    .await;
    assert_eq!((st, v["decision"].as_bool()), (StatusCode::OK, Some(true)));

    // Load through the cut: every answer is a success or a 503, and successes are kept.
    let stop = Arc::new(AtomicBool::new(false));
    // Writes the load has had acknowledged so far: the test waits on it, not on a guess.
    let acks = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..2 {
        let (http, base, dave, stop, acks) = (
            http.clone(),
            s.url(""),
            dave.clone(),
            stop.clone(),
            acks.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut statuses = Vec::new();
            for i in 0..2_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let body = json!({"entitlement": "orders-db-read", "duration": "1h", "reason": format!("load {i}")});
                let (st, v) = post_json(&http, &format!("{base}/v1/requests"), &dave, &body).await;
                if st == StatusCode::CREATED {
                    acked.push(v["id"].as_str().expect("id").to_owned());
                    acks.fetch_add(1, Ordering::SeqCst);
                } else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                statuses.push(st);
            }
            (acked, statuses)
        }));
    }
    // The load is running: some writes went through before the cut.
    acked_at_least(&acks, 10).await;

    proxy.cut();
    // Give in-flight work a moment to meet the cut, then probe.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let body = json!({"entitlement": "orders-db-read", "duration": "1h", "reason": "during"});
    let o = call(
        &http,
        http.post(s.url("/v1/requests"))
            .bearer_auth(&dave)
            .json(&body),
    )
    .await;
    assert_unavailable("a write", &o);
    for _ in 0..2 {
        let o = call(
            &http,
            http.post(s.url("/access/v1/evaluation"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&question),
        )
        .await;
        assert_unavailable("an AuthZEN decision (never an unaudited allow)", &o);
    }
    let o = call(&http, http.get(s.url("/readyz"))).await;
    assert_eq!(o.status, StatusCode::SERVICE_UNAVAILABLE, "readyz");
    assert!(o.took < Duration::from_secs(3), "readyz took {:?}", o.took);
    let o = call(&http, http.get(s.url("/healthz"))).await;
    assert_eq!(o.status, StatusCode::OK, "healthz");
    tokio::time::sleep(Duration::from_millis(500)).await;

    proxy.restore();
    let restored = Instant::now();
    loop {
        let ready = call(&http, http.get(s.url("/readyz"))).await.status == StatusCode::OK;
        if ready {
            let body =
                json!({"entitlement": "orders-db-read", "duration": "1h", "reason": "after"});
            let (st, _) = post_json(&http, &s.url("/v1/requests"), &dave, &body).await;
            if st == StatusCode::CREATED {
                break;
            }
        }
        assert!(
            restored.elapsed() < Duration::from_secs(8),
            "the instance did not recover within 8 s of the database's return"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "recovered {} ms after the database returned",
        restored.elapsed().as_millis()
    );
    // The load itself gets through again, not only the probe.
    acked_at_least(&acks, acks.load(Ordering::SeqCst) + 5).await;
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    let mut statuses = Vec::new();
    for l in load {
        let (a, st) = l.await.expect("load");
        acked.extend(a);
        statuses.extend(st);
    }
    let unavailable = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    eprintln!(
        "load: {} acknowledged, {unavailable} refused with 503",
        acked.len()
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::SERVICE_UNAVAILABLE),
        "only successes and 503s: {statuses:?}"
    );
    assert!(unavailable > 0, "the load met the outage");
    assert!(!acked.is_empty());

    // Nothing acknowledged was lost, the decision is back, and the chain verifies.
    let (st, v) = post_json(
        &http,
        &s.url("/access/v1/evaluation"),
        ADMIN_TOKEN,
        &question,
    )
    .await;
    assert_eq!((st, v["decision"].as_bool()), (StatusCode::OK, Some(true)));
    let requested = s.audit_counts(&http, "access.requested").await;
    for id in acked.iter().chain([&granted]) {
        assert_eq!(requested.get(id), Some(&1), "acknowledged request {id}");
        let (st, _) = get_json(&http, &s.url(&format!("/v1/requests/{id}")), ADMIN_TOKEN).await;
        assert_eq!(st, StatusCode::OK, "{id}");
    }
    s.verify_gap_free(&http).await;
}

/// Waits until `acks` reaches `n` (at most 30 s).
async fn acked_at_least(acks: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while acks.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "the load had {} writes acknowledged, waiting for {n}",
            acks.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
