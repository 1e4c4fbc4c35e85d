//! PostgreSQL `LISTEN`/`NOTIFY` between instances. B polls the store only once an hour, so
//! whatever B learns within a second it learned by listening: grants, revocations, a revoked
//! API token, a flag change on its SSE stream. A listening connection the database
//! terminates is replaced, what was committed meanwhile is caught up, and an instance that
//! does not listen still follows through its poll.

use crate::harness::{get_json, pg_url, post_json, Serve, ADMIN_TOKEN, POLICY};
use crate::instances::{flag_doc, grant, import, ofrep_value, until_decision};
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

/// A (defaults), B (polling once an hour) and C (not listening, polling every 200 ms) on one
/// PostgreSQL schema.
struct Three {
    a: Serve,
    b: Serve,
    c: Serve,
    url: String,
    _dirs: Vec<tempfile::TempDir>,
}

impl Three {
    async fn start() -> Option<Three> {
        let url = pg_url().await?;
        let dirs: Vec<_> = (0..4)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let key = dirs[3]
            .path()
            .join("audit-signing.pem")
            .display()
            .to_string();
        let base = ["--database-url", &url, "--signing-key", &key];
        let with = |extra: &[&'static str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            v
        };
        // One after the other: the first creates the schema and the administrator.
        let a = Serve::start_with(dirs[0].path(), &base).await;
        let b = Serve::start_with(dirs[1].path(), &with(&["--sync-interval", "1h"])).await;
        let c = Serve::start_with(dirs[2].path(), &with(&["--no-listen"])).await;
        Some(Three {
            a,
            b,
            c,
            url,
            _dirs: dirs,
        })
    }
}

