//! `-o json` prints the server's answer as the server sent it: the CLI reads typed answers
//! (the wire types of `sluice-api`), and writing one back out must not drop, rename, reorder
//! or reformat a field. Each command's output is compared, byte for byte, with the same
//! resource read over HTTP.

use crate::harness::{get_json, Serve, ADMIN_TOKEN, FLAGS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_the_answer_as_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    let admin = Some(ADMIN_TOKEN);
    let file = dir.path().join("flags.json");
    std::fs::write(&file, FLAGS).expect("write flags");
    let path = file.to_str().expect("utf-8");
    let env = ["--env", "staging"];
    s.ok(
        admin,
        &["flags", "import", path, env[0], env[1], "--create-env"],
    )
    .await;
    s.ok(
        admin,
        &[
            "rollout",
            "start",
            "checkout-v2",
            env[0],
            env[1],
            "--variant",
            "on",
            "--steps",
            "12.5,50,100",
            "--every",
            "30m",
        ],
    )
    .await;
    s.ok(
        admin,
        &[
            "flags",
            "target",
            "checkout-v2",
            env[0],
            env[1],
            "--variant",
            "on",
            "--keys",
            "alice,bob",
            "--group",
            "testers",
            "--for",
            "1h",
        ],
    )
    .await;
    s.ok(
        admin,
        &["flags", "disable", "banner", env[0], env[1], "--at", "+2h"],
    )
    .await;

    let http = reqwest::Client::new();
    let flag = "/v1/environments/staging/flags/checkout-v2";
    let cases: [(&[&str], String); 5] = [
        (&["flags", "list"], "/v1/environments".into()),
        (
            &["flags", "get", "checkout-v2", env[0], env[1]],
            flag.into(),
        ),
        (
            &["flags", "targets", "checkout-v2", env[0], env[1]],
            format!("{flag}/targets"),
        ),
        (
            &["rollout", "status", "checkout-v2", env[0], env[1]],
            format!("{flag}/rollout"),
        ),
        (&["flags", "scheduled", "--all"], "/v1/scheduled".into()),
    ];
    for (args, api) in cases {
        let (status, sent) = get_json(&http, &s.url(&api), ADMIN_TOKEN).await;
        assert!(status.is_success(), "GET {api}: {status} {sent}");
        assert!(!sent.is_null(), "GET {api} answered nothing");
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let printed = s.ok(admin, &all).await;
        assert_eq!(
            printed.trim_end(),
            serde_json::to_string_pretty(&sent).expect("render"),
            "sluice {args:?} -o json differs from GET {api}"
        );
    }
    s.kill().await;
}

/// A refusal is told apart by its status, not by its words: a change on a stale revision (409)
/// says how to see the flag as it is now; another refusal does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_change_says_how_to_see_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    let admin = Some(ADMIN_TOKEN);
    let file = dir.path().join("flags.json");
    std::fs::write(&file, FLAGS).expect("write flags");
    let path = file.to_str().expect("utf-8");
    s.ok(
        admin,
        &["flags", "import", path, "--env", "staging", "--create-env"],
    )
    .await;
    let stale = s
        .cli(
            admin,
            &[
                "flags",
                "disable",
                "banner",
                "--env",
                "staging",
                "--base-revision",
                "999",
            ],
        )
        .await;
    assert!(!stale.success, "{}", stale.stdout);
    assert!(
        stale.stderr.contains("(stale_revision, HTTP 409)"),
        "{}",
        stale.stderr
    );
    assert!(
        stale
            .stderr
            .contains("See the flag as it is now with `sluice flags get banner --env staging`"),
        "{}",
        stale.stderr
    );
    let invalid = s
        .cli(
            admin,
            &[
                "flags",
                "set-default",
                "banner",
                "--env",
                "staging",
                "purple",
            ],
        )
        .await;
    assert!(!invalid.success, "{}", invalid.stdout);
    assert!(
        invalid.stderr.contains("(invalid_flag, HTTP 400)"),
        "{}",
        invalid.stderr
    );
    assert!(
        !invalid.stderr.contains("See the flag as it is now"),
        "{}",
        invalid.stderr
    );
    s.kill().await;
}
