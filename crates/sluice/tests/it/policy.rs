//! `sluice apply` asks before taking anything away, and refuses without a terminal to ask on.

use crate::harness::{get_json, post_json, Serve, ADMIN_TOKEN, POLICY};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_that_removes_needs_yes_without_a_terminal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    let http = reqwest::Client::new();
    let admin = Some(ADMIN_TOKEN);
    let path = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.to_str().expect("utf-8").to_owned()
    };
    let policy = path("policy.yaml", POLICY);
    let empty = path("empty.yaml", "");

    // Adding takes nothing away: no question.
    let out = s.ok(admin, &["apply", "-f", &policy]).await;
    assert!(out.contains("applied policy version 1"), "{out}");
    let alice = s.api_token(&http, "alice").await;

    // The empty file would remove everyone; the CLI's stdin is not a terminal.
    let r = s.cli(admin, &["apply", "-f", &empty]).await;
    assert!(!r.success, "{r:?}");
    assert!(r.stderr.contains("nothing applied"), "{}", r.stderr);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    assert!(r.stderr.contains("- user alice"), "{}", r.stderr);
    assert!(
        r.stdout.contains("- environment production"),
        "{}",
        r.stdout
    );
    let (_, cur) = get_json(&http, &s.url("/v1/policy"), ADMIN_TOKEN).await;
    assert_eq!(cur["version"], 1, "{cur}");
    let (st, who) = get_json(&http, &s.url("/v1/whoami"), &alice).await;
    assert_eq!((st, who["name"].as_str()), (StatusCode::OK, Some("alice")));

    // A dry run never asks and never applies. (The file may be named without `-f` too, as
    // most people first type it; both at once is refused.)
    let out = s.ok(admin, &["apply", &empty, "--dry-run"]).await;
    assert!(out.contains("dry run: nothing applied"), "{out}");
    let r = s.cli(admin, &["apply", &empty, "-f", &policy]).await;
    assert!(!r.success, "{r:?}");
    assert!(r.stderr.contains("cannot be used with"), "{}", r.stderr);

    // With --yes it applies.
    let out = s.ok(admin, &["apply", &empty, "--yes"]).await;
    assert!(out.contains("applied policy version 2"), "{out}");
    let (_, cur) = get_json(&http, &s.url("/v1/policy"), ADMIN_TOKEN).await;
    assert_eq!(cur["version"], 2, "{cur}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_refuses_what_can_never_work_and_a_moved_base() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    let http = reqwest::Client::new();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        POLICY.replace(
            "approval: { required: 1, approvers: [group:leads] }\n    auto_approve",
            "approval: { required: 3, approvers: [group:leads] }\n    auto_approve",
        ),
    )
    .expect("write");
    let r = s
        .cli(
            Some(ADMIN_TOKEN),
            &["apply", "-f", bad.to_str().expect("utf-8"), "--yes"],
        )
        .await;
    assert!(!r.success, "{r:?}");
    assert!(
        r.stderr
            .contains("entitlements[0].approval.required: needs 3 approvals"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("(too_few_approvers, HTTP 400)"),
        "{}",
        r.stderr
    );
    let (_, cur) = get_json(&http, &s.url("/v1/policy"), ADMIN_TOKEN).await;
    assert!(cur["version"].is_null(), "{cur}");

    // A diff confirmed against another policy than the one in force is refused.
    let (st, v) = post_json(
        &http,
        &s.url("/v1/policy"),
        ADMIN_TOKEN,
        &json!({"source": POLICY, "base_hash": "0".repeat(64)}),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("policy_changed")),
        "{v}"
    );
}

const FLAGS: &str = r#"{"flags": {
    "new-search": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}
}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typo_creates_no_environment_and_targets_are_listed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    let admin = Some(ADMIN_TOKEN);
    let flags = dir.path().join("flags.json");
    std::fs::write(&flags, FLAGS).expect("write");
    let flags = flags.to_str().expect("utf-8");

    // First start: no environment exists, so the first import says it creates one.
    let r = s
        .cli(admin, &["flags", "import", flags, "--env", "production"])
        .await;
    assert!(!r.success, "{r:?}");
    assert!(
        r.stderr.contains("(unknown_environment, HTTP 404)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--create-env"), "{}", r.stderr);
    for env in ["production", "staging"] {
        let out = s
            .ok(
                admin,
                &["flags", "import", flags, "--env", env, "--create-env"],
            )
            .await;
        assert!(
            out.contains(&format!("imported 1 flags into {env}")),
            "{out}"
        );
    }
    // The typo from the field is refused, naming what exists.
    let r = s
        .cli(admin, &["flags", "import", flags, "--env", "prodution"])
        .await;
    assert!(!r.success, "{r:?}");
    assert!(
        r.stderr
            .contains("no environment `prodution`: the environments are `production`, `staging`"),
        "{}",
        r.stderr
    );

    // A change names the environment too, and hears the same.
    let r = s
        .cli(
            admin,
            &[
                "flags",
                "set-default",
                "new-search",
                "on",
                "--env",
                "prodution",
            ],
        )
        .await;
    assert!(!r.success, "{r:?}");
    assert!(
        r.stderr.contains("(unknown_environment, HTTP 404)"),
        "{}",
        r.stderr
    );

    // Targets: listed on their own and with the flag.
    let out = s
        .ok(
            admin,
            &["flags", "targets", "new-search", "--env", "staging"],
        )
        .await;
    assert!(out.contains("no active targets"), "{out}");
    s.ok(
        admin,
        &[
            "flags",
            "target",
            "new-search",
            "--env",
            "staging",
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
    let out = s
        .ok(
            admin,
            &["flags", "targets", "new-search", "--env", "staging"],
        )
        .await;
    assert!(out.contains("TARGET"), "{out}");
    assert!(out.contains("testers (alice, bob)"), "{out}");
    assert!(out.contains("in 1h"), "{out}");
    let listed = s
        .json(
            admin,
            &["flags", "targets", "new-search", "--env", "staging"],
        )
        .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let out = s
        .ok(admin, &["flags", "get", "new-search", "--env", "staging"])
        .await;
    assert!(out.contains("active targets:"), "{out}");
    assert!(out.contains("testers (alice, bob)"), "{out}");
}
