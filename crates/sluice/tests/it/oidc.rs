//! Sign-in through a real OpenID Connect provider: panva's certified `oidc-provider`, run by
//! `tests/oidc/provider.js` as a local process (installed by `.ci/run` with `npm ci`), with a
//! test client, PKCE, the device flow, a `groups` claim and accounts in a JSON file the test
//! rewrites. The console's code flow is driven with an HTTP client that keeps cookies and
//! submits the provider's forms; the CLI's device flow through the real `sluice login`.
//!
//! Without node or the package these tests print a notice and pass — except under `CI=true`,
//! where they fail.

use crate::harness::{self, get_json, post_json, Serve, ADMIN_TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

const CLIENT_ID: &str = "sluice-test";
const CLIENT_SECRET: &str = "test-client-secret-3f9a1c";

/// The IdP groups map to Sluice groups; `oncall` and `responders` have no members but those
/// the provider puts there.
const POLICY: &str = r#"
users: [lead]
groups:
  oncall: []
  responders: []
  leads: [lead]
idp_groups:
  "SRE Team": [oncall, responders]
entitlements:
  - name: orders-db-read
    scopes:
      - resource: "db:orders"
        actions: [read]
    requesters: [group:oncall]
    max_duration: 1h
    approval: { required: 1, approvers: [group:leads] }
    reason: optional
"#;

fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc")
}

/// The provider, running; killed when dropped.
struct Idp {
    _child: Child,
    issuer: String,
    accounts: PathBuf,
    http: reqwest::Client,
}

