//! Delivering features under temporary access, through the real CLI: the kill switch in a
//! protected environment, expiring targets, staged rollouts and scheduled changes.

use crate::harness::{Serve, ADMIN_TOKEN};
use serde_json::Value;

const POLICY: &str = r#"
users: [alice, bob, dave]
groups:
  engineers: [alice, dave]
  leads: [bob]
environments:
  production: { protected: true }
  staging: {}
permissions:
  - to: [group:engineers]
    resource: "flag:staging/**"
    actions: ["*"]
entitlements:
  - name: flags-prod-operator
    scopes:
      - resource: "flag:production/**"
        actions: [toggle]
    requesters: [group:engineers]
    max_duration: 1h
    approval: { required: 1, approvers: [group:leads] }
    reason: required
"#;

const FLAGS: &str = r#"{
  "flags": {
    "checkout-v2": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
    "new-search": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}
  }
}"#;

fn text(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_switch_targets_rollouts_and_schedules_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    let admin = Some(ADMIN_TOKEN);
    let flags = dir.path().join("flags.json");
    std::fs::write(&flags, FLAGS).expect("write flags");
    for env in ["production", "staging"] {
        let out = s
            .ok(
                admin,
                &[
                    "flags",
                    "import",
                    flags.to_str().expect("utf-8"),
                    "--env",
                    env,
                    "--create-env",
                ],
            )
            .await;
        assert!(out.contains("imported 2 flags"), "{out}");
    }
    // Flags are loaded before the policy protects production: from then on an import there
    // needs a grant for `import`, administrators included.
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).expect("write policy");
    s.ok(admin, &["apply", "-f", policy.to_str().expect("utf-8")])
        .await;
    let token = |who: &'static str| {
        let s = &s;
        async move {
            s.ok(
                admin,
                &["tokens", "create", "--name", "laptop", "--principal", who],
            )
            .await
            .trim()
            .to_owned()
        }
    };
    let (dave, bob) = (token("dave").await, token("bob").await);
    let (dave, bob) = (Some(dave.as_str()), Some(bob.as_str()));

    // The kill switch without a grant: refused, naming the entitlement and the command.
    let r = s
        .cli(
            dave,
            &["flags", "disable", "checkout-v2", "--env", "production"],
        )
        .await;
    assert!(!r.success, "no grant, no change: {}", r.stdout);
    assert!(
        r.stderr.contains("flags-prod-operator") && r.stderr.contains("sluice access request"),
        "says what to request: {}",
        r.stderr
    );

    // With an approved grant it goes through.
    let req = s
        .json(
            dave,
            &[
                "access",
                "request",
                "flags-prod-operator",
                "--for",
                "30m",
                "--reason",
                "INC-7 checkout errors",
            ],
        )
        .await;
    assert_eq!(req["status"], "pending", "{req}");
    s.ok(bob, &["access", "approve", &text(&req, "id")]).await;
    let out = s
        .ok(
            dave,
            &["flags", "disable", "checkout-v2", "--env", "production"],
        )
        .await;
    assert!(
        out.starts_with("checkout-v2 is now OFF in production (revision "),
        "{out}"
    );
    let flag = s
        .json(
            dave,
            &["flags", "get", "checkout-v2", "--env", "production"],
        )
        .await;
    assert_eq!(flag["definition"]["state"], "DISABLED", "{flag}");
    // A stale base revision is refused with a way forward.
    let r = s
        .cli(
            dave,
            &[
                "flags",
                "enable",
                "checkout-v2",
                "--env",
                "production",
                "--base-revision",
                "1",
            ],
        )
        .await;
    assert!(!r.success);
    assert!(r.stderr.contains("sluice flags get"), "{}", r.stderr);
    let audit = s
        .json(admin, &["audit", "tail", "--action", "flag.changed"])
        .await;
    assert!(
        audit["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["actor"] == "dave" && e["resource"] == "flag:production/checkout-v2"),
        "audited: {audit}"
    );

    // Expiring targets in an unprotected environment (standing permission).
    let out = s
        .ok(
            dave,
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
                "internal testers",
                "--for",
                "2h",
            ],
        )
        .await;
    assert!(
        out.contains("serves `on` to internal testers (alice, bob)")
            && out.contains("(expires in "),
        "{out}"
    );
    let id = out
        .split_whitespace()
        .find(|w| w.starts_with("tgt-"))
        .map(|w| w.trim_end_matches(':'))
        .expect("a target id")
        .to_owned();
    let out = s
        .ok(
            dave,
            &["flags", "untarget", "new-search", "--env", "staging", &id],
        )
        .await;
    assert!(out.contains(&format!("removed target {id}")), "{out}");

    // A staged rollout.
    let started = s
        .json(
            dave,
            &[
                "rollout",
                "start",
                "new-search",
                "--env",
                "staging",
                "--variant",
                "on",
                "--steps",
                "1,10,50,100",
                "--every",
                "30m",
            ],
        )
        .await;
    assert_eq!(started["state"], "running", "{started}");
    assert_eq!(started["current_percent"], 1.0, "{started}");
    let rollout = |op: &'static str| {
        let s = &s;
        async move {
            s.ok(dave, &["rollout", op, "new-search", "--env", "staging"])
                .await
        }
    };
    let out = rollout("status").await;
    assert!(
        out.contains("step 1 of 4: 1% of users") && out.contains("next      10% at "),
        "{out}"
    );
    assert!(
        out.contains("(in 29m)") || out.contains("(in 30m)"),
        "{out}"
    );
    assert!(rollout("pause").await.contains(": paused"));
    let r = s
        .cli(
            dave,
            &["rollout", "pause", "new-search", "--env", "staging"],
        )
        .await;
    assert!(!r.success, "pausing twice is refused");
    assert!(rollout("resume").await.contains(": running"));
    assert!(rollout("rollback").await.contains(": rolled-back"));

    // A scheduled change: listed with its time left, then cancelled.
    let out = s
        .ok(
            dave,
            &[
                "flags",
                "enable",
                "checkout-v2",
                "--env",
                "production",
                "--at",
                "+1h",
            ],
        )
        .await;
    let sch = out
        .split_whitespace()
        .find(|w| w.starts_with("sch-"))
        .map(|w| w.trim_end_matches(':'))
        .expect("a schedule id")
        .to_owned();
    assert!(out.contains("turn checkout-v2 ON in production"), "{out}");
    let out = s
        .ok(dave, &["flags", "scheduled", "--env", "production"])
        .await;
    assert!(out.contains(&sch), "{out}");
    assert!(
        out.contains("applies in 59m") || out.contains("applies in 1h"),
        "{out}"
    );
    let out = s.ok(dave, &["flags", "cancel-scheduled", &sch]).await;
    assert!(out.contains(&format!("cancelled {sch}")), "{out}");
    let pending = s.json(dave, &["flags", "scheduled"]).await;
    assert_eq!(pending, serde_json::json!([]), "nothing pending");
    let all = s.json(dave, &["flags", "scheduled", "--all"]).await;
    assert_eq!(all[0]["status"], "cancelled", "{all}");
}

