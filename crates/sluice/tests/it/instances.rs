//! Several `sluice serve` processes on one PostgreSQL database behave as one Sluice: changes
//! on one are honoured by the other within a second, concurrent approvals make one transition,
//! the audit chain stays one linear chain, and killing one loses nothing acknowledged.

use crate::harness::{get_json, pg_url, post_json, Serve, ADMIN_TOKEN, POLICY};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Two instances, A and B, on one PostgreSQL schema, sharing the audit signing key.
pub struct Pair {
    pub a: Serve,
    pub b: Serve,
    pub args: Vec<String>,
    pub dir_a: tempfile::TempDir,
    _dir_b: tempfile::TempDir,
    _keys: tempfile::TempDir,
}

impl Pair {
    /// `None` when PostgreSQL is not configured (see [`pg_url`]).
    pub async fn start() -> Option<Pair> {
        let url = pg_url().await?;
        Some(Self::start_on(&url).await)
    }

    pub async fn start_on(url: &str) -> Pair {
        let keys = tempfile::tempdir().expect("tempdir");
        let key: PathBuf = keys.path().join("audit-signing.pem");
        let args = vec![
            "--database-url".to_owned(),
            url.to_owned(),
            "--signing-key".to_owned(),
            key.display().to_string(),
        ];
        let (dir_a, dir_b) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        // One after the other: the first creates the schema and the administrator.
        let a = Serve::start_with(dir_a.path(), &refs(&args)).await;
        let b = Serve::start_with(dir_b.path(), &refs(&args)).await;
        Pair {
            a,
            b,
            args,
            dir_a,
            _dir_b: dir_b,
            _keys: keys,
        }
    }
}