/// Waits (≤ `limit`) until `token` gets `want` from `s`'s `/v1/whoami`.
async fn until_whoami(
    http: &reqwest::Client,
    s: &Serve,
    token: &str,
    want: StatusCode,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let (st, _) = get_json(http, &s.url("/v1/whoami"), token).await;
        if st == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "whoami did not answer {want} within {limit:?} (last {st})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_poll_an_hour_apart_changes_on_one_instance_reach_the_other_within_a_second() {
    let Some(t) = Three::start().await else {
        return;
    };
    let http = reqwest::Client::new();
    let second = Duration::from_secs(1);
    t.a.apply_policy(&http, POLICY).await;
    let bob = t.a.api_token(&http, "bob").await;
    let body = json!({"principal": "dave", "name": "test"});
    let (s, v) = post_json(&http, &t.a.url("/v1/tokens"), ADMIN_TOKEN, &body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (dave, dave_id) = (
        v["token"].as_str().expect("token").to_owned(),
        v["id"].as_str().expect("id").to_owned(),
    );
    // Policy and tokens made on A.
    for token in [&bob, &dave] {
        until_whoami(&http, &t.b, token, StatusCode::OK, second).await;
    }

    let id = grant(&http, &t.a, &t.a, &dave, &bob).await;
    let seen = until_decision(&http, &t.b, true, second).await;
    eprintln!("grant on A honoured by B after {} ms", seen.as_millis());
    let (s, v) = post_json(
        &http,
        &t.a.url(&format!("/v1/requests/{id}/revoke")),
        ADMIN_TOKEN,
        &json!({"reason": "done"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let refused = until_decision(&http, &t.b, false, second).await;
    eprintln!(
        "revocation on A refused by B after {} ms",
        refused.as_millis()
    );

    // A revoked API token stops working on B, which had it cached.
    until_whoami(&http, &t.b, &dave, StatusCode::OK, second).await;
    let resp = http
        .delete(t.a.url(&format!("/v1/tokens/{dave_id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("revoke token");
    assert_eq!(resp.status(), StatusCode::OK);
    let gone = until_whoami(&http, &t.b, &dave, StatusCode::UNAUTHORIZED, second).await;
    eprintln!(
        "token revoked on A refused by B after {} ms",
        gone.as_millis()
    );

    // A flag change on A reaches an SSE subscriber of B.
    import(&http, &t.a, &flag_doc("off")).await;
    let key = t.a.client_key(&http, "staging").await;
    let start = Instant::now();
    while ofrep_value(&http, &t.b, &key).await != json!(false) {
        assert!(start.elapsed() < second, "B never saw the first import");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut events = http
        .get(t.b.url("/ofrep/v1/events"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("subscribe");
    assert_eq!(events.status(), StatusCode::OK);
    let start = Instant::now();
    import(&http, &t.a, &flag_doc("on")).await;
    let mut got = String::new();
    while !got.contains("refetchEvaluation") {
        let left = second.saturating_sub(start.elapsed());
        let chunk = tokio::time::timeout(left, events.chunk())
            .await
            .expect("an event from B within a second")
            .expect("stream")
            .expect("the stream stays open");
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    eprintln!(
        "flag import on A reached B's SSE subscriber after {} ms",
        start.elapsed().as_millis()
    );
    assert_eq!(ofrep_value(&http, &t.b, &key).await, json!(true));
}

/// The backends listening for this schema's changes: pid and state.
async fn listeners(pool: &sqlx::PgPool, channel: &str) -> Vec<(i32, String)> {
    sqlx::query_as(
        "SELECT pid, coalesce(state, '') FROM pg_stat_activity \
         WHERE application_name = $1 AND query = $2",
    )
    .bind(sluice_store::LISTENER_APPLICATION)
    .bind(format!("LISTEN \"{channel}\""))
    .fetch_all(pool)
    .await
    .expect("pg_stat_activity")
}

/// Waits (≤ 5 s) until `n` connections listen, idle, none of them one of `old`; their pids.
async fn until_listening(pool: &sqlx::PgPool, channel: &str, n: usize, old: &[i32]) -> Vec<i32> {
    let start = Instant::now();
    loop {
        let now = listeners(pool, channel).await;
        let fresh: Vec<i32> = now
            .iter()
            .filter(|(pid, state)| state == "idle" && !old.contains(pid))
            .map(|(pid, _)| *pid)
            .collect();
        if fresh.len() == n && now.len() == n {
            return fresh;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "expected {n} new listeners, found {now:?} (old {old:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_listener_comes_back_and_what_it_missed_is_caught_up() {
    let Some(t) = Three::start().await else {
        return;
    };
    let http = reqwest::Client::new();
    let pool = sqlx::PgPool::connect(&t.url).await.expect("connect");
    let channel: String = sqlx::query_scalar("SELECT 'sluice_' || left(md5(current_schema()), 16)")
        .fetch_one(&pool)
        .await
        .expect("channel");
    // A and B listen; C does not.
    let first = until_listening(&pool, &channel, 2, &[]).await;

    t.a.apply_policy(&http, POLICY).await;
    let dave = t.a.api_token(&http, "dave").await;
    let bob = t.a.api_token(&http, "bob").await;
    for s in [&t.b, &t.c] {
        for token in [&bob, &dave] {
            until_whoami(&http, s, token, StatusCode::OK, Duration::from_secs(1)).await;
        }
    }
    let id = grant(&http, &t.a, &t.a, &dave, &bob).await;
    for s in [&t.b, &t.c] {
        until_decision(&http, s, true, Duration::from_secs(1)).await;
    }

    // The database cuts both listening connections; the revocation is committed at once,
    // most likely before they listen again (its notification then reaches nobody).
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND query = $2",
    )
    .bind(sluice_store::LISTENER_APPLICATION)
    .bind(format!("LISTEN \"{channel}\""))
    .fetch_all(&pool)
    .await
    .expect("terminate");
    assert_eq!(cut, [true, true]);
    let (s, v) = post_json(
        &http,
        &t.a.url(&format!("/v1/requests/{id}/revoke")),
        ADMIN_TOKEN,
        &json!({"reason": "done"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // B (hourly poll) catches up when it listens again; C through its poll.
    let b = until_decision(&http, &t.b, false, Duration::from_secs(3)).await;
    let c = until_decision(&http, &t.c, false, Duration::from_secs(1)).await;
    eprintln!(
        "revoked while nobody listened: B refused after {} ms, C after {} ms",
        b.as_millis(),
        c.as_millis()
    );

    // Both listen again, on new connections; what B learns now it learns from them.
    until_listening(&pool, &channel, 2, &first).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    grant(&http, &t.a, &t.a, &dave, &bob).await;
    let again = until_decision(&http, &t.b, true, Duration::from_secs(1)).await;
    eprintln!(
        "after the listener came back: grant on A honoured by B after {} ms",
        again.as_millis()
    );
}
