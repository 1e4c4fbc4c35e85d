//! `sluice audit tail`: the newest entries, and `--follow` over the server's event stream.

use crate::harness::{command, Serve, ADMIN_TOKEN};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

async fn create_token(s: &Serve, name: &str) {
    s.ok(Some(ADMIN_TOKEN), &["tokens", "create", "--name", name])
        .await;
}

type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// The follower's next line, as JSON, within 10 s.
async fn next(lines: &mut Lines) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("a line within 10 s")
        .expect("read")
        .expect("the follower is still running");
    serde_json::from_str(&line).expect("one JSON entry per line")
}

fn subjects(entries: &[Value]) -> Vec<i64> {
    entries
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_shows_the_newest_matching_entries_oldest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    for i in 0..6 {
        create_token(&s, &format!("t{i}")).await;
    }
    let all = s
        .json(Some(ADMIN_TOKEN), &["audit", "tail", "-n", "1000"])
        .await;
    let all = all["entries"].as_array().expect("entries").clone();
    let tokens: Vec<Value> = all
        .iter()
        .filter(|e| e["action"] == "token.created")
        .cloned()
        .collect();
    assert_eq!(tokens.len(), 6);

    let v = s
        .json(
            Some(ADMIN_TOKEN),
            &["audit", "tail", "-n", "3", "--action", "token."],
        )
        .await;
    let got = v["entries"].as_array().expect("entries");
    assert_eq!(subjects(got), subjects(&tokens[3..]), "{v}");
    let names: Vec<&str> = got
        .iter()
        .map(|e| e["details"]["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["t3", "t4", "t5"], "{v}");

    // Without a filter: the last two entries of the whole trail.
    let v = s
        .json(Some(ADMIN_TOKEN), &["audit", "tail", "-n", "2"])
        .await;
    let got = v["entries"].as_array().expect("entries");
    assert_eq!(subjects(got), subjects(&all[all.len() - 2..]), "{v}");
    // The table shows them too, newest last.
    let out = s.ok(Some(ADMIN_TOKEN), &["audit", "tail", "-n", "2"]).await;
    let last = out.lines().last().expect("a row");
    assert!(
        last.starts_with(&all[all.len() - 1]["seq"].to_string()),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_follow_prints_an_entry_written_after_it_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    create_token(&s, "before").await;
    let mut child = command()
        .args([
            "audit", "tail", "-n", "1", "--follow", "--action", "token.", "-o", "json",
        ])
        .env("SLUICE_ADDR", &s.addr)
        .env("SLUICE_TOKEN", ADMIN_TOKEN)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn tail --follow");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = next(&mut lines).await;
    assert_eq!(first["details"]["name"], "before", "{first}");

    create_token(&s, "after").await;
    create_token(&s, "later").await;
    let second = next(&mut lines).await;
    assert_eq!(second["details"]["name"], "after", "{second}");
    let third = next(&mut lines).await;
    assert_eq!(third["details"]["name"], "later", "{third}");
    assert!(third["seq"].as_i64() > second["seq"].as_i64());
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "still following"
    );
    child.kill().await.expect("kill");
}
