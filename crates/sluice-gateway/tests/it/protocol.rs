//! The relay forwards the protocol as it is: COPY in both directions (and its statement in
//! the session log), LISTEN/NOTIFY with notifications arriving on an idle session.

use crate::harness::{db_error, pg_admin, Env, ADMIN_TOKEN};
use futures_util::{SinkExt, StreamExt, TryStreamExt};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio_postgres::{AsyncMessage, NoTls, Notification};

/// Waits until the session of `role` has ended; returns its detail (session and statements).
async fn ended_session(env: &Env, role: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = env.get(ADMIN_TOKEN, "/v1/db/sessions?all=true").await;
        let ended = v["sessions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["role"] == role && !s["ended_at"].is_null());
        if let Some(s) = ended {
            let id = s["id"].as_str().expect("id");
            return env.get(ADMIN_TOKEN, &format!("/v1/db/sessions/{id}")).await;
        }
        assert!(Instant::now() < deadline, "no ended session of {role}: {v}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_passes_through_both_ways_and_is_logged() {
    let env = crate::env!();
    let alice = env.token("alice").await;
    env.grant(&alice, "orders-db-write", "10m").await;
    let (client, conn) = env.connect("alice", &alice).await.expect("admitted");

    // COPY FROM STDIN: enough rows that the data spans many relay reads and CopyData frames.
    const ROWS: usize = 5000;
    let sink = client
        .copy_in::<_, bytes::Bytes>("COPY orders (item) FROM STDIN")
        .await
        .expect("copy in starts");
    futures_util::pin_mut!(sink);
    for chunk in (0..ROWS).collect::<Vec<_>>().chunks(500) {
        let text: String = chunk.iter().map(|i| format!("copied-{i}\n")).collect();
        sink.send(bytes::Bytes::from(text))
            .await
            .expect("copy data");
    }
    let n = sink.finish().await.expect("copy done");
    assert_eq!(n, ROWS as u64);
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM orders WHERE item LIKE 'copied-%'",
            &[],
        )
        .await
        .expect("select")
        .get(0);
    assert_eq!(count, ROWS as i64);

    // COPY TO STDOUT: the rows come back, in order, byte for byte.
    let out: Vec<bytes::Bytes> = client
        .copy_out("COPY (SELECT item FROM orders ORDER BY id) TO STDOUT")
        .await
        .expect("copy out starts")
        .try_collect()
        .await
        .expect("copy out data");
    let text = String::from_utf8(out.concat()).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), ROWS + 2, "apple, pear and the copied rows");
    assert_eq!(&lines[..3], ["apple", "pear", "copied-0"]);
    assert_eq!(lines[ROWS + 1], format!("copied-{}", ROWS - 1));

    // The session still works after both COPYs.
    let one: i32 = client.query_one("SELECT 1", &[]).await.expect("q").get(0);
    assert_eq!(one, 1);
    drop(client);
    let _ = conn.await;

    // The COPY statements are in the session log (tokio-postgres sends them as Parse).
    let detail = ended_session(&env, &env.up.writer).await;
    let texts: Vec<(&str, &str)> = detail["statements"]
        .as_array()
        .expect("statements")
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap_or_default(),
                s["text"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        texts.contains(&("parse", "COPY orders (item) FROM STDIN")),
        "{detail}"
    );
    assert!(
        texts.contains(&(
            "parse",
            "COPY (SELECT item FROM orders ORDER BY id) TO STDOUT"
        )),
        "{detail}"
    );
    // No COPY data was taken for a statement.
    assert!(
        !texts.iter().any(|(_, t)| t.contains("copied-1")),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_is_refused_by_postgres_under_a_read_grant() {
    let env = crate::env!();
    let alice = env.token("alice").await;
    env.grant(&alice, "orders-db-read", "10m").await;
    let (client, _conn) = env.connect("alice", &alice).await.expect("admitted");
    let refused = async {
        let sink = client
            .copy_in::<_, bytes::Bytes>("COPY orders (item) FROM STDIN")
            .await?;
        futures_util::pin_mut!(sink);
        sink.send(bytes::Bytes::from_static(b"plum\n")).await?;
        sink.finish().await
    }
    .await;
    let err = refused.expect_err("the reader cannot COPY into orders");
    let (code, msg) = db_error(&err);
    assert_eq!(code, "42501", "PostgreSQL's own permission error: {msg}");
    assert!(msg.contains("permission denied"), "{msg}");
    // COPY TO works for the reader, and nothing was inserted. (A new session: after a COPY
    // refused before copy mode, tokio-postgres's own connection is out of step with the
    // server, directly as through the gateway — rust-postgres/rust-postgres#1337.)
    drop(client);
    let (client, _conn) = env.connect("alice", &alice).await.expect("admitted");
    let out: Vec<bytes::Bytes> = client
        .copy_out("COPY orders (item) TO STDOUT")
        .await
        .expect("copy out")
        .try_collect()
        .await
        .expect("copy out data");
    assert_eq!(out.concat(), b"apple\npear\n");
}

/// A connection driven by hand, its notifications sent to the returned channel.
async fn listener(
    env: &Env,
    token: &str,
) -> (
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<Notification>,
) {
    let (client, mut conn) =
        tokio_postgres::connect(&env.conninfo("alice", token, &env.up.dbname), NoTls)
            .await
            .expect("admitted");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let AsyncMessage::Notification(n) = m {
                let _ = tx.send(n);
            }
        }
    });
    (client, rx)
}

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Notification>) -> Notification {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a notification within 5 s")
        .expect("the connection is still open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_a_listening_session() {
    let env = crate::env!();
    let alice = env.token("alice").await;
    env.grant(&alice, "orders-db-read", "10m").await;
    let (a, mut notes) = listener(&env, &alice).await;
    a.batch_execute("LISTEN orders_changed")
        .await
        .expect("listen");

    // From the upstream directly: the session is idle, the notification arrives on its own.
    let admin = pg_admin(&env.up.url_as_admin()).await;
    admin
        .batch_execute("NOTIFY orders_changed, 'from upstream'")
        .await
        .expect("notify");
    let n = next(&mut notes).await;
    assert_eq!(
        (n.channel(), n.payload()),
        ("orders_changed", "from upstream")
    );

    // From a second gateway session (carol's), with the extended protocol.
    let carol = env.token("carol").await;
    env.grant(&carol, "orders-db-read", "10m").await;
    let (b, b_conn) =
        tokio_postgres::connect(&env.conninfo("carol", &carol, &env.up.dbname), NoTls)
            .await
            .expect("carol admitted");
    tokio::spawn(b_conn);
    b.execute("SELECT pg_notify('orders_changed', $1)", &[&"from carol"])
        .await
        .expect("pg_notify");
    let n = next(&mut notes).await;
    assert_eq!(n.payload(), "from carol");

    // The listener's own queries still work, and after UNLISTEN nothing more arrives.
    a.batch_execute("UNLISTEN orders_changed")
        .await
        .expect("unlisten");
    admin
        .batch_execute("NOTIFY orders_changed, 'too late'")
        .await
        .expect("notify");
    let count: i64 = a
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .expect("select")
        .get(0);
    assert_eq!(count, 2);
    assert!(notes.try_recv().is_err(), "no notification after UNLISTEN");
}