impl Pair {
    /// Waits (≤ 1 s) until B has caught up with the policy and tokens made on A: each token
    /// authenticates on B.
    pub async fn settle(&self, http: &reqwest::Client, tokens: &[&str]) {
        let start = Instant::now();
        for t in tokens {
            loop {
                let (s, _) = get_json(http, &self.b.url("/v1/whoami"), t).await;
                if s == StatusCode::OK {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(1),
                    "B did not take up A's policy within 1 s"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

pub fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// May `subject` do `action` on `db:orders`, asking `s` as the administrator?
pub async fn decide(
    http: &reqwest::Client,
    s: &Serve,
    subject: &str,
) -> (StatusCode, Option<bool>) {
    let body = json!({
        "subject": {"type": "user", "id": subject},
        "action": {"name": "read"},
        "resource": {"type": "db", "id": "orders"},
    });
    let (st, v) = post_json(http, &s.url("/access/v1/evaluation"), ADMIN_TOKEN, &body).await;
    (st, v["decision"].as_bool())
}

/// Polls `s` every 50 ms until dave's decision is `want`; the time it took.
pub async fn until_decision(
    http: &reqwest::Client,
    s: &Serve,
    want: bool,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let (st, d) = decide(http, s, "dave").await;
        assert_eq!(st, StatusCode::OK);
        if d == Some(want) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "decision did not become {want} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// dave asks on `on`, bob approves on `approve_on`; the request id.
pub async fn grant(
    http: &reqwest::Client,
    on: &Serve,
    approve_on: &Serve,
    dave: &str,
    bob: &str,
) -> String {
    let body = json!({"entitlement": "orders-db-read", "duration": "1h", "reason": "INC-1"});
    let (s, v) = post_json(http, &on.url("/v1/requests"), dave, &body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().expect("id").to_owned();
    let url = approve_on.url(&format!("/v1/requests/{id}/approve"));
    let (s, v) = post_json(http, &url, bob, &json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "active", "{v}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_instance_is_refused_by_the_other_within_a_second() {
    let Some(p) = Pair::start().await else { return };
    let http = reqwest::Client::new();
    p.a.apply_policy(&http, POLICY).await;
    let dave = p.a.api_token(&http, "dave").await;
    let bob = p.a.api_token(&http, "bob").await;

    // Before: no grant anywhere.
    assert_eq!(
        decide(&http, &p.b, "dave").await,
        (StatusCode::OK, Some(false))
    );
    let id = grant(&http, &p.a, &p.a, &dave, &bob).await;
    let seen = until_decision(&http, &p.b, true, Duration::from_secs(1)).await;
    eprintln!("grant on A honoured by B after {} ms", seen.as_millis());

    let start = Instant::now();
    let url = p.a.url(&format!("/v1/requests/{id}/revoke"));
    let (s, v) = post_json(&http, &url, ADMIN_TOKEN, &json!({"reason": "done"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        decide(&http, &p.a, "dave").await.1,
        Some(false),
        "A refuses at once"
    );
    let refused = until_decision(&http, &p.b, false, Duration::from_secs(1)).await;
    let delay = start.elapsed();
    eprintln!(
        "revocation on A refused by B after {} ms (polling every 50 ms)",
        delay.as_millis()
    );
    assert!(refused < Duration::from_secs(1) && delay < Duration::from_secs(1));
    // And it stays refused.
    for _ in 0..3 {
        assert_eq!(decide(&http, &p.b, "dave").await.1, Some(false));
    }
}

pub async fn ofrep_value(http: &reqwest::Client, s: &Serve, key: &str) -> Value {
    let (st, v) = post_json(
        http,
        &s.url("/ofrep/v1/evaluate/flags/checkout-v2"),
        key,
        &json!({"context": {"targetingKey": "u-1"}}),
    )
    .await;
    if st == StatusCode::OK {
        v["value"].clone()
    } else {
        Value::Null
    }
}

pub fn flag_doc(default: &str) -> Value {
    json!({"flags": {"checkout-v2": {
        "state": "ENABLED",
        "variants": {"on": true, "off": false},
        "defaultVariant": default,
    }}})
}

pub async fn import(http: &reqwest::Client, s: &Serve, doc: &Value) {
    let resp = http
        .put(s.url("/v1/environments/staging/flags?create_env=true"))
        .bearer_auth(ADMIN_TOKEN)
        .timeout(Duration::from_secs(10))
        .json(doc)
        .send()
        .await
        .expect("import");
    assert_eq!(resp.status(), StatusCode::OK, "{:?}", resp.text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_change_on_one_instance_reaches_an_sse_subscriber_of_the_other_within_a_second() {
    let Some(p) = Pair::start().await else { return };
    let http = reqwest::Client::new();
    p.a.apply_policy(&http, POLICY).await;
    // The import creates `staging`; a client key names an environment that exists.
    import(&http, &p.a, &flag_doc("off")).await;
    let key = p.a.client_key(&http, "staging").await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while ofrep_value(&http, &p.b, &key).await != json!(false) {
        assert!(Instant::now() < deadline, "B never saw the first import");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut events = http
        .get(p.b.url("/ofrep/v1/events"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("subscribe");
    assert_eq!(events.status(), StatusCode::OK);
    let start = Instant::now();
    import(&http, &p.a, &flag_doc("on")).await;
    let mut got = String::new();
    loop {
        let left = Duration::from_secs(2).saturating_sub(start.elapsed());
        let chunk = tokio::time::timeout(left, events.chunk())
            .await
            .expect("an event from B within 2 s")
            .expect("stream")
            .expect("the stream stays open");
        got.push_str(&String::from_utf8_lossy(&chunk));
        if got.contains("refetchEvaluation") {
            break;
        }
    }
    let delay = start.elapsed();
    eprintln!(
        "flag import on A reached B's SSE subscriber after {} ms",
        delay.as_millis()
    );
    assert!(delay < Duration::from_secs(1), "{delay:?}");
    assert_eq!(
        ofrep_value(&http, &p.b, &key).await,
        json!(true),
        "B evaluates the new flag"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_approvals_across_instances_make_one_transition() {
    let Some(p) = Pair::start().await else { return };
    let http = reqwest::Client::new();
    p.a.apply_policy(&http, POLICY).await;
    let dave = p.a.api_token(&http, "dave").await;
    let bob = p.a.api_token(&http, "bob").await;
    let carol = p.a.api_token(&http, "carol").await;
    p.settle(&http, &[&dave, &bob, &carol]).await;
    let body = json!({"entitlement": "orders-db-read", "duration": "1h", "reason": "race"});
    let (s, v) = post_json(&http, &p.b.url("/v1/requests"), &dave, &body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().expect("id").to_owned();

    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (url, token) = if i % 2 == 0 {
            (p.a.url(&format!("/v1/requests/{id}/approve")), bob.clone())
        } else {
            (
                p.b.url(&format!("/v1/requests/{id}/approve")),
                carol.clone(),
            )
        };
        let (http, barrier) = (http.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            post_json(&http, &url, &token, &json!({})).await.0
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "exactly one approval wins: {statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || s.is_client_error()),
        "the losers are refused, never a server error: {statuses:?}"
    );
    for s in [&p.a, &p.b] {
        assert_eq!(
            s.audit_counts(&http, "access.granted").await.get(&id),
            Some(&1)
        );
        assert_eq!(
            s.audit_counts(&http, "access.approved").await.get(&id),
            Some(&1)
        );
        let (st, v) = get_json(&http, &s.url(&format!("/v1/requests/{id}")), ADMIN_TOKEN).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(v["status"], "active");
        assert_eq!(v["votes"].as_array().map(Vec::len), Some(1), "{v}");
    }
    p.a.verify_gap_free(&http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_load_on_both_instances_keeps_one_verifiable_chain() {
    let Some(p) = Pair::start().await else { return };
    let http = reqwest::Client::new();
    p.a.apply_policy(&http, POLICY).await;
    let dave = p.a.api_token(&http, "dave").await;
    let bob = p.a.api_token(&http, "bob").await;
    p.settle(&http, &[&dave, &bob]).await;
    let both = Arc::new([p.a.addr.clone(), p.b.addr.clone()]);
    let mut tasks = Vec::new();
    for t in 0..4usize {
        let (http, both, dave, bob) = (http.clone(), both.clone(), dave.clone(), bob.clone());
        tasks.push(tokio::spawn(async move {
            let mut writes = 0usize;
            for i in 0..15usize {
                let here = &both[(t + i) % 2];
                let there = &both[(t + i + 1) % 2];
                let body = json!({"entitlement": "orders-db-read", "duration": "1h", "reason": "load"});
                let (s, v) = post_json(&http, &format!("http://{here}/v1/requests"), &dave, &body).await;
                assert_eq!(s, StatusCode::CREATED, "{v}");
                let id = v["id"].as_str().expect("id");
                let url = format!("http://{there}/v1/requests/{id}/approve");
                let (s, v) = post_json(&http, &url, &bob, &json!({})).await;
                assert_eq!(s, StatusCode::OK, "{v}");
                let q = json!({"subject": {"type": "user", "id": "carol"}, "action": {"name": "read"}, "resource": {"type": "db", "id": "orders"}});
                let (s, v) = post_json(&http, &format!("http://{here}/access/v1/evaluation"), ADMIN_TOKEN, &q).await;
                assert_eq!((s, v["decision"].as_bool()), (StatusCode::OK, Some(false)));
                writes += 3;
                if i % 5 == t {
                    let resp = http
                        .put(format!(
                            "http://{there}/v1/environments/staging/flags?create_env=true"
                        ))
                        .bearer_auth(ADMIN_TOKEN)
                        .json(&flag_doc(if i % 2 == 0 { "on" } else { "off" }))
                        .send()
                        .await
                        .expect("import");
                    assert_eq!(resp.status(), StatusCode::OK);
                    writes += 1;
                }
            }
            writes
        }));
    }
    let mut writes = 0;
    for t in tasks {
        writes += t.await.expect("task");
    }
    let n = p.a.verify_gap_free(&http).await;
    assert!(
        n as usize >= writes,
        "{n} entries for {writes} acknowledged writes"
    );
    assert_eq!(
        p.b.verify_gap_free(&http).await,
        n,
        "both instances see one chain"
    );
}

#[derive(Debug, Default)]
struct Seen {
    requested: Vec<String>,
    approved: Vec<String>,
    failures: usize,
    why: Vec<String>,
}

/// Request + approve pairs against `base` until a failure (when `stop_on_failure`), `stop`,
/// or the round limit.
async fn client(
    base: String,
    requester: String,
    approver: String,
    acks: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    stop_on_failure: bool,
) -> Seen {
    let http = reqwest::Client::new();
    let mut seen = Seen::default();
    for round in 0..300 {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let body = json!({"entitlement": "orders-db-read", "duration": "1h", "reason": format!("round {round}")});
        let resp = http
            .post(format!("{base}/v1/requests"))
            .bearer_auth(&requester)
            .timeout(Duration::from_secs(5))
            .json(&body)
            .send()
            .await;
        let id = match resp {
            Ok(r) if r.status() == StatusCode::CREATED => {
                let v: Value = r.json().await.expect("json");
                v["id"].as_str().expect("id").to_owned()
            }
            other => {
                seen.failures += 1;
                seen.why.push(match other {
                    Ok(r) => format!(
                        "request: {} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    ),
                    Err(e) => format!("request: {e}"),
                });
                if stop_on_failure {
                    break;
                }
                continue;
            }
        };
        seen.requested.push(id.clone());
        acks.fetch_add(1, Ordering::SeqCst);
        let resp = http
            .post(format!("{base}/v1/requests/{id}/approve"))
            .bearer_auth(&approver)
            .timeout(Duration::from_secs(5))
            .json(&json!({}))
            .send()
            .await;
        if let Ok(r) = resp.as_ref().map(|r| r.status()) {
            if r == StatusCode::OK {
                seen.approved.push(id);
                acks.fetch_add(1, Ordering::SeqCst);
                continue;
            }
        }
        {
            seen.failures += 1;
            seen.why.push(match resp {
                Ok(r) => format!(
                    "approve: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                ),
                Err(e) => format!("approve: {e}"),
            });
            if stop_on_failure {
                break;
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_instance_loses_nothing_acknowledged_and_the_other_keeps_serving() {
    let Some(p) = Pair::start().await else { return };
    let http = reqwest::Client::new();
    p.a.apply_policy(&http, POLICY).await;
    let (dave, alice) = (
        p.a.api_token(&http, "dave").await,
        p.a.api_token(&http, "alice").await,
    );
    let (bob, carol) = (
        p.a.api_token(&http, "bob").await,
        p.a.api_token(&http, "carol").await,
    );
    p.settle(&http, &[&dave, &alice, &bob, &carol]).await;

    let (acks_a, acks_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut on_a = Vec::new();
    let mut on_b = Vec::new();
    for (requester, approver) in [(&dave, &bob), (&alice, &carol)] {
        on_a.push(tokio::spawn(client(
            format!("http://{}", p.a.addr),
            requester.clone(),
            approver.clone(),
            acks_a.clone(),
            stop.clone(),
            true,
        )));
        on_b.push(tokio::spawn(client(
            format!("http://{}", p.b.addr),
            requester.clone(),
            approver.clone(),
            acks_b.clone(),
            stop.clone(),
            false,
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while acks_a.load(Ordering::SeqCst) < 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        acks_a.load(Ordering::SeqCst) >= 40,
        "A made progress before the kill"
    );
    let Pair {
        a, b, args, dir_a, ..
    } = p;
    a.kill().await;
    let b_at_kill = acks_b.load(Ordering::SeqCst);
    // B keeps serving: it acknowledges 40 more writes, without a failure.
    let deadline = Instant::now() + Duration::from_secs(15);
    while acks_b.load(Ordering::SeqCst) < b_at_kill + 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut seen = Seen::default();
    for c in on_a {
        let one = c.await.expect("client");
        seen.requested.extend(one.requested);
        seen.approved.extend(one.approved);
    }
    let mut b_failures = 0;
    for c in on_b {
        let one = c.await.expect("client");
        b_failures += one.failures;
        for w in one.why.iter().take(5) {
            eprintln!("B failure: {w}");
        }
        seen.requested.extend(one.requested);
        seen.approved.extend(one.approved);
    }
    let b_after = acks_b.load(Ordering::SeqCst) - b_at_kill;
    eprintln!(
        "acknowledged: {} requests, {} approvals; B after the kill: {b_after} writes, {b_failures} failures",
        seen.requested.len(),
        seen.approved.len()
    );
    assert_eq!(b_failures, 0, "B's requests kept succeeding");
    assert!(
        b_after >= 40,
        "B kept serving after A died ({b_after} writes)"
    );

    // A comes back on the same database.
    let a = Serve::start_with(dir_a.path(), &refs(&args)).await;
    let requested = a.audit_counts(&http, "access.requested").await;
    let approved = a.audit_counts(&http, "access.approved").await;
    let granted = a.audit_counts(&http, "access.granted").await;
    for id in &seen.requested {
        assert_eq!(requested.get(id), Some(&1), "acknowledged request {id}");
    }
    for id in &seen.approved {
        assert_eq!(approved.get(id), Some(&1), "acknowledged approval of {id}");
        assert_eq!(granted.get(id), Some(&1), "grant of {id}");
    }
    for (id, n) in requested.iter().chain(&approved).chain(&granted) {
        assert_eq!(*n, 1, "{id} recorded once");
    }
    for id in approved.keys() {
        assert!(
            granted.contains_key(id),
            "{id}: approval and grant commit together"
        );
    }
    let n = a.verify_gap_free(&http).await;
    assert_eq!(b.verify_gap_free(&http).await, n);
    let out = a.ok(Some(ADMIN_TOKEN), &["audit", "verify"]).await;
    assert!(out.starts_with("ok:"), "{out}");
}

/// The database clock: calibrated against PostgreSQL, it tracks `clock_timestamp()`.
#[tokio::test]
async fn the_database_clock_tracks_the_database() {
    use sluice_core::Clock;
    let Some(url) = pg_url().await else { return };
    let store = sluice_store::Store::open(&url).await.expect("open");
    let clock = sluice_server::dbclock::DbClock::new();
    let offset = clock.calibrate(&store).await.expect("calibrate");
    eprintln!("database clock offset: {offset} ms");
    assert!(offset.abs() < 1000, "offset {offset} ms on one machine");
    assert_eq!(clock.offset_ms(), offset);
    // Independently of `db_now_ms`: the server's clock_timestamp() as text.
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let mut worst = 0i64;
    for _ in 0..20 {
        let before = clock.now().timestamp_millis();
        let (text,): (String,) = sqlx::query_as(
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
        )
        .fetch_one(&pool)
        .await
        .expect("clock_timestamp");
        let after = clock.now().timestamp_millis();
        let db = chrono::DateTime::parse_from_rfc3339(&text)
            .expect("timestamp")
            .timestamp_millis();
        let off = if db < before {
            before - db
        } else if db > after {
            db - after
        } else {
            0
        };
        worst = worst.max(off);
        let via_store = store.db_now_ms().await.expect("db now");
        assert!((via_store - clock.now().timestamp_millis()).abs() < 50);
    }
    eprintln!("database clock vs clock_timestamp(): worst {worst} ms outside the read window");
    assert!(
        worst < 10,
        "DbClock::now strays {worst} ms from clock_timestamp()"
    );
    pool.close().await;
    store.close().await;
}
