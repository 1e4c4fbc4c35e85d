//! What `sluice serve` leaves on disk is private to its user: the data directory 0700, the
//! database and key files 0600; and the generated administrator token, when stderr is not a
//! terminal (here a pipe), goes to a 0600 file whose path is logged, never into the log.

use crate::harness::{command, free_port};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_private_and_the_generated_token_goes_to_a_private_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("state").join("data");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = command()
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "info")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sluice serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = String::new();
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

    let token_file = data.join("admin-token");
    let token = std::fs::read_to_string(&token_file).expect("the token file");
    let token = token.trim();
    assert!(token.starts_with("slu_api_"), "{token}");
    assert!(!seen.contains(token), "the token is not in the log: {seen}");
    assert!(!seen.contains("slu_api_"), "no token in the log: {seen}");
    assert!(
        seen.contains(&token_file.display().to_string()),
        "the log names the file: {seen}"
    );
    // The token in the file is the administrator's.
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/v1/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), reqwest::StatusCode::OK);

    assert_eq!(mode(&token_file), 0o600, "admin-token");
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(
        mode(data.parent().expect("parent")),
        0o700,
        "its created parent"
    );
    for f in [
        "sluice.db",
        "sluice.db-wal",
        "sluice.db-shm",
        "audit-signing.pem",
    ] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    child.kill().await.expect("kill");
}