const FOUR_EYES_POLICY: &str = r#"
users: [alice, bob, dave]
groups:
  engineers: [alice, dave]
  leads: [bob]
environments:
  production:
    protected: true
    approval: { required: 1, approvers: [group:leads] }
  staging: {}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_eyes_proposals_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    let admin = Some(ADMIN_TOKEN);
    let flags = dir.path().join("flags.json");
    std::fs::write(&flags, FLAGS).expect("write flags");
    // Import before the policy protects production (an import there then needs a grant).
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
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, FOUR_EYES_POLICY).expect("write policy");
    s.ok(admin, &["apply", "-f", policy.to_str().expect("utf-8")])
        .await;
    let token = |who: &'static str| {
        let s = &s;
        async move {
            s.ok(
                admin,
                &["tokens", "create", "--name", "laptop", "--principal", who],
            )
            .await
            .trim()
            .to_owned()
        }
    };
    let (dave, bob) = (token("dave").await, token("bob").await);
    let (dave, bob) = (Some(dave.as_str()), Some(bob.as_str()));

    // No grant: dave proposes the kill switch instead.
    let out = s
        .ok(
            dave,
            &[
                "flags",
                "disable",
                "checkout-v2",
                "--env",
                "production",
                "--propose",
                "--reason",
                "INC-9 checkout errors",
            ],
        )
        .await;
    assert!(out.contains("turn checkout-v2 OFF in production"), "{out}");
    assert!(
        out.contains(
            "needs 1 approval(s) from group:leads; approve with: sluice proposals approve cr-"
        ),
        "{out}"
    );
    let id = out
        .split_whitespace()
        .find(|w| w.starts_with("cr-"))
        .map(|w| w.trim_end_matches(':'))
        .expect("a proposal id")
        .to_owned();
    let out = s
        .ok(dave, &["proposals", "list", "--env", "production"])
        .await;
    assert!(out.contains(&id) && out.contains("times out in "), "{out}");

    // Nobody approves their own.
    let r = s.cli(dave, &["proposals", "approve", &id]).await;
    assert!(!r.success, "self-approval refused: {}", r.stdout);
    assert!(
        r.stderr.contains("your own") && r.stderr.contains("group:leads"),
        "{}",
        r.stderr
    );
    let out = s.ok(bob, &["proposals", "approve", &id, "-c", "go"]).await;
    assert!(
        out.starts_with(&format!("{id} applied: turn checkout-v2 OFF in production")),
        "{out}"
    );
    let flag = s
        .json(
            dave,
            &["flags", "get", "checkout-v2", "--env", "production"],
        )
        .await;
    assert_eq!(flag["definition"]["state"], "DISABLED", "{flag}");
    let out = s
        .ok(dave, &["proposals", "list", "--status", "applied"])
        .await;
    assert!(out.contains(&id) && out.contains("applied"), "{out}");
    let out = s.ok(dave, &["proposals", "show", &id]).await;
    assert!(out.contains("approved    by bob"), "{out}");
}

