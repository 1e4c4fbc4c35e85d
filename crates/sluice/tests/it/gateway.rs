//! The PostgreSQL gateway through the real binary: `sluice serve --config` with a
//! `databases:` section, `sluice db connect` printing a `psql` command line that works, the
//! session commands, and a session's start surviving a SIGKILL of the server.

use crate::harness::{get_json, pg_base, Serve, ADMIN_TOKEN, POLICY};
use serde_json::Value;
use sqlx::Connection;
use std::path::Path;
use std::time::{Duration, Instant};

/// The upstream: a database with a table `items` (three rows) and a LOGIN role in
/// `sluice_scram` (so it authenticates with SCRAM-SHA-256) that may read it. Dropped with
/// the test, pass or fail.
pub(crate) struct Upstream {
    base: String,
    dbname: String,
    role: String,
    password: String,
    port: u16,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let status = std::process::Command::new("psql")
            .arg(&self.base)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=0", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.dbname
            ))
            .arg("-c")
            .arg(format!("DROP ROLE IF EXISTS {}", self.role))
            .stdout(std::process::Stdio::null())
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("notice: could not drop {} ({status:?})", self.dbname);
        }
    }
}

impl Upstream {
    pub(crate) async fn create(base: String) -> Upstream {
        let id = format!("{:012x}", random() & 0xffff_ffff_ffff);
        let port = base
            .split('@')
            .nth(1)
            .and_then(|h| h.split('/').next())
            .and_then(|h| h.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(5432);
        let up = Upstream {
            dbname: format!("cligw_{id}"),
            role: format!("cligw_{id}_reader"),
            password: format!("pw-{:016x}", random()),
            port,
            base,
        };
        let mut admin = sqlx::PgConnection::connect(&up.base)
            .await
            .expect("connect to PostgreSQL");
        sqlx::raw_sql(&format!(
            "CREATE ROLE {} LOGIN PASSWORD '{}' IN ROLE sluice_scram",
            up.role, up.password
        ))
        .execute(&mut admin)
        .await
        .expect("create role (does the role sluice_scram exist? see .ci/run)");
        sqlx::raw_sql(&format!("CREATE DATABASE {}", up.dbname))
            .execute(&mut admin)
            .await
            .expect("create database");
        admin.close().await.ok();
        let mut db = sqlx::PgConnection::connect(&up.admin_url())
            .await
            .expect("connect to the new database");
        sqlx::raw_sql(&format!(
            "REVOKE ALL ON SCHEMA public FROM PUBLIC;
             GRANT USAGE ON SCHEMA public TO {r};
             CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);
             INSERT INTO items (name) VALUES ('apple'), ('pear'), ('plum');
             GRANT SELECT ON items TO {r};",
            r = up.role
        ))
        .execute(&mut db)
        .await
        .expect("create table");
        db.close().await.ok();
        up
    }

    fn admin_url(&self) -> String {
        let base = self.base.split('?').next().unwrap_or(&self.base);
        let (root, _) = base.rsplit_once('/').expect("database url has a path");
        format!("{root}/{}", self.dbname)
    }

