//! Admission: the token authenticates, the live grant picks the role, PostgreSQL enforces it.

use crate::harness::{db_error, ADMIN_TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_grant_is_refused_with_the_entitlement_to_request() {
    let env = crate::env!();
    let alice = env.token("alice").await;
    let Err(err) = env.connect("alice", &alice).await else {
        panic!("admitted without a grant")
    };
    let (code, msg) = db_error(&err);
    assert_eq!(code, "42501", "{msg}");
    assert!(msg.contains(&format!("db:{}", env.up.dbname)), "{msg}");
    let hint = err
        .as_db_error()
        .and_then(|d| d.hint())
        .unwrap_or_default()
        .to_owned();
    assert!(
        hint.contains("sluice access request orders-db-read --for 1h --reason"),
        "{hint}"
    );

    // An unknown database gets the same shape of answer: nothing tells it apart.
    let Err(e) = tokio_postgres::connect(
        &env.conninfo("alice", &alice, "no_such_db_anywhere"),
        tokio_postgres::NoTls,
    )
    .await
    else {
        panic!("admitted to an unknown database")
    };
    let (code2, msg2) = db_error(&e);
    assert_eq!(code2, "42501");
    assert_eq!(
        msg2.replace("no_such_db_anywhere", "X"),
        msg.replace(&env.up.dbname, "X")
    );
    // Even with a grant on the real one, an unknown name is refused the same way.
    env.grant(&alice, "orders-db-read", "10m").await;
    let Err(e) = tokio_postgres::connect(
        &env.conninfo("alice", &alice, "no_such_db_anywhere"),
        tokio_postgres::NoTls,
    )
    .await
    else {
        panic!("admitted to an unknown database")
    };
    assert_eq!(db_error(&e).0, "42501");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_grant_selects_and_postgres_refuses_the_insert() {
    let env = crate::env!();
    let alice = env.token("alice").await;
    env.grant(&alice, "orders-db-read", "10m").await;
    let (client, _conn) = env.connect("alice", &alice).await.expect("admitted");
    let rows = client
        .query("SELECT item FROM orders ORDER BY id", &[])
        .await
        .expect("select");
    let items: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(items, ["apple", "pear"]);
    let who: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("current_user")
        .get(0);
    assert_eq!(who, env.up.reader);
    let err = client
        .execute("INSERT INTO orders (item) VALUES ('plum')", &[])
        .await
        .expect_err("the reader cannot insert");
    let (code, msg) = db_error(&err);
    assert_eq!(code, "42501", "PostgreSQL's own permission error: {msg}");
    assert!(msg.contains("permission denied"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_grant_gets_the_writer_role() {
    let env = crate::env!();
    let alice = env.token("alice").await;
    env.grant(&alice, "orders-db-write", "10m").await;
    let (client, _conn) = env.connect("alice", &alice).await.expect("admitted");
    let n = client
        .execute("INSERT INTO orders (item) VALUES ($1)", &[&"plum"])
        .await
        .expect("insert");
    assert_eq!(n, 1);
    let count: i64 = client
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .expect("select")
        .get(0);
    assert_eq!(count, 3);
    let who: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("current_user")
        .get(0);
    assert_eq!(who, env.up.writer, "the strongest action the grant allows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_client_keys_fail_authentication() {
    let env = crate::env!();
    let alice = env.token("alice").await;
    env.grant(&alice, "orders-db-read", "10m").await;
    let key = env
        .post(
            ADMIN_TOKEN,
            "/v1/tokens",
            serde_json::json!({"principal": "alice", "name": "k", "kind": "client", "environment": "production"}),
            201,
        )
        .await;
    let client_key = key["token"].as_str().map(str::to_owned);
    let wrong =
        "slu_api_ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff".to_owned();
    let mut cases = vec![
        ("alice", wrong),
        ("alice", "not-a-token".into()),
        ("bob", alice.clone()),
    ];
    if let Some(k) = client_key {
        cases.push(("alice", k));
    }
    for (user, token) in cases {
        let Err(e) = env.connect(user, &token).await else {
            panic!("{user} admitted with a bad token")
        };
        let (code, msg) = db_error(&e);
        assert_eq!(code, "28P01", "{user}: {msg}");
        assert!(msg.contains("password authentication failed"), "{msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_over_tls_and_no_token_in_plaintext() {
    let env = crate::env!(sluice_gateway::LogMode::SessionLog, false);
    let alice = env.token("alice").await;
    env.grant(&alice, "orders-db-read", "10m").await;
    let (ok, out, err) = env.psql("alice", &alice, "require", "SELECT count(*) FROM orders");
    assert!(ok, "psql over TLS: {err}");
    assert_eq!(out.trim(), "2");
    let (ok, _, err) = env.psql(
        "alice",
        &alice,
        "require",
        "INSERT INTO orders (item) VALUES ('x')",
    );
    assert!(!ok);
    assert!(err.contains("permission denied for table orders"), "{err}");
    let (ok, _, err) = env.psql("carol", &env.token("carol").await, "require", "SELECT 1");
    assert!(!ok);
    assert!(
        err.contains("sluice access request orders-db-read"),
        "psql shows the hint: {err}"
    );
    assert!(!env.fingerprint.is_empty());
    // Without TLS the token is not even asked for.
    let (ok, _, err) = env.psql("alice", &alice, "disable", "SELECT 1");
    assert!(!ok);
    assert!(err.contains("accepted only over TLS"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_password_never_reaches_the_client() {
    let env = crate::env!();
    let alice = env.token("alice").await;
    env.grant(&alice, "orders-db-read", "10m").await;
    // Speak the protocol by hand and keep every byte the gateway sends.
    use bytes::BytesMut;
    use postgres_protocol::message::frontend;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(env.pg)
        .await
        .expect("connect");
    let mut buf = BytesMut::new();
    frontend::startup_message(
        [("user", "alice"), ("database", env.up.dbname.as_str())],
        &mut buf,
    )
    .unwrap();
    s.write_all(&buf).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let n = s.read(&mut chunk).await.unwrap();
    got.extend_from_slice(&chunk[..n]);
    buf.clear();
    frontend::password_message(alice.as_bytes(), &mut buf).unwrap();
    s.write_all(&buf).await.unwrap();
    buf.clear();
    frontend::query("SELECT current_user", &mut buf).unwrap();
    frontend::terminate(&mut buf);
    s.write_all(&buf).await.unwrap();
    loop {
        let n = s.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains(&env.up.reader), "the query ran: {text}");
    assert!(
        !text.contains(&env.up.password),
        "password leaked to the client"
    );
    assert!(
        !got.windows(4).any(|w| w == b"SCRA"),
        "no SASL exchange reaches the client"
    );
}

/// A connection from `127.0.0.<n>` through the gateway.
async fn connect_from(
    env: &crate::harness::Env,
    n: u8,
    user: &str,
    token: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, n], 0)))
        .expect("bind");
    let stream = socket.connect(env.pg).await.expect("tcp connect");
    let config: tokio_postgres::Config = env
        .conninfo(user, token, &env.up.dbname)
        .parse()
        .expect("config");
    let (client, conn) = config.connect_raw(stream, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// Guessing passwords through the gateway counts with the API's failures per address: after
/// too many, the address is refused (a right token included) with its own message, here and
/// on the API, while another address connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_guesser_is_refused_by_address_here_and_on_the_api() {
    use sluice_server::auth_failures::REFUSE_AFTER;
    let env = crate::env!();
    let alice = env.token("alice").await;
    env.grant(&alice, "orders-db-read", "10m").await;
    // A right token this instance has not verified yet (a verified one, in the token cache,
    // passes from anywhere: an operator sharing the address is not locked out).
    let fresh = env.token("alice").await;
    // Failures count by the minute of the clock, which is the real one here: start the
    // guesses (about 3 s of them, the slowed ones included) well before a minute ends.
    while chrono::Timelike::second(&sluice_core::Clock::now(&sluice_core::SystemClock)) >= 50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for n in 1..=REFUSE_AFTER {
        // Each guess its own prefix: only the address counts.
        let guess = format!("slu_api_{:016x}{:048x}", 0xbeef_0000_u64 + u64::from(n), n);
        let Err(e) = connect_from(&env, 2, "alice", &guess).await else {
            panic!("admitted with a guess")
        };
        assert_eq!(db_error(&e).0, "28P01", "guess {n}");
    }
    let Err(e) = connect_from(&env, 2, "alice", &fresh).await else {
        panic!("a refused address admitted")
    };
    let (code, msg) = db_error(&e);
    assert_eq!(code, "28000", "{msg}");
    assert!(msg.contains("too many failed authentications"), "{msg}");
    let r = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client")
        .get(format!("http://{}/v1/whoami", env.http))
        .bearer_auth(&fresh)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 429, "the API refuses the address too");
    let client = connect_from(&env, 3, "alice", &fresh)
        .await
        .expect("another address connects");
    client.simple_query("SELECT 1").await.expect("query");
}
