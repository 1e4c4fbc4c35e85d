//! Connection passwords (`sluice db connect`): short-lived, for one database, only under a
//! live grant, never past it, useless on the HTTP API.

use crate::harness::{db_error, ADMIN_TOKEN};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_password_opens_sessions_on_its_database_only() {
    let env = crate::env!();
    let db = env.up.dbname.clone();
    let alice = env.token("alice").await;
    let path = format!("/v1/db/{db}/password");

    // No grant: refused, with the entitlement to request, as the gateway itself says it.
    let v = env.post(&alice, &path, json!({}), 403).await;
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(&format!("no live grant allows alice to connect to db:{db}"))
            && msg.contains("sluice access request orders-db-read --for 1h"),
        "{v}"
    );

    let grant = env.grant(&alice, "orders-db-read", "30m").await;
    let before = env.app.now();
    let v = env.post(&alice, &path, json!({}), 201).await;
    let after = env.app.now();
    let password = v["password"].as_str().expect("password").to_owned();
    assert!(password.starts_with("slu_pgw_"), "{v}");
    assert_eq!(
        (&v["user"], &v["database"], &v["grant_id"]),
        (&json!("alice"), &json!(db), &json!(grant))
    );
    // Ten minutes by default (from the moment it was issued, stored to the millisecond); the
    // gateway's address comes with it.
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(v["expires_at"].clone()).expect("expires_at");
    let ten = chrono::TimeDelta::minutes(10);
    let ms = chrono::TimeDelta::milliseconds(1);
    assert!(
        before + ten - ms <= expires && expires <= after + ten + ms,
        "{before} .. {after} + 10m vs {expires}"
    );
    assert_eq!(v["gateway"]["address"], json!(env.pg.to_string()));
    assert_eq!(v["gateway"]["certificate_sha256"], json!(env.fingerprint));

    // It opens a session as alice, with her grant's role.
    let (client, _conn) = env.connect("alice", &password).await.expect("admitted");
    let who: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("current_user")
        .get(0);
    assert_eq!(who, env.up.reader);
    // psql too, over TLS, exactly as `sluice db connect` prints it.
    let (ok, out, err) = env.psql("alice", &password, "require", "SELECT count(*) FROM orders");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "2");

    // Not for another database, not as someone else, not on the HTTP API.
    let Err(e) = tokio_postgres::connect(
        &env.conninfo("alice", &password, "some_other_db"),
        tokio_postgres::NoTls,
    )
    .await
    else {
        panic!("a password for one database opened another")
    };
    assert_eq!(db_error(&e).0, "28P01");
    let Err(e) = env.connect("carol", &password).await else {
        panic!("alice's password admitted carol")
    };
    assert_eq!(db_error(&e).0, "28P01");
    let r = env
        .client
        .get(format!("http://{}/v1/whoami", env.http))
        .bearer_auth(&password)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 403);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("only opens sessions through the PostgreSQL gateway")),
        "{body}"
    );

    // Issued passwords are in the audit trail, and never as a token kind of their own.
    let audit = env
        .get(ADMIN_TOKEN, "/v1/audit?action=gateway.password.issued")
        .await;
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["details"]["grant_id"], json!(grant));
    assert!(
        !audit.to_string().contains(&password),
        "the secret is never audited"
    );
    env.post(
        ADMIN_TOKEN,
        "/v1/tokens",
        json!({"principal": "alice", "name": "x", "kind": "db"}),
        400,
    )
    .await;
    // At most an hour.
    let v = env.post(&alice, &path, json!({"ttl": "2h"}), 400).await;
    assert_eq!(v["code"], "invalid_duration", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_password_never_outlives_its_grant() {
    let env = crate::env!();
    let db = env.up.dbname.clone();
    let alice = env.token("alice").await;
    env.grant(&alice, "orders-db-read", "3s").await;
    let v = env
        .post(&alice, &format!("/v1/db/{db}/password"), json!({}), 201)
        .await;
    let password = v["password"].as_str().expect("password").to_owned();
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(v["expires_at"].clone()).expect("expires_at");
    assert!(
        expires - env.app.now() <= chrono::TimeDelta::seconds(3),
        "capped by the 3s grant: {v}"
    );
    env.connect("alice", &password).await.expect("admitted");
    // Past the grant (and so the password), on the real clock: refused, saying why.
    let wait = (expires - env.app.now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(200)).await;
    let Err(e) = env.connect("alice", &password).await else {
        panic!("an expired password opened a session")
    };
    let (code, msg) = db_error(&e);
    assert_eq!(code, "28P01", "{msg}");
    assert!(msg.contains("the password has expired"), "{msg}");
}
