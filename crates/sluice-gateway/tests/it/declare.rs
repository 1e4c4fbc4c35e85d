//! Databases declared through the API: administrators only, audited, credentials only named
//! (and only variables under `SLUICE_DB_`), served by the gateway at once, config-file names
//! untouchable.

use crate::harness::{db_error, ADMIN_TOKEN};
use serde_json::{json, Value};

async fn put(env: &crate::harness::Env, token: &str, name: &str, body: Value) -> (u16, Value) {
    let r = env
        .client
        .put(format!("http://{}/v1/db/databases/{name}", env.http))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn delete(env: &crate::harness::Env, token: &str, name: &str) -> (u16, Value) {
    let r = env
        .client
        .delete(format!("http://{}/v1/db/databases/{name}", env.http))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_declared_through_the_api_is_served_at_once_and_audited() {
    let env = crate::env!();
    // A second name for the same upstream, declared through the API. The policy's
    // entitlement covers `db:<dbname>`; this one is `db:<dbname>_api`, covered by the
    // write entitlement once the policy says so.
    let name = format!("{}_api", env.up.dbname);
    let var = format!("SLUICE_DB_{}", env.up.dbname.to_uppercase());
    std::env::set_var(&var, &env.up.password);
    let spec = json!({
        "upstream": {"host": "127.0.0.1", "port": 5432, "dbname": env.up.dbname},
        "roles": [{"action": "read", "user": env.up.reader, "password_env": var}],
    });
    let policy = crate::harness::policy(&env.up.dbname).replace(
        "      - resource: \"db:",
        &format!(
            "      - resource: \"db:{name}\"\n        actions: [read]\n      - resource: \"db:"
        ),
    );
    env.post(ADMIN_TOKEN, "/v1/policy", json!({"source": policy}), 200)
        .await;
    let alice = env.token("alice").await;
    env.grant(&alice, "orders-db-read", "10m").await;

    // Before: the same refusal as any unknown database.
    let Err(e) =
        tokio_postgres::connect(&env.conninfo("alice", &alice, &name), tokio_postgres::NoTls).await
    else {
        panic!("admitted to an undeclared database")
    };
    assert_eq!(db_error(&e).0, "42501");

    // Only administrators declare.
    let (st, v) = put(&env, &alice, &name, spec.clone()).await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = put(&env, ADMIN_TOKEN, &name, spec.clone()).await;
    assert_eq!((st, &v["created"]), (201, &json!(true)), "{v}");

    // Served at once, with the declared role.
    let (client, _conn) =
        tokio_postgres::connect(&env.conninfo("alice", &alice, &name), tokio_postgres::NoTls)
            .await
            .map(|(c, conn)| (c, tokio::spawn(conn)))
            .expect("admitted through the declared database");
    let who: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("current_user")
        .get(0);
    assert_eq!(who, env.up.reader);

    // Listed for administrators with where it was declared; the config file's too.
    let list = env.get(ADMIN_TOKEN, "/v1/db/databases").await;
    let dbs = list["databases"].as_array().cloned().unwrap_or_default();
    let find = |n: &str| dbs.iter().find(|d| d["name"] == n).cloned();
    let api = find(&name).expect("the declared database is listed");
    assert_eq!(api["declared_in"], "api", "{list}");
    assert_eq!(api["declared_by"], "admin", "{list}");
    assert_eq!(api["roles"][0]["password_env"], json!(var));
    assert_eq!(
        find(&env.up.dbname).expect("the config file's")["declared_in"],
        "config"
    );
    assert!(
        !list.to_string().contains(&env.up.password),
        "credentials are never shown"
    );
    // Nobody else learns which databases exist.
    let r = env
        .client
        .get(format!("http://{}/v1/db/databases", env.http))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 403);

    // What the API may not do: name a file, a variable outside SLUICE_DB_, a config name.
    let mut with_file = spec.clone();
    with_file["roles"][0] =
        json!({"action": "read", "user": "x", "password_file": "/etc/hostname"});
    let (st, v) = put(&env, ADMIN_TOKEN, "other", with_file).await;
    assert_eq!((st, &v["code"]), (400, &json!("invalid_database")), "{v}");
    let mut outside = spec.clone();
    outside["roles"][0]["password_env"] = json!("SLUICE_ADMIN_TOKEN");
    let (st, v) = put(&env, ADMIN_TOKEN, "other", outside).await;
    assert_eq!((st, &v["code"]), (400, &json!("invalid_database")), "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("SLUICE_DB_")),
        "{v}"
    );
    let (st, v) = put(&env, ADMIN_TOKEN, &env.up.dbname, spec.clone()).await;
    assert_eq!((st, &v["code"]), (409, &json!("declared_in_config")), "{v}");
    let (st, v) = delete(&env, ADMIN_TOKEN, &env.up.dbname).await;
    assert_eq!((st, &v["code"]), (409, &json!("declared_in_config")), "{v}");

    // Removed: no new session (the same refusal as never declared), audited both ways.
    let (st, v) = delete(&env, ADMIN_TOKEN, &name).await;
    assert_eq!(st, 200, "{v}");
    let Err(e) =
        tokio_postgres::connect(&env.conninfo("alice", &alice, &name), tokio_postgres::NoTls).await
    else {
        panic!("admitted to a removed database")
    };
    assert_eq!(db_error(&e).0, "42501");
    let (st, _) = delete(&env, ADMIN_TOKEN, &name).await;
    assert_eq!(st, 404);
    let audit = env
        .get(ADMIN_TOKEN, "/v1/audit?action=gateway.database.")
        .await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        actions,
        ["gateway.database.declared", "gateway.database.removed"],
        "{audit}"
    );
}
