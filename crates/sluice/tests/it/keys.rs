//! The audit signing key: a server refuses to sign a trail with a key other than the one
//! that signs it, rotation hands signing over so that verification follows, and a cut
//! export gets one verdict.

use crate::harness::{command, free_port, offline, pg_url, Serve, ADMIN_TOKEN};
use sluice_audit::AuditSigner;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Starts `sluice serve` expecting it to refuse: returns its stderr once it exits; panics if
/// it answers `/healthz` instead.
async fn refused(data_dir: &Path, extra: &[&str]) -> String {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = command()
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN)
        .current_dir(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sluice serve");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            let out = child.wait_with_output().await.expect("output");
            assert!(!out.status.success(), "a refusal exits non-zero");
            return String::from_utf8_lossy(&out.stderr).into_owned();
        }
        let up = http
            .get(format!("http://{addr}/healthz"))
            .timeout(Duration::from_millis(500))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        assert!(!up, "sluice serve {extra:?} started; it must refuse");
        assert!(
            Instant::now() < deadline,
            "sluice serve neither started nor exited"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn key_id(path: &Path) -> String {
    AuditSigner::load_existing(path)
        .expect("readable key")
        .expect("a key")
        .verifying_key()
        .key_id()
        .to_owned()
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// The refusal names the expected key and every way to pass one.
fn assert_names_the_key(stderr: &str, expected: &str) {
    for needle in [
        expected,
        "--signing-key",
        "SLUICE_SIGNING_KEY",
        "signing_key",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
}

/// A server over `dir` that wrote a few entries and a checkpoint (an export makes one).
async fn signed_installation(dir: &Path) -> Serve {
    let s = Serve::start(dir).await;
    s.ok(Some(ADMIN_TOKEN), &["tokens", "create", "--name", "ci"])
        .await;
    let out = path_str(&dir.join("first.jsonl"));
    s.ok(Some(ADMIN_TOKEN), &["audit", "export", "--out", &out])
        .await;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_a_store_copy_without_the_signing_key_refuses_to_start() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    signed_installation(a.path()).await.kill().await;
    let from = format!("sqlite://{}", a.path().join("sluice.db").display());
    let to = format!("sqlite://{}", b.path().join("sluice.db").display());
    let r = offline(&["store", "copy", "--from", &from, "--to", &to], b.path()).await;
    assert!(r.success, "copy: {}\n{}", r.stdout, r.stderr);

    let key = a.path().join("audit-signing.pem");
    let stderr = refused(b.path(), &[]).await;
    assert_names_the_key(&stderr, &key_id(&key));
    assert!(stderr.contains("no audit signing key"), "{stderr}");
    assert!(
        !b.path().join("audit-signing.pem").exists(),
        "a refused start leaves no key behind"
    );

    let s = Serve::start_with(b.path(), &["--signing-key", &path_str(&key)]).await;
    let out = s.ok(Some(ADMIN_TOKEN), &["audit", "verify"]).await;
    assert!(out.starts_with("ok:"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_with_another_key_on_the_same_database_refuses_to_start() {
    let Some(url) = pg_url().await else { return };
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let key_a = a.path().join("audit-signing.pem");
    let first = Serve::start_with(a.path(), &["--database-url", &url]).await;
    let export = path_str(&a.path().join("first.jsonl"));
    first
        .ok(Some(ADMIN_TOKEN), &["audit", "export", "--out", &export])
        .await;

    // Its own data directory, no key: refused, and no key is made.
    let stderr = refused(b.path(), &["--database-url", &url]).await;
    assert_names_the_key(&stderr, &key_id(&key_a));
    assert!(!b.path().join("audit-signing.pem").exists());
    // Another existing key: refused, naming both.
    let other = b.path().join("other.pem");
    AuditSigner::create(&other).expect("a key");
    let stderr = refused(
        b.path(),
        &["--database-url", &url, "--signing-key", &path_str(&other)],
    )
    .await;
    assert_names_the_key(&stderr, &key_id(&key_a));
    assert!(stderr.contains(&key_id(&other)), "{stderr}");

    // The same key: it starts, and the trail both write verifies.
    let second = Serve::start_with(
        b.path(),
        &["--database-url", &url, "--signing-key", &path_str(&key_a)],
    )
    .await;
    second
        .ok(Some(ADMIN_TOKEN), &["tokens", "create", "--name", "b"])
        .await;
    let export = path_str(&b.path().join("second.jsonl"));
    second
        .ok(Some(ADMIN_TOKEN), &["audit", "export", "--out", &export])
        .await;
    let out = first.ok(Some(ADMIN_TOKEN), &["audit", "verify"]).await;
    assert!(out.starts_with("ok:"), "{out}");
}

/// `sluice audit public-key` of `key`, written to `out`.
async fn public_key(dir: &Path, key: &Path, out: &Path) {
    let r = offline(
        &["audit", "public-key", "--signing-key", &path_str(key)],
        dir,
    )
    .await;
    assert!(r.success, "{}", r.stderr);
    std::fs::write(out, r.stdout).expect("write public key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_rotation_the_trail_verifies_live_and_offline_with_either_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let old = d.join("audit-signing.pem");
    let new = d.join("new-signing.pem");
    signed_installation(d).await.kill().await;
    let (old_pub, new_pub, wrong_pub) = (d.join("old.pub"), d.join("new.pub"), d.join("wrong.pub"));
    public_key(d, &old, &old_pub).await;

    let r = offline(
        &[
            "audit",
            "rotate-key",
            "--data-dir",
            &path_str(d),
            "--new-key",
            &path_str(&new),
        ],
        d,
    )
    .await;
    assert!(r.success, "rotate-key: {}\n{}", r.stdout, r.stderr);
    public_key(d, &new, &new_pub).await;

    // The old key no longer signs this trail.
    let stderr = refused(d, &[]).await;
    assert_names_the_key(&stderr, &key_id(&new));

    let s = Serve::start_with(d, &["--signing-key", &path_str(&new)]).await;
    s.ok(Some(ADMIN_TOKEN), &["tokens", "create", "--name", "after"])
        .await;
    let live = s.ok(Some(ADMIN_TOKEN), &["audit", "verify"]).await;
    assert!(live.starts_with("ok:"), "{live}");
    let export = d.join("rotated.jsonl");
    s.ok(
        Some(ADMIN_TOKEN),
        &["audit", "export", "--out", &path_str(&export)],
    )
    .await;
    let rotations = s
        .audit_entries(&reqwest::Client::new(), Some("audit.key."))
        .await;
    assert_eq!(rotations.len(), 2, "{rotations:?}");

    for key in [&old_pub, &new_pub] {
        let r = offline(
            &[
                "audit",
                "verify",
                &path_str(&export),
                "--public-key",
                &path_str(key),
            ],
            d,
        )
        .await;
        assert!(r.success, "verify with {key:?}: {}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.starts_with("ok:"), "{}", r.stdout);
    }

    // A key that never signed this trail: one clear verdict naming it.
    let stray = d.join("stray.pem");
    AuditSigner::create(&stray).expect("a key");
    public_key(d, &stray, &wrong_pub).await;
    let r = offline(
        &[
            "audit",
            "verify",
            &path_str(&export),
            "--public-key",
            &path_str(&wrong_pub),
        ],
        d,
    )
    .await;
    assert!(!r.success, "{}", r.stdout);
    assert_eq!(r.stdout.lines().count(), 1, "one verdict: {}", r.stdout);
    assert!(r.stdout.contains(&key_id(&stray)), "{}", r.stdout);
    assert!(r.stdout.contains("is this the public key"), "{}", r.stdout);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_export_gets_one_verdict_naming_where_it_was_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let s = signed_installation(d).await;
    for i in 0..3 {
        s.ok(
            Some(ADMIN_TOKEN),
            &["tokens", "create", "--name", &format!("t{i}")],
        )
        .await;
    }
    let export = d.join("full.jsonl");
    s.ok(
        Some(ADMIN_TOKEN),
        &["audit", "export", "--out", &path_str(&export)],
    )
    .await;
    public_key(d, &d.join("audit-signing.pem"), &d.join("audit.pub")).await;
    let text = std::fs::read_to_string(&export).expect("export");
    let lines: Vec<&str> = text.lines().collect();
    let verify = |file: std::path::PathBuf| async move {
        offline(
            &[
                "audit",
                "verify",
                &path_str(&file),
                "--public-key",
                "audit.pub",
            ],
            d,
        )
        .await
    };

    // Cut in the middle of the last entry's line.
    let cut = d.join("cut.jsonl");
    let keep = text.len() - lines[lines.len() - 1].len() - lines[lines.len() - 2].len() / 2 - 2;
    std::fs::write(&cut, &text[..keep]).expect("write");
    let r = verify(cut).await;
    assert!(!r.success);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "cut off in the middle of line {}",
            lines.len() - 1
        )),
        "{}",
        r.stderr
    );

    // The last two lines (the closing checkpoint and the last entry) removed.
    let short = d.join("short.jsonl");
    std::fs::write(&short, lines[..lines.len() - 2].join("\n") + "\n").expect("write");
    let r = verify(short).await;
    assert!(!r.success);
    assert_eq!(r.stdout.lines().count(), 1, "one verdict: {}", r.stdout);
    // Only the closing checkpoint (and those at key rotations) goes into an export, so the
    // line before the last entry is an entry.
    let last_kept: serde_json::Value =
        serde_json::from_str(lines[lines.len() - 3]).expect("a JSON line");
    assert_eq!(last_kept["type"], "entry", "{last_kept}");
    let last_kept = last_kept["seq"].as_i64().expect("seq");
    assert!(
        r.stdout
            .contains(&format!("truncated: the export ends at entry {last_kept}")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("removed from its end"), "{}", r.stdout);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}
