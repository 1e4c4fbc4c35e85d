//! Gateway sessions: a live PostgreSQL session through the real gateway, listed with the time
//! it has left, and opened to read its statements — by its holder and an administrator, not
//! by another user.

use super::*;
use crate::gateway::{start, write_config, Upstream};
use crate::harness::pg_base;
use sqlx::Connection as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_database_session_is_listed_with_its_time_left_and_its_statements() {
    let Some(d) = driver().await else { return };
    let Some(base) = pg_base() else { return };
    let up = Upstream::create(base).await;
    let dir = tempfile::tempdir().unwrap();
    let pg_port = free_port();
    let config = write_config(dir.path(), &up, pg_port);
    let (s, http, alice_token, bob_token) = prepare(start(dir.path(), &config, &up).await).await;
    let body = json!({"entitlement": "orders-db-read", "duration": "30m", "reason": "INC-12 count the stuck orders"});
    let grant = ask(&s, &http, &alice_token, body).await;
    let url = s.url(&format!("/v1/requests/{grant}/approve"));
    let (status, v) = post_json(&http, &url, &bob_token, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{v}");

    // Alice connects through the gateway with her token and runs two statements; the
    // session stays open.
    let opts = sqlx::postgres::PgConnectOptions::new()
        .host("127.0.0.1")
        .port(pg_port)
        .username("alice")
        .password(&alice_token)
        .database("orders")
        .ssl_mode(sqlx::postgres::PgSslMode::Disable);
    let mut conn = sqlx::PgConnection::connect_with(&opts)
        .await
        .expect("admitted");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM items /* stuck orders */")
        .fetch_one(&mut conn)
        .await
        .expect("query");
    assert_eq!(n, 3);
    sqlx::raw_sql("SELECT name FROM items WHERE id = 2")
        .execute(&mut conn)
        .await
        .expect("simple query");

    let alice = browser(&d, 1280, 900).await;
    sign_in(&alice, &s, &alice_token).await;
    alice.goto(&s.url("/ui/sessions")).await.unwrap();
    let row = text(&alice, "li.session.live").await;
    for want in ["alice on db:orders", grant.as_str(), "cut in 29m"] {
        assert!(row.contains(want), "{want} in {row}");
    }
    // It counts down.
    let first = text(&alice, "li.session.live time.countdown").await;
    ticks(&alice, &first).await;
    screenshot(&alice, "sessions.png").await;
    click(&alice, "li.session.live a").await;
    let statements = text(&alice, "ol.statements").await;
    assert!(
        statements.contains("SELECT count(*) FROM items /* stuck orders */")
            && statements.contains("SELECT name FROM items WHERE id = 2"),
        "{statements}"
    );
    assert!(
        !statements.contains(&alice_token),
        "the password is never shown"
    );
    assert!(text(&alice, "h1").await.contains("alice on db:orders"));
    screenshot(&alice, "session.png").await;
    no_horizontal_scroll(&alice).await;
    let session_url = alice.current_url().await.unwrap().to_string();
    alice.close().await.unwrap();

    // Bob (an approver, not an auditor) sees neither the session nor its page; the
    // administrator sees both.
    let bob = browser(&d, 1280, 900).await;
    sign_in(&bob, &s, &bob_token).await;
    bob.goto(&s.url("/ui/sessions")).await.unwrap();
    wait_for(&bob, "h1").await;
    assert_eq!(count(&bob, "li.session").await, 0);
    bob.goto(&session_url).await.unwrap();
    assert!(text(&bob, ".error").await.contains("no gateway session"));
    bob.close().await.unwrap();
    let admin = browser(&d, 1280, 900).await;
    sign_in(&admin, &s, ADMIN_TOKEN).await;
    admin.goto(&s.url("/ui/sessions")).await.unwrap();
    assert!(text(&admin, "li.session.live")
        .await
        .contains("alice on db:orders"));
    admin.close().await.unwrap();
    conn.close().await.ok();
}
