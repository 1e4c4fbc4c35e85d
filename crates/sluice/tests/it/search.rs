//! `sluice access who-can`, `what-can` and `check --explain` through the real CLI against a
//! real server.

use crate::harness::{Serve, ADMIN_TOKEN, FLAGS, POLICY};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_can_what_can_and_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    let admin = Some(ADMIN_TOKEN);
    // Production unprotected here, so the administrator may import its flags directly.
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        POLICY.replace("production: { protected: true }", "production: {}"),
    )
    .expect("write policy");
    s.ok(admin, &["apply", "-f", policy.to_str().expect("utf-8")])
        .await;
    let flags = dir.path().join("flags.json");
    std::fs::write(&flags, FLAGS).expect("write flags");
    let file = flags.to_str().expect("utf-8");
    s.ok(
        admin,
        &[
            "flags",
            "import",
            file,
            "--env",
            "production",
            "--create-env",
        ],
    )
    .await;
    let token = |who: &'static str| {
        let s = &s;
        async move {
            let out = s
                .ok(
                    admin,
                    &["tokens", "create", "--name", "t", "--principal", who],
                )
                .await;
            out.trim().to_owned()
        }
    };
    let (alice, dave) = (token("alice").await, token("dave").await);
    let (alice, dave) = (Some(alice.as_str()), Some(dave.as_str()));
    let g = s
        .json(
            alice,
            &[
                "access",
                "request",
                "flags-prod-operator",
                "--for",
                "30m",
                "--reason",
                "INC-1",
            ],
        )
        .await;
    assert_eq!(g["status"], "active", "{g}");

    // Who may toggle checkout-v2? Alice, by her grant: a table, or the standard's answer.
    let who = ["access", "who-can", "toggle", "flag:production/checkout-v2"];
    let out = s.ok(dave, &who).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("SUBJECT") && lines[0].contains("TYPE"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("alice") && lines[1].ends_with("user"),
        "{out}"
    );
    let v = s.json(dave, &who).await;
    assert_eq!(
        v,
        json!({"page": {"next_token": "", "count": 1}, "results": [{"type": "user", "id": "alice"}]})
    );
    let out = s
        .ok(
            dave,
            &[
                "access",
                "who-can",
                "toggle",
                "flag:production/checkout-v2",
                "--subject-type",
                "service_account",
            ],
        )
        .await;
    assert_eq!(
        out.trim(),
        "no service_account may toggle flag:production/checkout-v2 now"
    );

    // Which flags may alice toggle? Both production flags.
    let out = s.ok(alice, &["access", "what-can", "toggle", "flag"]).await;
    assert_eq!(
        out.lines().skip(1).map(str::trim).collect::<Vec<_>>(),
        ["flag:production/banner", "flag:production/checkout-v2"],
        "{out}"
    );
    // What may she do on one? Toggle only.
    let v = s
        .json(alice, &["access", "what-can", "flag:production/banner"])
        .await;
    assert_eq!(v["results"], json!([{"name": "toggle"}]), "{v}");
    // Dave may do nothing there, and may not ask about alice.
    let out = s
        .ok(dave, &["access", "what-can", "flag:production/banner"])
        .await;
    assert_eq!(
        out.trim(),
        "dave may do nothing Sluice knows of on flag:production/banner now"
    );
    let r = s
        .cli(
            dave,
            &["access", "what-can", "toggle", "flag", "--subject", "alice"],
        )
        .await;
    assert!(!r.success && r.stderr.contains("deciders"), "{}", r.stderr);
    let r = s.cli(dave, &["access", "what-can", "toggle"]).await;
    assert!(
        !r.success && r.stderr.contains("what-can toggle flag"),
        "{}",
        r.stderr
    );

    // Why? Alice by her grant; dave is told what to request.
    let out = s
        .ok(
            alice,
            &[
                "check",
                "alice",
                "toggle",
                "flag:production/checkout-v2",
                "--explain",
            ],
        )
        .await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("allow: allowed by grant req-"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("allowed by grant req-")
            && lines[1].contains("(flag:production/** [toggle])"),
        "{out}"
    );
    let r = s
        .cli(
            dave,
            &[
                "check",
                "dave",
                "toggle",
                "flag:production/checkout-v2",
                "--explain",
            ],
        )
        .await;
    assert!(!r.success, "a denial exits 1: {}", r.stdout);
    assert!(
        r.stdout.contains(
            "request it with: sluice access request flags-prod-operator --for 30m --reason \"…\""
        ),
        "{}",
        r.stdout
    );
    // Without --explain, one line as before.
    let out = s
        .ok(
            alice,
            &["check", "alice", "toggle", "flag:production/checkout-v2"],
        )
        .await;
    assert_eq!(out.lines().count(), 1, "{out}");

    // The help says what each form does.
    let help = s.ok(None, &["access", "what-can", "--help"]).await;
    assert!(help.contains("which flags may I toggle?"), "{help}");
    let help = s.ok(None, &["access", "who-can", "--help"]).await;
    assert!(
        help.contains("sluice access who-can toggle flag:production/checkout-v2"),
        "{help}"
    );
    s.kill().await;
}