impl Idp {
    /// Starts the provider over `accounts`; `None` (with a notice) when node or the package
    /// is missing outside CI.
    async fn start(dir: &Path, accounts: Value) -> Option<Idp> {
        let installed = oidc_dir().join("node_modules/oidc-provider/package.json");
        let node = Command::new("node")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if !(node && installed.exists()) {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but the OpenID provider for the sign-in tests is not installed \
                 (node, and `npm ci --prefix tests/oidc`)"
            );
            eprintln!(
                "skipping: node or tests/oidc/node_modules missing (npm ci --prefix tests/oidc)"
            );
            return None;
        }
        let path = dir.join("accounts.json");
        std::fs::write(&path, accounts.to_string()).unwrap();
        let mut child = Command::new("node")
            .arg(oidc_dir().join("provider.js"))
            .arg(&path)
            .arg(CLIENT_ID)
            .arg(CLIENT_SECRET)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("provider.log")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn node provider.js");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(p) = line.strip_prefix("listening ") {
                    return p.trim().to_owned();
                }
            }
            panic!("the provider exited before listening");
        })
        .await
        .expect("the provider starts");
        // The provider logs to its standard output: keep reading it, or its next line fails
        // on a closed pipe and takes the process down.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Some(Idp {
            _child: child,
            issuer: format!("http://127.0.0.1:{port}"),
            accounts: path,
            http: reqwest::Client::new(),
        })
    }

    fn set_accounts(&self, accounts: Value) {
        std::fs::write(&self.accounts, accounts.to_string()).unwrap();
    }

    /// Makes the provider's next ID tokens wrong in one way (see provider.js).
    async fn mode(&self, mode: &str) {
        let r = self
            .http
            .post(format!("{}/test/mode", self.issuer))
            .body(json!({ "mode": mode }).to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

fn accounts(alice_groups: &[&str]) -> Value {
    json!({
        "alice": {"email": "alice@example.com", "groups": alice_groups},
        "bob": {"email": "bob@example.com", "groups": ["Marketing"]},
    })
}

async fn sluice(dir: &Path, idp: &Idp) -> Serve {
    sluice_on(dir, idp, None).await
}

/// [`sluice`] on the PostgreSQL database `database` (SQLite when `None`).
async fn sluice_on(dir: &Path, idp: &Idp, database: Option<&str>) -> Serve {
    let mut args = vec!["--oidc-issuer", &idp.issuer, "--oidc-client-id", CLIENT_ID];
    if let Some(url) = database {
        args.extend(["--database-url", url]);
    }
    let s =
        Serve::start_with_env(dir, &args, &[("SLUICE_OIDC_CLIENT_SECRET", CLIENT_SECRET)]).await;
    s.apply_policy(&reqwest::Client::new(), POLICY).await;
    s
}

/// A browser: keeps cookies, follows redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

/// The `action` of the first form in `html`, made absolute against `base`.
fn form_action(html: &str, base: &str) -> String {
    let at = html.find("action=\"").expect("a form") + "action=\"".len();
    let action = &html[at..at + html[at..].find('"').unwrap()];
    if action.starts_with("http") {
        action.to_owned()
    } else {
        format!("{base}{action}")
    }
}

/// The value of the hidden input `name` in `html`.
fn hidden(html: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + key.len();
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

/// Signs in to the console as `login` through the provider; the browser and the last answer.
async fn console_sign_in(s: &Serve, idp: &Idp, login: &str) -> (reqwest::Client, u16, String) {
    let b = browser();
    let page = b.get(s.url("/ui/sign-in")).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Sign in with your identity provider"),
        "the sign-in page offers the provider: {html}"
    );
    // To the provider's sign-in form (redirects followed).
    let r = b.get(s.url("/ui/oidc/start")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.url().as_str().starts_with(&idp.issuer),
        "at the provider: {}",
        r.url()
    );
    let html = r.text().await.unwrap();
    let action = form_action(&html, &idp.issuer);
    // Submitting it ends back at Sluice's callback, which answers.
    let r = b
        .post(action)
        .form(&[("login", login)])
        .send()
        .await
        .unwrap();
    assert!(
        r.url().path().starts_with("/ui/oidc/callback"),
        "at {}",
        r.url()
    );
    let status = r.status().as_u16();
    (b, status, r.text().await.unwrap())
}

async fn entries(s: &Serve, action: &str) -> Vec<Value> {
    s.audit_entries(&reqwest::Client::new(), Some(action)).await
}

#[tokio::test]
async fn console_sign_in_through_the_provider_maps_its_groups_and_refuses_bad_id_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let Some(idp) = Idp::start(dir.path(), accounts(&["SRE Team"])).await else {
        return;
    };
    let s = sluice(dir.path(), &idp).await;

    let (b, status, html) = console_sign_in(&s, &idp, "alice").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Signed in"), "{html}");
    let inbox = b.get(s.url("/ui/inbox")).send().await.unwrap();
    assert_eq!(inbox.status(), StatusCode::OK);
    assert!(
        inbox.url().path().ends_with("/ui/inbox"),
        "not sent to sign in"
    );
    assert!(inbox.text().await.unwrap().contains("alice@example.com"));
    let signed = entries(&s, "principal.signed_in").await;
    assert_eq!(signed.len(), 1, "{signed:?}");
    let d = &signed[0]["details"];
    assert_eq!(d["via"], "console");
    assert_eq!(d["idp_groups"], json!(["SRE Team"]));
    assert_eq!(d["groups"], json!(["oncall", "responders"]));
    assert_eq!(signed[0]["actor"], "alice@example.com");
    // Her session is a token of the kind `session`.
    let (st, who) = get_json(
        &reqwest::Client::new(),
        &s.url("/v1/tokens?principal=alice@example.com"),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{who}");
    assert_eq!(who[0]["kind"], "session", "{who}");

    // Each wrong ID token is refused, audited with its code, and signs nobody in.
    for (mode, code) in [
        ("tampered", "id_token_bad_signature"),
        ("audience", "id_token_wrong_audience"),
        ("expired", "id_token_expired"),
    ] {
        idp.mode(mode).await;
        let (_, status, html) = console_sign_in(&s, &idp, "bob").await;
        assert_eq!(status, 401, "{mode}: {html}");
        assert!(html.contains("Not signed in"), "{mode}: {html}");
        let refused = entries(&s, "sign_in.refused").await;
        assert_eq!(
            refused.last().map(|e| e["details"]["code"].clone()),
            Some(json!(code)),
            "{mode}: {refused:?}"
        );
    }
    idp.mode("none").await;
    assert_eq!(entries(&s, "principal.signed_in").await.len(), 1);
    // As issued, the same person signs in.
    let (_, status, html) = console_sign_in(&s, &idp, "bob").await;
    assert_eq!(status, 200, "{html}");

    // Signing out ends the session token too.
    let html = b
        .get(s.url("/ui/inbox"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden(&html, "csrf");
    let r = b
        .post(s.url("/ui/sign-out"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let out = entries(&s, "principal.signed_out").await;
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["actor"], "alice@example.com");
    s.verify_gap_free(&reqwest::Client::new()).await;
}

/// Runs `sluice login` against `s` with its config directory in `config`, approves the
/// device sign-in at the provider as `login`, and waits for the command to end.
async fn cli_login(s: &Serve, idp: &Idp, config: &Path, login: &str) -> String {
    let mut child = harness::command()
        .arg("login")
        .env("SLUICE_ADDR", &s.addr)
        .env("XDG_CONFIG_HOME", config)
        .current_dir(&s.data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sluice login");
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = err.next_line().await.unwrap() {
            let line = line.trim();
            if line.starts_with("http") && line.contains("user_code=") {
                return line.to_owned();
            }
        }
        panic!("sluice login printed no verification URL");
    })
    .await
    .expect("sluice login prints the URL");
    let rest = tokio::spawn(async move {
        let mut text = String::new();
        while let Ok(Some(line)) = err.next_line().await {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    // The person, in a browser: the provider's code page submits itself, then confirm, then
    // sign in.
    let b = browser();
    let html = b.get(&url).send().await.unwrap().text().await.unwrap();
    let code = hidden(&html, "user_code");
    let html = b
        .post(form_action(&html, &idp.issuer))
        .form(&[("xsrf", hidden(&html, "xsrf")), ("user_code", code.clone())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = b
        .post(form_action(&html, &idp.issuer))
        .form(&[
            ("xsrf", hidden(&html, "xsrf")),
            ("user_code", code),
            ("confirm", "yes".into()),
        ])
        .send()
        .await
        .unwrap();
    let html = r.text().await.unwrap();
    let r = b
        .post(form_action(&html, &idp.issuer))
        .form(&[("login", login)])
        .send()
        .await
        .unwrap();
    let html = r.text().await.unwrap();
    assert!(html.contains("Sign-in Success"), "{html}");
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("sluice login ends")
        .unwrap();
    let stderr = rest.await.unwrap();
    assert!(out.status.success(), "sluice login failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn stored_token(config: &Path) -> String {
    let text = std::fs::read_to_string(config.join("sluice/session.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["token"].as_str().unwrap().to_owned()
}

async fn request_access(s: &Serve, token: &str) -> (StatusCode, Value) {
    post_json(
        &reqwest::Client::new(),
        &s.url("/v1/requests"),
        token,
        &json!({"entitlement": "orders-db-read", "duration": "10m"}),
    )
    .await
}

#[tokio::test]
async fn sluice_login_by_device_flow_refreshes_loses_a_removed_group_and_logs_out() {
    device_flow(None).await;
}

#[tokio::test]
async fn sluice_login_by_device_flow_on_postgresql() {
    let Some(url) = harness::pg_url().await else {
        return;
    };
    device_flow(Some(&url)).await;
}

/// `sluice login`, a refresh, a group removed at the provider, a new login and `sluice
/// logout`, on SQLite or on the PostgreSQL database `database`.
async fn device_flow(database: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let Some(idp) = Idp::start(dir.path(), accounts(&["SRE Team"])).await else {
        return;
    };
    let s = sluice_on(dir.path(), &idp, database).await;
    let config = dir.path().join("config");

    let out = cli_login(&s, &idp, &config, "alice").await;
    assert!(out.contains("Signed in as alice@example.com"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&config.join("sluice")), 0o700);
        assert_eq!(mode(&config.join("sluice/session.json")), 0o600);
    }
    // Every command uses the stored session.
    let who = harness::command()
        .args(["whoami", "-o", "json"])
        .env("SLUICE_ADDR", &s.addr)
        .env("XDG_CONFIG_HOME", &config)
        .output()
        .await
        .unwrap();
    assert!(
        who.status.success(),
        "{}",
        String::from_utf8_lossy(&who.stderr)
    );
    let who: Value = serde_json::from_slice(&who.stdout).unwrap();
    assert_eq!(who["name"], "alice@example.com");
    assert_eq!(who["groups"], json!(["oncall", "responders"]));

    // The mapped group makes her eligible.
    let token = stored_token(&config);
    let (st, v) = request_access(&s, &token).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");

    // A refresh goes through the provider and replaces the token.
    let (st, v) = post_json(
        &reqwest::Client::new(),
        &s.url("/v1/sign-in/refresh"),
        &token,
        &json!(null),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let renewed = v["token"].as_str().unwrap().to_owned();
    let renewed_id = v["token_id"].clone();
    let (st, _) = get_json(&reqwest::Client::new(), &s.url("/v1/whoami"), &token).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "the old token is revoked");

    // Removed from the group at the provider: the next refresh is refused, every session of
    // hers ends, and she is no longer eligible.
    idp.set_accounts(accounts(&[]));
    let (st, v) = post_json(
        &reqwest::Client::new(),
        &s.url("/v1/sign-in/refresh"),
        &renewed,
        &json!(null),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["code"], "session_ended", "{v}");
    let (st, _) = get_json(&reqwest::Client::new(), &s.url("/v1/whoami"), &renewed).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "the session ended");
    let failed = entries(&s, "principal.refresh_failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["details"]["sessions_ended"], json!([renewed_id]));

    // Signed in again, with what she still has: nothing.
    let out = cli_login(&s, &idp, &config, "alice").await;
    assert!(out.contains("groups: none"), "{out}");
    let token = stored_token(&config);
    let (st, v) = request_access(&s, &token).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");

    // `sluice logout` revokes the session on the server and deletes the file.
    let out = harness::command()
        .arg("logout")
        .env("SLUICE_ADDR", &s.addr)
        .env("XDG_CONFIG_HOME", &config)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!config.join("sluice/session.json").exists());
    let (st, _) = get_json(&reqwest::Client::new(), &s.url("/v1/whoami"), &token).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "logged out");
    let out = entries(&s, "principal.signed_out").await;
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["details"]["via"], "cli");
    s.verify_gap_free(&reqwest::Client::new()).await;
}

/// The database of `s`: its SQLite file, or the PostgreSQL database `database`.
async fn raw_db(s: &Serve, database: Option<&str>) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = match database {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}", s.data_dir.join("sluice.db").display()),
    };
    sqlx::AnyPool::connect(&url).await.expect("open the store")
}

/// The one identity provider session row: (token id, principal, what the refresh column holds).
async fn idp_session_row(db: &sqlx::AnyPool) -> (String, String, String) {
    use sqlx::Row as _;
    let rows = sqlx::query("SELECT token_id, principal, sealed_refresh_token FROM idp_sessions")
        .fetch_all(db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one CLI session");
    let r = &rows[0];
    (
        r.get("token_id"),
        r.get("principal"),
        r.get::<Option<String>, _>("sealed_refresh_token")
            .expect("the provider gave a refresh token"),
    )
}

#[tokio::test]
async fn the_refresh_token_is_sealed_at_rest_and_one_sealed_under_another_key_ends_the_session() {
    sealed_refresh_token(None).await;
}

#[tokio::test]
async fn the_refresh_token_is_sealed_at_rest_on_postgresql() {
    let Some(url) = harness::pg_url().await else {
        return;
    };
    sealed_refresh_token(Some(&url)).await;
}

async fn sealed_refresh_token(database: Option<&str>) {
    use sluice_server::oidc::seal::Sealer;
    let dir = tempfile::tempdir().unwrap();
    let Some(idp) = Idp::start(dir.path(), accounts(&["SRE Team"])).await else {
        return;
    };
    let s = sluice_on(dir.path(), &idp, database).await;
    let config = dir.path().join("config");
    cli_login(&s, &idp, &config, "alice").await;
    let db = raw_db(&s, database).await;

    // The row holds a sealed value; only the server's key (from the audit signing key, which
    // is not in the database) opens it, to the provider's refresh token.
    let (token_id, principal, stored) = idp_session_row(&db).await;
    assert!(stored.starts_with("v1."), "{stored}");
    let signer = sluice_audit::AuditSigner::load_existing(&dir.path().join("audit-signing.pem"))
        .unwrap()
        .expect("the server's signing key");
    let raw = Sealer::of(&signer)
        .open(&principal, &token_id, &stored)
        .expect("the server's key opens it");
    assert!(raw.len() >= 16, "a refresh token: {raw}");
    assert!(!stored.contains(&raw), "no raw refresh token in the row");
    for table in ["idp_sessions", "tokens", "principals", "audit_entries"] {
        let dump: Vec<String> = sqlx::query(&format!("SELECT * FROM {table}"))
            .fetch_all(&db)
            .await
            .unwrap()
            .iter()
            .map(|r| format!("{:?}", row_text(r)))
            .collect();
        assert!(
            !dump.iter().any(|d| d.contains(&raw)),
            "the raw refresh token is nowhere in {table}"
        );
    }

    if database.is_none() {
        // Not in the bytes of the database files either (write-ahead log included).
        for entry in std::fs::read_dir(&s.data_dir).unwrap().flatten() {
            if entry.path().is_file() {
                let bytes = std::fs::read(entry.path()).unwrap();
                assert!(
                    !bytes.windows(raw.len()).any(|w| w == raw.as_bytes()),
                    "the raw refresh token is in {}",
                    entry.path().display()
                );
            }
        }
    }

    // Refresh still works through the sealed token, and seals the new one for the new row.
    let token = stored_token(&config);
    let (st, v) = post_json(
        &reqwest::Client::new(),
        &s.url("/v1/sign-in/refresh"),
        &token,
        &json!(null),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let renewed = v["token"].as_str().unwrap().to_owned();
    let (token_id, principal, stored) = idp_session_row(&db).await;
    assert_eq!(json!(token_id), v["token_id"]);
    let raw = Sealer::of(&signer)
        .open(&principal, &token_id, &stored)
        .unwrap();

    // The same refresh token sealed under another key (the signing key was replaced): the
    // refresh is refused cleanly, the session ends, and it is audited.
    let foreign = Sealer::new(&[9; 32])
        .seal(&principal, &token_id, &raw)
        .unwrap();
    sqlx::query("UPDATE idp_sessions SET sealed_refresh_token = $1 WHERE token_id = $2")
        .bind(foreign)
        .bind(&token_id)
        .execute(&db)
        .await
        .unwrap();
    let (st, v) = post_json(
        &reqwest::Client::new(),
        &s.url("/v1/sign-in/refresh"),
        &renewed,
        &json!(null),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["code"], "session_ended", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("another key"),
        "{v}"
    );
    let (st, _) = get_json(&reqwest::Client::new(), &s.url("/v1/whoami"), &renewed).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "the session ended");
    let failed = entries(&s, "principal.refresh_failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["details"]["code"], "session_ended");
    assert_eq!(failed[0]["details"]["sessions_ended"], json!([token_id]));
    s.verify_gap_free(&reqwest::Client::new()).await;
    db.close().await;
}

/// Every text column of a row (what a raw token would be stored in).
fn row_text(r: &sqlx::any::AnyRow) -> Vec<String> {
    use sqlx::{Column as _, Row as _};
    r.columns()
        .iter()
        .filter_map(|c| r.try_get::<Option<String>, _>(c.ordinal()).ok().flatten())
        .collect()
}

/// A browser whose cookies the test can read, which stops at Sluice's sign-in callback instead
/// of following the provider's redirect to it (a load balancer may send that anywhere).
fn browser_stopping_at_the_callback() -> (reqwest::Client, std::sync::Arc<reqwest::cookie::Jar>) {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let c = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.url().path().starts_with("/ui/oidc/callback") {
                attempt.stop()
            } else {
                attempt.follow()
            }
        }))
        .build()
        .unwrap();
    (c, jar)
}

#[tokio::test]
async fn a_console_sign_in_started_on_one_instance_completes_on_another_once() {
    let Some(url) = harness::pg_url().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(idp) = Idp::start(dir.path(), accounts(&["SRE Team"])).await else {
        return;
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = dir.path().join("audit-signing.pem").display().to_string();
    let secret = [("SLUICE_OIDC_CLIENT_SECRET", CLIENT_SECRET)];
    let mut args = vec![
        "--oidc-issuer",
        &idp.issuer,
        "--oidc-client-id",
        CLIENT_ID,
        "--database-url",
        &url,
        "--signing-key",
        &key,
    ];
    let a = Serve::start_with_env(dir_a.path(), &args, &secret).await;
    a.apply_policy(&reqwest::Client::new(), POLICY).await;
    // Behind one public address (here A's): the provider sends every answer there, and the
    // load balancer may hand it to either instance.
    let public = format!("http://{}", a.addr);
    args.extend(["--public-url", &public]);
    let b = Serve::start_with_env(dir_b.path(), &args, &secret).await;

    // Started on A: to the provider's form and back, stopping at the answer.
    let (browser, jar) = browser_stopping_at_the_callback();
    let r = browser.get(a.url("/ui/oidc/start")).send().await.unwrap();
    assert!(r.url().as_str().starts_with(&idp.issuer), "at {}", r.url());
    let html = r.text().await.unwrap();
    let r = browser
        .post(form_action(&html, &idp.issuer))
        .form(&[("login", "alice")])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let answer = r
        .headers()
        .get(reqwest::header::LOCATION)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        answer.starts_with(&format!("{public}/ui/oidc/callback?")),
        "{answer}"
    );
    // The cookie binding the sign-in to this browser (kept to replay the answer below).
    use reqwest::cookie::CookieStore as _;
    let binding = jar
        .cookies(&answer.parse().unwrap())
        .expect("the binding cookie")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(binding.contains("sluice_oidc="), "{binding}");

    // Completed on B: B never saw the start, and signs her in.
    let on_b = answer.replacen(&public, &format!("http://{}", b.addr), 1);
    let r = browser.get(&on_b).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("Signed in"));
    let inbox = browser.get(b.url("/ui/inbox")).send().await.unwrap();
    assert_eq!(inbox.status(), StatusCode::OK);
    assert!(
        inbox.url().path().ends_with("/ui/inbox"),
        "not sent to sign in"
    );
    assert!(inbox.text().await.unwrap().contains("alice@example.com"));
    let signed = entries(&a, "principal.signed_in").await;
    assert_eq!(signed.len(), 1, "{signed:?}");
    assert_eq!(signed[0]["actor"], "alice@example.com");

    // The same answer replayed, with the same binding cookie, on either instance: refused,
    // and nobody else is signed in.
    for s in [&a, &b] {
        let r = reqwest::Client::new()
            .get(answer.replacen(&public, &format!("http://{}", s.addr), 1))
            .header(reqwest::header::COOKIE, &binding)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let html = r.text().await.unwrap();
        assert!(html.contains("not started here or has expired"), "{html}");
    }
    assert_eq!(entries(&b, "principal.signed_in").await.len(), 1);
    // Nothing of the sign-in is left in the store.
    let db = raw_db(&a, Some(&url)).await;
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pending_sign_ins")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(left, 0);
    db.close().await;
    a.verify_gap_free(&reqwest::Client::new()).await;
}

/// A person in a real Chromium: the sign-in page's button, the provider's own login form,
/// and back on the console's inbox as the principal the claims map to.
#[tokio::test]
async fn a_person_signs_in_to_the_console_in_chromium_through_the_providers_form() {
    use crate::console::{
        browser as chromium, click, driver, screenshot, text, type_into, wait_for,
    };
    let Some(d) = driver().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(idp) = Idp::start(dir.path(), accounts(&["SRE Team"])).await else {
        return;
    };
    let s = sluice(dir.path(), &idp).await;
    let c = chromium(&d, 1200, 900).await;
    c.goto(&s.url("/ui/sign-in")).await.unwrap();
    assert!(text(&c, "#sign-in-idp").await.starts_with("Sign in with"));
    click(&c, "#sign-in-idp").await;
    // The provider's page, in the browser: its form, its button.
    wait_for(&c, "input[name=login]").await;
    let at = c.current_url().await.unwrap();
    assert!(
        at.as_str().starts_with(&idp.issuer),
        "at the provider: {at}"
    );
    type_into(&c, "input[name=login]", "alice").await;
    click(&c, "button[type=submit]").await;
    // Back at Sluice, on the inbox, as her.
    wait_for(&c, "nav a[aria-current=page][href='/ui/inbox']").await;
    let at = c.current_url().await.unwrap();
    assert_eq!(at.as_str(), s.url("/ui/inbox"));
    assert!(text(&c, "body").await.contains("alice@example.com"));
    screenshot(&c, "oidc-signed-in.png").await;
    let signed = entries(&s, "principal.signed_in").await;
    assert_eq!(signed.len(), 1, "{signed:?}");
    assert_eq!(signed[0]["actor"], "alice@example.com");
    assert_eq!(signed[0]["details"]["via"], "console");
    assert_eq!(
        signed[0]["details"]["groups"],
        json!(["oncall", "responders"])
    );
    c.close().await.unwrap();
}
