//! Real OpenFeature clients against the real `sluice serve`: the Python SDK with
//! `openfeature-provider-ofrep` and the JavaScript server SDK with `@openfeature/ofrep-provider`
//! (scripts and pinned versions in `tests/sdk/`; `.ci/run` installs them). Without the
//! packages these tests print a notice and pass — except under `CI=true`, where they fail.

use crate::harness::{Serve, ADMIN_TOKEN};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sdk_dir() -> PathBuf {
    repo_root().join("tests/sdk")
}

/// `SLUICE_SDK_PYTHON`, else the venv `.ci/run` makes (`target/sdk-venv`), else `python3`.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SLUICE_SDK_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo_root().join("target/sdk-venv/bin/python3");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// Whether a command runs and exits 0 within 30 s.
async fn runs(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    matches!(
        tokio::time::timeout(Duration::from_secs(30), cmd.status()).await,
        Ok(Ok(s)) if s.success()
    )
}

/// `true` when the client can run; otherwise a notice (or, under `CI=true`, a failure).
async fn available(what: &str, probe: &mut Command, how: &str) -> bool {
    if runs(probe).await {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but the {what} OpenFeature SDK is not installed ({how})"
    );
    eprintln!("notice: the {what} OpenFeature SDK is not installed ({how}); its test is skipped");
    false
}

/// A server with `tests/sdk/flags.json` in `production` and a client key for it.
async fn server_with_flags(dir: &Path) -> (Serve, String) {
    let s = Serve::start(dir).await;
    let flags = sdk_dir().join("flags.json");
    let flags = flags.to_str().expect("utf-8 path");
    let out = s
        .ok(
            Some(ADMIN_TOKEN),
            &[
                "flags",
                "import",
                "--env",
                "production",
                "--create-env",
                flags,
            ],
        )
        .await;
    assert!(out.contains("imported 9 flags"), "{out}");
    let key = s
        .ok(
            Some(ADMIN_TOKEN),
            &[
                "tokens",
                "create",
                "--name",
                "sdk",
                "--kind",
                "client",
                "--env",
                "production",
            ],
        )
        .await
        .trim()
        .to_owned();
    assert!(key.starts_with("slu_"), "a client key: {key}");
    (s, key)
}

/// Runs a client script against the server; it must exit 0 within 60 s.
async fn run_client(s: &Serve, key: &str, mut cmd: Command, what: &str) {
    cmd.current_dir(sdk_dir())
        .env("SLUICE_OFREP_URL", format!("http://{}", s.addr))
        .env("SLUICE_CLIENT_KEY", key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("the {what} client did not finish within 60 s"))
        .expect("the client ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the {what} client failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_openfeature_sdk_resolves_typed_flags_over_ofrep() {
    let py = python();
    let mut probe = Command::new(&py);
    probe.args(["-c", "import openfeature.contrib.provider.ofrep"]);
    let how = "pip install -r tests/sdk/requirements.txt, or set SLUICE_SDK_PYTHON";
    if !available("Python", &mut probe, how).await {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, key) = server_with_flags(dir.path()).await;
    let mut cmd = Command::new(&py);
    cmd.arg("ofrep_client.py");
    run_client(&s, &key, cmd, "Python").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_openfeature_sdk_resolves_typed_flags_over_ofrep() {
    let mut probe = Command::new("node");
    probe.current_dir(sdk_dir()).args([
        "--input-type=module",
        "-e",
        "await import('@openfeature/ofrep-provider'); await import('@openfeature/server-sdk');",
    ]);
    if !available("JavaScript", &mut probe, "npm ci --prefix tests/sdk").await {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, key) = server_with_flags(dir.path()).await;
    let mut cmd = Command::new("node");
    cmd.arg("ofrep_client.mjs");
    run_client(&s, &key, cmd, "JavaScript").await;
}

/// `sluice flags import --lenient` and `client_rate_limit` in `sluice.yaml`, end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lenient_import_and_the_client_rate_limit_through_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("sluice.yaml"), "client_rate_limit: 3\n").expect("config");
    let s = Serve::start(dir.path()).await;
    let doc = dir.path().join("broken.json");
    std::fs::write(
        &doc,
        r#"{"flags": {
            "ok": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"},
            "bad": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on",
                    "targeting": {"no_such_op": [1]}}}}"#,
    )
    .expect("write");
    let doc = doc.to_str().expect("utf-8 path");
    let strict = s
        .cli(
            Some(ADMIN_TOKEN),
            &["flags", "import", "--env", "staging", "--create-env", doc],
        )
        .await;
    assert!(!strict.success, "strict by default: {}", strict.stdout);
    assert!(
        strict.stderr.contains("$.flags.bad.targeting.no_such_op"),
        "{}",
        strict.stderr
    );
    let out = s
        .ok(
            Some(ADMIN_TOKEN),
            &[
                "flags",
                "import",
                "--lenient",
                "--env",
                "staging",
                "--create-env",
                doc,
            ],
        )
        .await;
    assert!(out.contains("imported 2 flags"), "{out}");
    assert!(
        out.contains("bad answers PARSE_ERROR: $.flags.bad.targeting.no_such_op"),
        "{out}"
    );

    let key = s
        .ok(
            Some(ADMIN_TOKEN),
            &[
                "tokens", "create", "--name", "web", "--kind", "client", "--env", "staging",
            ],
        )
        .await
        .trim()
        .to_owned();
    let http = reqwest::Client::new();
    let send = |flag: &str| {
        http.post(s.url(&format!("/ofrep/v1/evaluate/flags/{flag}")))
            .header("x-api-key", &key)
            .body("{}")
            .send()
    };
    let r = send("bad").await.expect("sent");
    assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["errorCode"], "PARSE_ERROR", "{v}");
    // Three per second: within 40 requests a 429 with Retry-After comes (40 without one would
    // take over ten one-second windows).
    let mut limited = None;
    for _ in 0..40 {
        let r = send("ok").await.expect("sent");
        if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), reqwest::StatusCode::OK);
    }
    let r = limited.expect("429 within 40 requests at 3/s");
    assert!(
        r.headers().get("retry-after").is_some(),
        "{:?}",
        r.headers()
    );
}
