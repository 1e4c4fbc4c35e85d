//! Starting `sluice serve`: what it says and what it leaves behind when it cannot start.

use crate::harness::{command, free_port, offline, Serve};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Runs `sluice serve ARGS` in `dir` and waits for it to exit (it is expected to fail).
async fn serve_fails(dir: &std::path::Path, args: &[&str], admin_token: Option<&str>) -> String {
    let mut c = command();
    c.arg("serve")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(t) = admin_token {
        c.env("SLUICE_ADMIN_TOKEN", t);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), c.output())
        .await
        .expect("sluice serve gave up within 30 s")
        .expect("ran");
    assert!(!out.status.success(), "sluice serve {args:?} must fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn an_address_in_use_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let data = dir.path().join("data");
    let data_arg = data.display().to_string();
    let err = serve_fails(
        dir.path(),
        &["--listen", &addr, "--data-dir", &data_arg],
        None,
    )
    .await;
    assert!(
        err.contains(&format!("cannot listen on {addr}")),
        "names the address: {err}"
    );
    assert!(
        err.to_lowercase().contains("address already in use"),
        "{err}"
    );
    // Nothing was bootstrapped whose token nobody saw.
    assert!(!data.join("sluice.db").exists(), "no database written");
}

#[tokio::test]
async fn an_invalid_admin_token_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.display().to_string();
    let addr = format!("127.0.0.1:{}", free_port());
    let err = serve_fails(
        dir.path(),
        &["--listen", &addr, "--data-dir", &data_arg],
        Some("hunter2"),
    )
    .await;
    assert!(err.contains("SLUICE_ADMIN_TOKEN"), "{err}");
    assert!(!data.exists(), "no data directory, database or key created");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
}

#[tokio::test]
async fn the_first_start_banner_names_the_address_and_logs_are_plain_in_a_pipe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = command()
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sluice serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    // Read until the "listening" log line, which comes after the banner.
    let read = async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("sluice listening") {
                return;
            }
        }
        panic!("sluice serve ended before listening:\n{seen}");
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("listening within 30 s");
    child.kill().await.expect("kill");
    assert!(seen.contains("First start"), "{seen}");
    assert!(
        seen.contains(&format!("listening on http://{addr}")),
        "the banner names the address: {seen}"
    );
    assert!(
        seen.contains(&format!("export SLUICE_ADDR={addr}")),
        "{seen}"
    );
    assert!(
        !seen.contains('\u{1b}'),
        "no ANSI colours into a pipe: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_prints_json_with_dash_o_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    s.kill().await;
    let from = format!("sqlite://{}", dir.path().join("sluice.db").display());
    let to = format!("sqlite://{}", dir.path().join("copy.db").display());
    let r = offline(
        &["store", "copy", "--from", &from, "--to", &to, "-o", "json"],
        dir.path(),
    )
    .await;
    assert!(r.success, "copy failed:\n{}\n{}", r.stdout, r.stderr);
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.stdout));
    let audit = v["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["table"] == "audit_entries")
        .unwrap_or_else(|| panic!("audit_entries counted: {v}"));
    assert!(audit["rows"].as_u64().is_some_and(|n| n > 0), "{v}");
    assert!(v["copied_head_seq"].as_i64().is_some_and(|n| n > 0), "{v}");
}
