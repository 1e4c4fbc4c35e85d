//! Services declared through the API: served at once without a restart, re-declared and
//! removed at once, each change an audit entry; administrators only; the credential only
//! named (an `SLUICE_HTTP_` variable or a file in the credentials directory), never held;
//! a name of the config file refused; bad input refused with a clear code, changing nothing.

use crate::harness::{env_credentials_dir, Env, ADMIN_TOKEN, POLICY};
use serde_json::{json, Value};

const LEDGER_SECRET: &str = "ledger-key-5d21e0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_service_is_served_at_once_then_changed_and_removed_at_once() {
    let env = Env::start().await;
    std::fs::write(
        env_credentials_dir(env.dir.path()).join("ledger.key"),
        format!("{LEDGER_SECRET}\n"),
    )
    .unwrap();
    let alice = env.token("alice").await;
    env.grant(&alice, "ledger", "1h").await;

    // Not declared yet: alice, who holds a grant on it, is told it is not served here.
    let (status, v) = env.call_json(&alice, "GET", "/ledger/v1/entries").await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("unknown_service")),
        "{v}"
    );

    let spec = json!({
        "upstream": format!("http://{}/base", env.upstream_addr),
        "credential": {"header": "x-api-key", "value_file": "ledger.key"},
        "timeout": "5s",
        "max_body_bytes": 2048,
    });
    let (status, v) = env
        .api(ADMIN_TOKEN, "PUT", "/v1/http/services/ledger", Some(spec))
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v, json!({"declared": "ledger", "created": true}));

    // Served by the running gateway, no restart: with the declared credential, under the
    // upstream's base path, without the caller's token.
    let (status, v) = env
        .call_json(&alice, "GET", "/ledger/v1/entries?page=2")
        .await;
    assert_eq!(status, 200, "{v}");
    let seen = env.upstream.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.uri, "/base/v1/entries?page=2");
    assert_eq!(last.headers["x-api-key"], LEDGER_SECRET);
    assert!(
        last.headers.iter().all(|(_, v)| !v
            .as_bytes()
            .windows(alice.len())
            .any(|w| w == alice.as_bytes())),
        "the caller's token reached the upstream: {:?}",
        last.headers
    );

    // Listed beside the config file's, the credential by its source only.
    let list = env.get(ADMIN_TOKEN, "/v1/http/services").await;
    let services = list["services"].as_array().unwrap();
    assert_eq!(services.len(), 2, "{list}");
    assert_eq!(services[0]["name"], "payments-admin");
    assert_eq!(services[0]["declared_in"], "config");
    assert_eq!(services[1]["name"], "ledger");
    assert_eq!(services[1]["declared_in"], "api");
    assert_eq!(services[1]["declared_by"], "admin");
    assert_eq!(services[1]["credential"]["value_file"], "ledger.key");
    assert_eq!(services[1]["audit"], "before");
    let text = list.to_string();
    assert!(
        !text.contains(LEDGER_SECRET) && !text.contains("upstream-secret"),
        "{text}"
    );

    // Re-declared: audited after the response now, at once.
    let spec = json!({
        "name": "ledger",
        "upstream": format!("http://{}/base", env.upstream_addr),
        "credential": {"header": "x-api-key", "value_file": "ledger.key"},
        "audit": "after",
    });
    let (status, v) = env
        .api(ADMIN_TOKEN, "PUT", "/v1/http/services/ledger", Some(spec))
        .await;
    assert_eq!((status, &v["created"]), (200, &json!(false)), "{v}");
    let list = env.get(ADMIN_TOKEN, "/v1/http/services").await;
    assert_eq!(list["services"][1]["audit"], "after", "{list}");
    assert_eq!(list["services"][1]["timeout"], "30s", "{list}");

    // Each change is an audit entry naming the credential's source, never its value.
    let declared = env.entries("http.service.declared").await;
    assert_eq!(declared.len(), 2, "{declared:?}");
    assert_eq!(declared[0]["resource"], "http:ledger");
    assert_eq!(declared[0]["actor"], "admin");
    assert_eq!(declared[0]["details"]["replaced"], false);
    assert_eq!(declared[1]["details"]["replaced"], true);
    assert_eq!(
        declared[1]["details"]["service"]["credential"]["value_file"],
        "ledger.key"
    );
    assert!(!format!("{declared:?}").contains(LEDGER_SECRET));

    // Removed: refused at once, audited.
    let (status, v) = env
        .api(ADMIN_TOKEN, "DELETE", "/v1/http/services/ledger", None)
        .await;
    assert_eq!((status, v), (200, json!({"removed": "ledger"})));
    let (status, v) = env.call_json(&alice, "GET", "/ledger/v1/entries").await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("unknown_service")),
        "{v}"
    );
    let removed = env.entries("http.service.removed").await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["resource"], "http:ledger");
    let (status, v) = env
        .api(ADMIN_TOKEN, "DELETE", "/v1/http/services/ledger", None)
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_credential_must_be_a_sluice_http_variable() {
    let env = Env::start().await;
    let up = format!("http://{}", env.upstream_addr);
    let declare = |var: &str| json!({"upstream": up, "credential": {"value_env": var}});
    for var in [
        "HOME",
        "SLUICE_ADMIN_TOKEN",
        "SLUICE_HTTP_",
        "SLUICE_DB_ORDERS",
    ] {
        let (status, v) = env
            .api(
                ADMIN_TOKEN,
                "PUT",
                "/v1/http/services/ledger",
                Some(declare(var)),
            )
            .await;
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some("invalid_service")),
            "{var}: {v}"
        );
    }
    // An unset variable is declared (it may be exported to the other servers); this
    // gateway refuses the calls until it can read it.
    let (status, v) = env
        .api(
            ADMIN_TOKEN,
            "PUT",
            "/v1/http/services/ledger",
            Some(declare("SLUICE_HTTP_IT_NEVER_SET")),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let alice = env.token("alice").await;
    env.grant(&alice, "ledger", "1h").await;
    let before = env.upstream.seen().len();
    let (status, v) = env.call_json(&alice, "GET", "/ledger/x").await;
    assert_eq!(
        (status, v["code"].as_str()),
        (503, Some("credential_unavailable")),
        "{v}"
    );
    assert_eq!(env.upstream.seen().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_administrators_declare_and_bad_declarations_change_nothing() {
    let env = Env::start().await;
    // bob audits: he reads the services, and changes none.
    let policy = POLICY.replace("  leads: [bob]", "  leads: [bob]\n  auditors: [bob]");
    env.post(ADMIN_TOKEN, "/v1/policy", json!({"source": policy}), 200)
        .await;
    let (alice, bob) = (env.token("alice").await, env.token("bob").await);
    let up = format!("http://{}", env.upstream_addr);
    let good = json!({"upstream": up});

    let (status, v) = env.api(&alice, "GET", "/v1/http/services", None).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let (status, v) = env.api(&bob, "GET", "/v1/http/services", None).await;
    assert_eq!(status, 200, "{v}");
    for who in [&alice, &bob] {
        let (status, v) = env
            .api(who, "PUT", "/v1/http/services/ledger", Some(good.clone()))
            .await;
        assert_eq!(
            (status, v["code"].as_str()),
            (403, Some("forbidden")),
            "{v}"
        );
        let (status, _) = env
            .api(who, "DELETE", "/v1/http/services/payments-admin", None)
            .await;
        assert_eq!(status, 403);
    }

    let bad: Vec<(Value, &str)> = vec![
        (json!({"upstream": "ftp://10.0.0.7/"}), "invalid_service"),
        (
            json!({"upstream": "http://user:pw@10.0.0.7/"}),
            "invalid_service",
        ),
        (
            json!({"upstream": "http://10.0.0.7/?a=1"}),
            "invalid_service",
        ),
        (json!({"upstream": up, "name": "other"}), "invalid_service"),
        (
            json!({"upstream": up, "timeout": "soon"}),
            "invalid_service",
        ),
        (
            json!({"upstream": up, "max_body_bytes": 0}),
            "invalid_service",
        ),
        (json!({"upstream": up, "audit": "never"}), "invalid_service"),
        // The secret itself has no field to go in.
        (
            json!({"upstream": up, "credential": {"value": "Bearer s3cret"}}),
            "invalid_service",
        ),
        (
            json!({"upstream": up, "credential": {"value_file": "../audit-signing.pem"}}),
            "invalid_service",
        ),
        (
            json!({"upstream": up, "credential": {"value_file": "/etc/passwd"}}),
            "invalid_service",
        ),
        (
            json!({"upstream": up, "credential": {"value_env": "SLUICE_HTTP_A", "value_file": "a"}}),
            "invalid_service",
        ),
        (
            json!({"upstream": up, "credential": {"header": "bad header", "value_env": "SLUICE_HTTP_A"}}),
            "invalid_service",
        ),
        (json!(["not", "an", "object"]), "invalid_service"),
    ];
    for (body, code) in bad {
        let (status, v) = env
            .api(
                ADMIN_TOKEN,
                "PUT",
                "/v1/http/services/ledger",
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some(code)),
            "{body}: {v}"
        );
        assert!(!v["message"].as_str().unwrap_or("").is_empty(), "{v}");
    }
    let (status, v) = env
        .api(
            ADMIN_TOKEN,
            "PUT",
            "/v1/http/services/Not%20A%20Name",
            Some(good.clone()),
        )
        .await;
    assert_eq!(status, 400, "{v}");

    // The config file's service is changed there, not through the API.
    let (status, v) = env
        .api(
            ADMIN_TOKEN,
            "PUT",
            "/v1/http/services/payments-admin",
            Some(good),
        )
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("declared_in_config")),
        "{v}"
    );
    assert!(
        v["message"].as_str().unwrap().contains("config file"),
        "{v}"
    );
    let (status, v) = env
        .api(
            ADMIN_TOKEN,
            "DELETE",
            "/v1/http/services/payments-admin",
            None,
        )
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("declared_in_config")),
        "{v}"
    );

    // Nothing changed, nothing audited.
    let list = env.get(ADMIN_TOKEN, "/v1/http/services").await;
    assert_eq!(list["services"].as_array().unwrap().len(), 1, "{list}");
    assert!(env.entries("http.service.declared").await.is_empty());
    assert!(env.entries("http.service.removed").await.is_empty());
}