/// A rollout with one-second steps completes by itself at 100%, and `rollout status` says so;
/// the flag's default is then the variant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_completes_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    let admin = Some(ADMIN_TOKEN);
    let flags = dir.path().join("flags.json");
    std::fs::write(&flags, FLAGS).expect("write flags");
    s.ok(
        admin,
        &[
            "flags",
            "import",
            flags.to_str().expect("utf-8"),
            "--env",
            "staging",
            "--create-env",
        ],
    )
    .await;
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).expect("write policy");
    s.ok(admin, &["apply", "-f", policy.to_str().expect("utf-8")])
        .await;
    let started = s
        .json(
            admin,
            &[
                "rollout",
                "start",
                "new-search",
                "--env",
                "staging",
                "--variant",
                "on",
                "--steps",
                "50,100",
                "--every",
                "1s",
            ],
        )
        .await;
    assert_eq!(started["state"], "running", "{started}");
    // The server completes it about a second from now; wait for it (at most five).
    let mut status = Value::Null;
    for _ in 0..50 {
        status = s
            .json(
                admin,
                &["rollout", "status", "new-search", "--env", "staging"],
            )
            .await;
        if status["state"] == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status["state"], "completed", "{status}");
    let out = s
        .ok(
            admin,
            &["rollout", "status", "new-search", "--env", "staging"],
        )
        .await;
    assert!(
        out.contains(": completed") && out.contains("`on` is the flag's default variant"),
        "{out}"
    );
    let flag = s
        .json(admin, &["flags", "get", "new-search", "--env", "staging"])
        .await;
    assert_eq!(flag["definition"]["defaultVariant"], "on", "{flag}");
}
