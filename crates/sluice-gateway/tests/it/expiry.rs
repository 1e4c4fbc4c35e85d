//! The session ends with the grant: at expiry and at revocation, idle or mid-query, within
//! one second, and the upstream backend is gone.

use crate::harness::{db_error, Env, ADMIN_TOKEN};
use chrono::{DateTime, Utc};
use std::time::Duration;

async fn grant_until(env: &Env, token: &str, duration: &str) -> (String, DateTime<Utc>) {
    let id = env.grant(token, "orders-db-read", duration).await;
    let v = env.get(token, &format!("/v1/requests/{id}")).await;
    let at = v["expires_at"].as_str().expect("expires_at");
    (id, at.parse().expect("timestamp"))
}

fn since(t: DateTime<Utc>) -> chrono::TimeDelta {
    sluice_core::Clock::now(&sluice_core::SystemClock) - t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_busy_sessions_end_at_expiry() {
    let env = crate::env!();
    let alice = env.token("alice").await;
    let (id, expires_at) = grant_until(&env, &alice, "2s").await;
    let (idle, idle_conn) = env.connect("alice", &alice).await.expect("admitted");
    let (busy, _busy_conn) = env.connect("alice", &alice).await.expect("admitted");
    assert_eq!(env.up.backends().await, 2);
    let sleeping = tokio::spawn(async move { busy.query("SELECT pg_sleep(30)", &[]).await });

    // The busy one: its query fails with the gateway's FATAL, not PostgreSQL's cancel.
    let err = tokio::time::timeout(Duration::from_secs(5), sleeping)
        .await
        .expect("cut in time")
        .expect("task")
        .expect_err("the query is cut");
    let late = since(expires_at);
    let (code, msg) = db_error(&err);
    assert_eq!(code, "57P01", "{msg}");
    assert!(
        msg.contains(&format!(
            "ended at {}",
            expires_at.format("%Y-%m-%dT%H:%M:%SZ")
        )) && msg.contains(&format!("grant {id} expired")),
        "{msg}"
    );
    assert!(
        late < chrono::TimeDelta::seconds(1),
        "cut {late} after expiry"
    );

    // The idle one: its connection ends with the same error.
    let ended = tokio::time::timeout(Duration::from_secs(2), idle_conn)
        .await
        .expect("idle session cut")
        .expect("task");
    let e = ended.expect_err("ended by the gateway");
    assert_eq!(db_error(&e).0, "57P01");
    assert!(idle.is_closed());
    env.up.wait_no_backends(Duration::from_secs(1)).await;

    // A new session under the expired grant is refused.
    assert!(env.connect("alice", &alice).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_cuts_idle_and_busy_sessions() {
    let env = crate::env!();
    let alice = env.token("alice").await;
    let (id, _) = grant_until(&env, &alice, "1h").await;
    let (_idle, idle_conn) = env.connect("alice", &alice).await.expect("admitted");
    let (busy, _busy_conn) = env.connect("alice", &alice).await.expect("admitted");
    let sleeping = tokio::spawn(async move { busy.query("SELECT pg_sleep(30)", &[]).await });
    // The sleep is running upstream.
    let admin = crate::harness::pg_admin(&env.up.admin_url).await;
    for _ in 0..100 {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'SELECT pg_sleep%' AND state = 'active'",
                &[&env.up.dbname],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if n == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let revoked = std::time::Instant::now();
    env.post(
        ADMIN_TOKEN,
        &format!("/v1/requests/{id}/revoke"),
        serde_json::json!({"reason": "test"}),
        200,
    )
    .await;
    let err = tokio::time::timeout(Duration::from_secs(3), sleeping)
        .await
        .expect("cut in time")
        .expect("task")
        .expect_err("cut");
    assert!(
        revoked.elapsed() < Duration::from_secs(1),
        "{:?}",
        revoked.elapsed()
    );
    let (code, msg) = db_error(&err);
    assert_eq!(code, "57P01");
    assert!(msg.contains(&format!("grant {id} was revoked")), "{msg}");
    let e = tokio::time::timeout(Duration::from_secs(2), idle_conn)
        .await
        .expect("idle cut")
        .expect("task")
        .expect_err("ended");
    assert_eq!(db_error(&e).0, "57P01");
    env.up.wait_no_backends(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_reaches_the_upstream_backend() {
    let env = crate::env!();
    let alice = env.token("alice").await;
    env.grant(&alice, "orders-db-read", "10m").await;
    let (client, _conn) = env.connect("alice", &alice).await.expect("admitted");
    let cancel = client.cancel_token();
    let sleeping = tokio::spawn(async move {
        let r = client.query("SELECT pg_sleep(30)", &[]).await;
        (r, client)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The key the gateway handed out, sent to the gateway like psql's Ctrl-C.
    cancel
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("cancel sent");
    let (r, client) = tokio::time::timeout(Duration::from_secs(5), sleeping)
        .await
        .expect("cancelled in time")
        .expect("task");
    let (code, msg) = db_error(&r.expect_err("cancelled"));
    assert_eq!(code, "57014", "PostgreSQL's own query_canceled: {msg}");
    // The session goes on.
    let n: i64 = client
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .expect("still connected")
        .get(0);
    assert_eq!(n, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_lists_reads_and_kills_a_session() {
    let env = crate::env!();
    let alice = env.token("alice").await;
    env.grant(&alice, "orders-db-read", "10m").await;
    let (client, conn) = env.connect("alice", &alice).await.expect("admitted");
    client.batch_execute("SELECT 42").await.expect("query");
    let list = env.get(ADMIN_TOKEN, "/v1/db/sessions").await;
    let sessions = list["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "{list}");
    assert_eq!(sessions[0]["live"], true);
    assert_eq!(sessions[0]["role"], env.up.reader.as_str());
    assert_eq!(sessions[0]["statements"], 1);
    let id = sessions[0]["id"].as_str().expect("id").to_owned();
    // Alice sees her own; the statements with their times.
    let detail = env.get(&alice, &format!("/v1/db/sessions/{id}")).await;
    // The log is written in the background; the live view reads it as it is.
    let _ = detail;
    // Only an administrator may kill.
    env.post(
        &alice,
        &format!("/v1/db/sessions/{id}/kill"),
        serde_json::json!({}),
        403,
    )
    .await;
    env.post(
        ADMIN_TOKEN,
        &format!("/v1/db/sessions/{id}/kill"),
        serde_json::json!({}),
        200,
    )
    .await;
    let e = tokio::time::timeout(Duration::from_secs(2), conn)
        .await
        .expect("killed in time")
        .expect("task")
        .expect_err("ended");
    let (code, msg) = db_error(&e);
    assert_eq!(code, "57P01");
    assert!(msg.contains("was ended by admin"), "{msg}");
    env.up.wait_no_backends(Duration::from_secs(1)).await;
    for _ in 0..100 {
        let v = env.get(ADMIN_TOKEN, "/v1/db/sessions").await;
        if v["sessions"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = env.get(ADMIN_TOKEN, "/v1/db/sessions?all=true").await;
    assert_eq!(all["sessions"][0]["end_reason"], "killed by admin", "{all}");
    let detail = env.get(&alice, &format!("/v1/db/sessions/{id}")).await;
    assert_eq!(detail["statements"][0]["text"], "SELECT 42", "{detail}");
    let killed = env
        .get(ADMIN_TOKEN, "/v1/audit?action=gateway.session.killed")
        .await;
    assert_eq!(killed["entries"][0]["subject_id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_on_another_instance_ends_the_session_where_it_runs() {
    let env = crate::env!();
    let other = env.second_instance().await;
    let alice = env.token("alice").await;
    env.grant(&alice, "orders-db-read", "10m").await;
    let (client, conn) = env.connect("alice", &alice).await.expect("admitted");
    client.batch_execute("SELECT 1").await.expect("query");
    let list = env.get(ADMIN_TOKEN, "/v1/db/sessions").await;
    let id = list["sessions"][0]["id"].as_str().expect("id").to_owned();

    // Killed through the other instance, which does not hold it.
    let r = env
        .client
        .post(format!("http://{other}/v1/db/sessions/{id}/kill"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    let e = tokio::time::timeout(Duration::from_secs(3), conn)
        .await
        .expect("ended by the holding instance at its next sync")
        .expect("task")
        .expect_err("ended");
    let (code, msg) = db_error(&e);
    assert_eq!(code, "57P01");
    assert!(msg.contains("was ended by admin"), "{msg}");
    env.up.wait_no_backends(Duration::from_secs(1)).await;

    // Once ended, it is no longer live anywhere: a second kill is refused, on both.
    for _ in 0..100 {
        let all = env.get(ADMIN_TOKEN, "/v1/db/sessions?all=true").await;
        if all["sessions"][0]["end_reason"] == "killed by admin" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = env
        .client
        .post(format!("http://{other}/v1/db/sessions/{id}/kill"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 404);
    let killed = env
        .get(ADMIN_TOKEN, "/v1/audit?action=gateway.session.killed")
        .await;
    assert_eq!(
        killed["entries"].as_array().map(Vec::len),
        Some(1),
        "{killed}"
    );
}

/// Expiry to the client seeing the disconnect, over many sessions (`GW_EXPIRY_SESSIONS`,
/// default 10, opened 10 at a time: the shared server has few connections to spare).
/// Prints the percentiles BENCHMARKS.md quotes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_session_is_cut_within_a_second_of_expiry() {
    let env = crate::env!();
    let alice = env.token("alice").await;
    let total: usize = std::env::var("GW_EXPIRY_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut delays = Vec::new();
    while delays.len() < total {
        let n = (total - delays.len()).min(10);
        // Long enough to open the batch (SCRAM upstream costs a few ms per connection,
        // much more in a debug build).
        let (_, expires_at) = grant_until(&env, &alice, "4s").await;
        let info = env.conninfo("alice", &alice, &env.up.dbname);
        let opened = futures_util::future::join_all(
            (0..n).map(|_| tokio_postgres::connect(&info, tokio_postgres::NoTls)),
        )
        .await;
        assert!(
            since(expires_at) < chrono::TimeDelta::zero(),
            "the batch opened too slowly"
        );
        // The moment each connection ends, taken where it ends.
        let conns: Vec<_> = opened
            .into_iter()
            .map(|c| {
                let (client, conn) = c.expect("admitted");
                tokio::spawn(async move {
                    let r = conn.await;
                    let seen = since(expires_at);
                    drop(client);
                    (r, seen)
                })
            })
            .collect();
        for c in conns {
            let (r, seen) = tokio::time::timeout(Duration::from_secs(5), c)
                .await
                .expect("cut")
                .expect("task");
            assert_eq!(db_error(&r.expect_err("cut by the gateway")).0, "57P01");
            delays.push(seen.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0);
        }
        env.up.wait_no_backends(Duration::from_secs(2)).await;
    }
    delays.sort_by(f64::total_cmp);
    let pct = |p: f64| delays[((delays.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    eprintln!(
        "expiry → disconnect over {} sessions: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        delays.len(),
        pct(0.5),
        pct(0.99),
        delays[delays.len() - 1]
    );
    assert!(pct(0.99) <= 1000.0, "p99 {} ms", pct(0.99));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_mid_query_leaves_no_backend() {
    let env = crate::env!();
    let alice = env.token("alice").await;
    env.grant(&alice, "orders-db-read", "10m").await;
    let (client, conn) = env.connect("alice", &alice).await.expect("admitted");
    let sleeping = tokio::spawn(async move { client.query("SELECT pg_sleep(30)", &[]).await });
    let admin = crate::harness::pg_admin(&env.up.admin_url).await;
    for _ in 0..100 {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'SELECT pg_sleep%' AND state = 'active'",
                &[&env.up.dbname],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if n == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The client's socket closes without a Terminate.
    conn.abort();
    sleeping.abort();
    env.up.wait_no_backends(Duration::from_secs(2)).await;
}
