//! The incident story from the README, through the real CLI.

use crate::harness::{offline, Serve, ADMIN_TOKEN, POLICY};
use serde_json::Value;

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incident_story_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    let admin = Some(ADMIN_TOKEN);

    // Policy as code.
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).expect("write policy");
    let out = s
        .ok(admin, &["apply", "-f", policy.to_str().expect("utf-8")])
        .await;
    assert!(out.contains("applied policy version 1"), "{out}");

    // Tokens, each printed once on stdout.
    let mut tokens = std::collections::HashMap::new();
    for who in ["alice", "bob", "dave"] {
        let out = s
            .ok(
                admin,
                &["tokens", "create", "--name", "laptop", "--principal", who],
            )
            .await;
        let token = out.trim().to_owned();
        assert!(token.starts_with("slu_api_"), "{out}");
        tokens.insert(who, token);
    }
    let (alice, bob, dave) = (
        Some(tokens["alice"].as_str()),
        Some(tokens["bob"].as_str()),
        Some(tokens["dave"].as_str()),
    );
    let who = s.json(alice, &["whoami"]).await;
    assert_eq!(who["name"], "alice");

    // Alice is on call: auto-approved.
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
                "INC-4411 checkout errors",
            ],
        )
        .await;
    assert_eq!(
        (g["status"].as_str(), g["origin"].as_str()),
        (Some("active"), Some("auto-approved")),
        "{g}"
    );
    let out = s
        .ok(
            alice,
            &["check", "alice", "toggle", "flag:production/checkout-v2"],
        )
        .await;
    assert!(out.starts_with("allow"), "{out}");
    // A denial prints its answer and exits 1, as `kubectl auth can-i` does.
    let r = s
        .cli(
            dave,
            &["check", "dave", "toggle", "flag:production/checkout-v2"],
        )
        .await;
    assert!(!r.success, "a denial exits 1: {}", r.stdout);
    assert!(r.stdout.starts_with("deny"), "{}", r.stdout);
    assert!(r.stderr.is_empty(), "a denial is no error: {}", r.stderr);
    // Asking about someone else needs an administrator or a member of `deciders`.
    let r = s
        .cli(
            alice,
            &["check", "dave", "toggle", "flag:production/checkout-v2"],
        )
        .await;
    assert!(!r.success, "{}", r.stdout);
    assert!(r.stderr.contains("group `deciders`"), "{}", r.stderr);

    // Too long: refused, naming the cap.
    let r = s
        .cli(
            alice,
            &[
                "access",
                "request",
                "flags-prod-operator",
                "--for",
                "3h",
                "--reason",
                "x",
            ],
        )
        .await;
    assert!(!r.success);
    assert!(r.stderr.contains("at most 1h"), "{}", r.stderr);

    // Dave needs a lead; he cannot approve himself, and is told who can.
    let p = s
        .json(
            dave,
            &["access", "request", "orders-db-read", "--for", "1h"],
        )
        .await;
    assert_eq!(p["status"], "pending", "{p}");
    let r = s.cli(dave, &["access", "approve", &id(&p)]).await;
    assert!(!r.success, "self-approval must fail");
    assert!(
        r.stderr.contains("your own request") && r.stderr.contains("group:leads"),
        "says who can approve: {}",
        r.stderr
    );
    let listed = s
        .json(bob, &["access", "list", "--status", "pending"])
        .await;
    assert_eq!(
        listed
            .as_array()
            .map(|a| a.iter().map(id).collect::<Vec<_>>()),
        Some(vec![id(&p)]),
        "{listed}"
    );
    let a = s
        .json(bob, &["access", "approve", &id(&p), "--comment", "ok"])
        .await;
    assert_eq!(a["status"], "active", "{a}");
    let out = s.ok(dave, &["check", "dave", "read", "db:orders"]).await;
    assert!(out.starts_with("allow"), "{out}");

    // A second request is denied.
    // Printed for people, a pending request says how to approve it, as a proposal does.
    let out = s
        .ok(
            dave,
            &["access", "request", "orders-db-read", "--for", "1h"],
        )
        .await;
    let p2 = out
        .lines()
        .find_map(|l| l.strip_prefix("request"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no request id: {out}"))
        .to_owned();
    assert!(
        out.contains(&format!("approve with: sluice access approve {p2}")),
        "{out}"
    );
    let d = s
        .json(bob, &["access", "deny", &p2, "--comment", "not now"])
        .await;
    assert_eq!(d["status"], "denied", "{d}");

    // Revoke dave's grant; alice gives hers back.
    let r = s
        .json(
            bob,
            &["access", "revoke", &id(&p), "--reason", "incident closed"],
        )
        .await;
    assert_eq!(r["status"], "revoked", "{r}");
    let r = s.json(alice, &["access", "relinquish", &id(&g)]).await;
    assert_eq!(r["status"], "relinquished", "{r}");
    let r = s
        .cli(
            alice,
            &["check", "alice", "toggle", "flag:production/checkout-v2"],
        )
        .await;
    assert!(!r.success && r.stdout.starts_with("deny"), "{r:?}");

    let all = s.json(admin, &["access", "list"]).await;
    let statuses: Vec<&str> = all
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["status"].as_str())
        .collect();
    assert_eq!(statuses.len(), 3, "{all}");
    for st in ["relinquished", "revoked", "denied"] {
        assert!(statuses.contains(&st), "{st} in {statuses:?}");
    }

    // The audit trail.
    let tail = s
        .ok(
            admin,
            &["audit", "tail", "--action", "access.", "-n", "100"],
        )
        .await;
    for action in [
        "access.requested",
        "access.auto-approved",
        "access.granted",
        "access.approved",
        "access.denied",
        "access.revoked",
        "access.relinquished",
    ] {
        assert!(tail.contains(action), "{action} in:\n{tail}");
    }
    let out = s.ok(admin, &["audit", "verify"]).await;
    assert!(out.starts_with("ok:"), "{out}");

    // Export, public key, offline verification.
    let export = dir.path().join("export.jsonl");
    let export_s = export.to_str().expect("utf-8");
    s.ok(admin, &["audit", "export", "--out", export_s]).await;
    let public = s.public_key_file(dir.path()).await;
    let public_s = public.to_str().expect("utf-8");
    let r = offline(
        &["audit", "verify", export_s, "--public-key", public_s],
        dir.path(),
    )
    .await;
    assert!(r.success, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("ok:"), "{}", r.stdout);

    // One edited line: refused, naming the first bad sequence number.
    let text = std::fs::read_to_string(&export).expect("read export");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let (i, seq) = lines
        .iter()
        .enumerate()
        .find_map(|(i, l)| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["action"] == "access.approved").then(|| (i, v["seq"].as_i64().expect("seq")))
        })
        .expect("an approval in the export");
    lines[i] = lines[i].replace("\"bob\"", "\"carol\"");
    std::fs::write(&export, lines.join("\n")).expect("write edited export");
    let r = offline(
        &["audit", "verify", export_s, "--public-key", public_s],
        dir.path(),
    )
    .await;
    assert!(!r.success, "an edited export must fail: {}", r.stdout);
    assert!(
        r.stderr
            .contains(&format!("first bad sequence number: {seq}")),
        "names seq {seq}: {}",
        r.stderr
    );
    assert!(r.stdout.contains(&format!("seq {seq}")), "{}", r.stdout);
}