    /// Waits (at most 10 s) until the number of the role's backends satisfies `ok`; `what`
    /// says what failed otherwise.
    async fn wait_for_backends(&self, ok: impl Fn(i64) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ok(self.backends().await) {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Backends of the gateway's role, from `pg_stat_activity`.
    async fn backends(&self) -> i64 {
        let mut admin = sqlx::PgConnection::connect(&self.base)
            .await
            .expect("connect");
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE usename = $1")
            .bind(&self.role)
            .fetch_one(&mut admin)
            .await
            .expect("pg_stat_activity");
        admin.close().await.ok();
        n
    }
}

fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Where the role's password is: set only in the server's environment.
const PW_VAR: &str = "SLUICE_IT_ORDERS_READER_PASSWORD";

/// Writes the config (gateway on `pg_port`, database `orders` served from `up`) into `dir`.
pub(crate) fn write_config(dir: &Path, up: &Upstream, pg_port: u16) -> String {
    let yaml = format!(
        "pg_listen: 127.0.0.1:{pg_port}
pg_allow_plaintext_loopback: true
databases:
  - name: orders
    upstream: {{ host: 127.0.0.1, port: {port}, dbname: {db} }}
    roles:
      - {{ action: read, user: {role}, password_env: {PW_VAR} }}
",
        port = up.port,
        db = up.dbname,
        role = up.role,
    );
    let path = dir.join("gateway.yaml");
    std::fs::write(&path, yaml).expect("write config");
    path.to_str().expect("utf-8").to_owned()
}

pub(crate) async fn start(dir: &Path, config: &str, up: &Upstream) -> Serve {
    Serve::start_with_env(dir, &["--config", config], &[(PW_VAR, &up.password)]).await
}

/// Starts the server, applies the policy and gives Alice an approved `orders-db-read`:
/// (server, HTTP client, Alice's token).
async fn start_with_alices_grant(
    dir: &Path,
    config: &str,
    up: &Upstream,
) -> (Serve, reqwest::Client, String) {
    let s = start(dir, config, up).await;
    let http = reqwest::Client::new();
    s.apply_policy(&http, POLICY).await;
    let alice = s.api_token(&http, "alice").await;
    let bob = s.api_token(&http, "bob").await;
    alice_gets_read(&s, &alice, &bob).await;
    (s, http, alice)
}

/// Alice asks for `orders-db-read`, Bob approves it, through the CLI; returns the grant id.
async fn alice_gets_read(s: &Serve, alice: &str, bob: &str) -> String {
    let req = s
        .json(
            Some(alice),
            &["access", "request", "orders-db-read", "--for", "10m"],
        )
        .await;
    assert_eq!(req["status"], "pending", "{req}");
    let id = req["id"].as_str().expect("id").to_owned();
    s.ok(Some(bob), &["access", "approve", &id]).await;
    let g = s.json(Some(alice), &["access", "show", &id]).await;
    assert_eq!(g["status"], "active", "{g}");
    id
}

/// Waits for an ended session in `sluice db sessions --all` (as the administrator).
async fn ended_session(s: &Serve) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = s
            .json(Some(ADMIN_TOKEN), &["db", "sessions", "--all"])
            .await;
        if let Some(x) = v["sessions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| !x["ended_at"].is_null())
        {
            return x.clone();
        }
        assert!(Instant::now() < deadline, "no session ended: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `line` (as `sluice db connect` printed it) and `more` through `sh`; (ok, stdout, stderr).
fn run_printed(line: &str, more: &str) -> (bool, String, String) {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{line} {more}"))
        .env_remove("PGSERVICE")
        .env_remove("PGPASSFILE")
        .output()
        .expect("sh and psql are installed");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_connect_prints_a_psql_line_that_works() {
    let Some(base) = pg_base() else { return };
    let up = Upstream::create(base).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pg_port = crate::harness::free_port();
    let config = write_config(dir.path(), &up, pg_port);
    let s = start(dir.path(), &config, &up).await;
    let http = reqwest::Client::new();
    s.apply_policy(&http, POLICY).await;
    let alice = s.api_token(&http, "alice").await;
    let bob = s.api_token(&http, "bob").await;
    let admin = Some(ADMIN_TOKEN);

    // No grant: refused, naming the entitlement to request.
    let r = s.cli(Some(&alice), &["db", "connect", "orders"]).await;
    assert!(!r.success, "connected without a grant: {}", r.stdout);
    assert!(
        r.stderr
            .contains("no live grant allows alice to connect to db:orders")
            && r.stderr
                .contains("sluice access request orders-db-read --for 1h"),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("slu_pgw_"), "{}", r.stdout);

    let grant = alice_gets_read(&s, &alice, &bob).await;
    let r = s.cli(Some(&alice), &["db", "connect", "orders"]).await;
    assert!(r.success, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("under grant {grant}")),
        "{}",
        r.stderr
    );
    let line = r.stdout.trim();
    let conninfo =
        format!("host=127.0.0.1 port={pg_port} dbname=orders user=alice sslmode=require");
    let password = line
        .strip_prefix("PGPASSWORD='")
        .and_then(|rest| rest.strip_suffix(&format!("' psql \"{conninfo}\"")))
        .unwrap_or_else(|| panic!("not the psql line for {conninfo}: {line}"));
    assert!(password.starts_with("slu_pgw_"), "{line}");

    // Exactly that line works: over TLS, as the reader role, and the role reads.
    let (ok, out, err) = run_printed(
        line,
        "-X -A -t -c 'select current_user, count(*) from items'",
    );
    assert!(ok, "{line}: {err}");
    assert_eq!(out.trim(), format!("{}|3", up.role));

    // JSON: the password, when it stops opening sessions, where the gateway is.
    let v = s.json(Some(&alice), &["db", "connect", "orders"]).await;
    assert!(
        v["password"]
            .as_str()
            .is_some_and(|p| p.starts_with("slu_pgw_") && p != password),
        "a fresh password each time: {v}"
    );
    assert!(
        v["expires_at"]
            .as_str()
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()),
        "{v}"
    );
    assert_eq!(v["gateway"]["address"], format!("127.0.0.1:{pg_port}"));
    assert_eq!(v["grant_id"], grant.as_str());
    assert_eq!(v["psql"], format!("psql \"{conninfo}\""));

    // --pg overrides the address; --ttl is capped at an hour.
    let out = s
        .ok(
            Some(&alice),
            &["db", "connect", "orders", "--pg", "127.0.0.1:1"],
        )
        .await;
    assert!(
        out.trim()
            .ends_with("psql \"host=127.0.0.1 port=1 dbname=orders user=alice sslmode=require\""),
        "{out}"
    );
    let r = s
        .cli(Some(&alice), &["db", "connect", "orders", "--ttl", "2h"])
        .await;
    assert!(!r.success, "a 2h password: {}", r.stdout);
    assert!(
        r.stderr.contains("a connection password lasts at most") && r.stderr.contains("2h"),
        "{}",
        r.stderr
    );

    // The session, once over: listed with --all, not without; its statement shown.
    let x = ended_session(&s).await;
    let id = x["id"].as_str().expect("id").to_owned();
    assert_eq!(
        (&x["principal"], &x["database"], &x["role"], &x["grant_id"]),
        (
            &Value::from("alice"),
            &Value::from("orders"),
            &Value::from(up.role.as_str()),
            &Value::from(grant.as_str())
        ),
        "{x}"
    );
    let table = s.ok(admin, &["db", "sessions", "--all"]).await;
    assert!(
        table.contains(&id) && table.contains("db:orders") && table.contains("ended"),
        "{table}"
    );
    let live = s.ok(admin, &["db", "sessions"]).await;
    assert!(
        !live.contains(&id),
        "an ended session listed as live: {live}"
    );
    let shown = s.ok(admin, &["db", "session", &id]).await;
    assert!(
        shown.contains(&format!("session     {id}"))
            && shown.contains("query")
            && shown.contains("select current_user, count(*) from items"),
        "{shown}"
    );
    assert!(!shown.contains(password), "the password is never shown");

    // Killing a session that does not exist says so.
    let r = s.cli(admin, &["db", "kill", "pgs-nonexistent"]).await;
    assert!(!r.success, "{}", r.stdout);
    assert!(
        r.stderr.contains("no live gateway session pgs-nonexistent"),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_start_survives_a_sigkill() {
    let Some(base) = pg_base() else { return };
    let up = Upstream::create(base).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pg_port = crate::harness::free_port();
    let config = write_config(dir.path(), &up, pg_port);
    let (s, http, alice) = start_with_alices_grant(dir.path(), &config, &up).await;

    // A live session: admitted (so its start was committed before AuthenticationOk).
    let opts = sqlx::postgres::PgConnectOptions::new()
        .host("127.0.0.1")
        .port(pg_port)
        .username("alice")
        .password(&alice)
        .database("orders")
        .ssl_mode(sqlx::postgres::PgSslMode::Disable);
    let mut conn = sqlx::PgConnection::connect_with(&opts)
        .await
        .expect("admitted");
    let who: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut conn)
        .await
        .expect("query");
    assert_eq!(who, up.role);
    let (_, v) = get_json(&http, &s.url("/v1/db/sessions"), ADMIN_TOKEN).await;
    let live = v["sessions"].as_array().expect("sessions");
    assert_eq!(live.len(), 1, "{v}");
    assert_eq!(live[0]["live"], true, "{v}");
    let id = live[0]["id"].as_str().expect("id").to_owned();

    // SIGKILL with the session open: no session-end entry gets written.
    s.kill().await;
    let gone = sqlx::query("SELECT 1").execute(&mut conn).await;
    assert!(gone.is_err(), "the session outlived its gateway");
    drop(conn);
    // The upstream backend does not outlive the gateway's connection either.
    up.wait_for_backends(|n| n == 0, "the upstream backend lingers")
        .await;

    let s = start(dir.path(), &config, &up).await;
    let entries = s.audit_entries(&http, Some("gateway.session")).await;
    let started: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "gateway.session.started")
        .collect();
    assert_eq!(started.len(), 1, "{entries:#?}");
    assert_eq!(started[0]["details"]["session"], id.as_str());
    assert_eq!(started[0]["actor"], "alice");
    assert_eq!(started[0]["resource"], "db:orders");
    s.ok(Some(ADMIN_TOKEN), &["audit", "verify"]).await;

    // The session whose instance died is ended by the running one once the dead instance's
    // heartbeat is stale (10 s): recorded with the hash of the log as it was kept, so
    // verify still holds, and gone from the live list.
    let deadline = Instant::now() + Duration::from_secs(25);
    let x = loop {
        let (_, all) = get_json(&http, &s.url("/v1/db/sessions?all=true"), ADMIN_TOKEN).await;
        let x = all["sessions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["id"] == id.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("the crashed session is listed: {all}"));
        assert_eq!(x["live"], false, "not running on the new instance: {x}");
        if !x["ended_at"].is_null() {
            break x;
        }
        assert!(
            Instant::now() < deadline,
            "the orphaned session was never ended: {x}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        x["end_reason"], "the gateway instance holding it stopped",
        "{x}"
    );
    let (_, live) = get_json(&http, &s.url("/v1/db/sessions"), ADMIN_TOKEN).await;
    assert!(
        live["sessions"]
            .as_array()
            .is_some_and(|a| a.iter().all(|l| l["id"] != id.as_str())),
        "{live}"
    );
    let (_, audit) = get_json(
        &http,
        &s.url("/v1/audit?action=gateway.session.ended"),
        ADMIN_TOKEN,
    )
    .await;
    let ended: Vec<&serde_json::Value> = audit["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["subject_id"] == id.as_str())
        .collect();
    assert_eq!(ended.len(), 1, "{audit}");
    assert_eq!(ended[0]["details"]["orphaned"], true);
    s.ok(Some(ADMIN_TOKEN), &["audit", "verify"]).await;

    // A new session works on the restarted server.
    let mut again = sqlx::PgConnection::connect_with(&opts)
        .await
        .expect("admitted after the restart");
    sqlx::query("SELECT 1")
        .execute(&mut again)
        .await
        .expect("query after the restart");
    again.close().await.ok();
}

/// SIGTERM while a `psql` session runs a long statement: the session gets `shutdown_timeout`
/// to end by itself, then is cut with the reason said to the client (FATAL 57P01, as from a
/// PostgreSQL server stopping); its end is recorded before the server exits, not left to the
/// next instance as after a crash, and the upstream backend goes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_open_at_sigterm_is_cut_and_its_end_recorded() {
    let Some(base) = pg_base() else { return };
    let up = Upstream::create(base).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pg_port = crate::harness::free_port();
    let config = write_config(dir.path(), &up, pg_port);
    let mut yaml = std::fs::read_to_string(&config).expect("read config");
    yaml.push_str("shutdown_timeout: 1s\n");
    std::fs::write(&config, yaml).expect("write config");
    let (s, http, alice) = start_with_alices_grant(dir.path(), &config, &up).await;

    let psql = tokio::process::Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={pg_port} dbname=orders user=alice sslmode=disable"
        ))
        .args(["-X", "-c", "SELECT pg_sleep(60)"])
        .env("PGPASSWORD", &alice)
        .env_remove("PGSERVICE")
        .env_remove("PGPASSFILE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("psql is installed");
    up.wait_for_backends(|n| n > 0, "psql's session never started")
        .await;

    let stopping = Instant::now();
    let status = s.terminate().await;
    let took = stopping.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took >= Duration::from_secs(1),
        "the session was not given its shutdown_timeout: exited after {took:?}"
    );
    let out = tokio::time::timeout(Duration::from_secs(10), psql.wait_with_output())
        .await
        .expect("psql ended with the server")
        .expect("psql's output");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("was ended by a shutdown of the Sluice server"),
        "psql was not told why: {said}"
    );
    up.wait_for_backends(|n| n == 0, "the upstream backend lingers")
        .await;

    // Recorded by the instance that stopped: there at once after a restart, and not as an
    // orphan.
    let s = start(dir.path(), &config, &up).await;
    let ended = s.audit_entries(&http, Some("gateway.session.ended")).await;
    assert_eq!(ended.len(), 1, "{ended:#?}");
    assert_eq!(
        ended[0]["details"]["reason"], "killed by a shutdown of the Sluice server",
        "{ended:#?}"
    );
    assert!(ended[0]["details"]["orphaned"].is_null(), "{ended:#?}");
    s.ok(Some(ADMIN_TOKEN), &["audit", "verify"]).await;
}