/// `sluice audit tail | head -1`: when the reader goes away, the command stops quietly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    for args in [&["audit", "tail"][..], &["audit", "tail", "-o", "json"][..]] {
        let (success, stderr) = s.cli_into_closed_pipe(ADMIN_TOKEN, args).await;
        assert!(!stderr.contains("panicked"), "sluice {args:?}: {stderr}");
        assert!(success, "sluice {args:?} exits 0: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_to_do_next() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    let r = s.cli(None, &["whoami"]).await;
    assert!(!r.success);
    assert!(
        r.stderr.contains("SLUICE_TOKEN"),
        "mentions SLUICE_TOKEN: {}",
        r.stderr
    );
    let r = s
        .cli(
            Some("slu_api_not-a-real-token-but-long-enough-1234"),
            &["access", "list"],
        )
        .await;
    assert!(!r.success);
    assert!(r.stderr.contains("SLUICE_TOKEN"), "{}", r.stderr);
    let r = s
        .cli(Some(ADMIN_TOKEN), &["check", "alice", "read", "no-kind"])
        .await;
    assert!(!r.success);
    assert!(r.stderr.contains("kind:name"), "{}", r.stderr);
    // Nothing listening there.
    let nowhere = format!("127.0.0.1:{}", crate::harness::free_port());
    let r = offline(
        &["whoami", "--addr", &nowhere, "--token", ADMIN_TOKEN],
        dir.path(),
    )
    .await;
    assert!(!r.success);
    assert!(r.stderr.contains("sluice serve"), "{}", r.stderr);
}
