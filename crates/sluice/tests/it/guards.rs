//! Guarded rollouts through the real CLI and a real `sluice serve --prometheus-url`: guards
//! given with `--guard`, `--min-sample` and `--on-breach` are stored as written, and while the
//! Prometheus cannot be reached the rollout holds its first step and `rollout status` says
//! why. (The guards against a real Prometheus — advance, pause, roll back, outage and return
//! — are in the server's suite, `crates/sluice-server/tests/it/guards.rs`.)

use crate::harness::{free_port, Serve, ADMIN_TOKEN};
use std::time::{Duration, Instant};

const FLAGS: &str = r#"{"flags": {"new-search": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}}}"#;
const ERRORS: &str =
    r#"sum(rate(http_requests_total{status=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_rollout_holds_while_its_prometheus_cannot_be_reached() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Nothing listens there: every reading fails.
    let prometheus = format!("http://127.0.0.1:{}", free_port());
    let s = Serve::start_with(
        dir.path(),
        &["--prometheus-url", &prometheus, "--guard-interval", "200ms"],
    )
    .await;
    let admin = Some(ADMIN_TOKEN);
    let flags = dir.path().join("flags.json");
    std::fs::write(&flags, FLAGS).expect("write flags");
    let f = flags.to_str().expect("utf-8");
    s.ok(
        admin,
        &["flags", "import", f, "--env", "staging", "--create-env"],
    )
    .await;
    let guard = format!("{ERRORS} < 0.01");
    let start = |on_breach: Vec<&'static str>| {
        let mut args = vec![
            "rollout",
            "start",
            "new-search",
            "--env",
            "staging",
            "--variant",
            "on",
            "--step",
            "10:1s",
            "--step",
            "100",
            "--guard",
            &guard,
            "--min-sample",
            "sum(increase(http_requests_total[1m])) >= 100",
            // None for the second guard.
            "--min-sample",
            "-",
            "--guard",
            "up < 2",
        ];
        args.extend(on_breach);
        args.into_iter().map(str::to_owned).collect::<Vec<String>>()
    };
    // Three --on-breach for two guards: refused before anything is sent.
    let args = start(vec![
        "--on-breach",
        "rollback",
        "--on-breach",
        "pause",
        "--on-breach",
        "pause",
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = s.cli(admin, &args).await;
    assert!(
        !r.success && r.stderr.contains("once per guard (2)"),
        "{}",
        r.stderr
    );
    let args = start(vec!["--on-breach", "rollback", "--on-breach", "pause"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = s.json(admin, &args).await;
    assert_eq!(v["guards"][0]["query"], ERRORS, "{v}");
    assert_eq!(v["guards"][0]["comparison"], "<");
    assert_eq!(v["guards"][0]["threshold"], 0.01);
    assert_eq!(v["guards"][0]["on_breach"], "rollback");
    assert_eq!(
        v["guards"][0]["min_sample"],
        "sum(increase(http_requests_total[1m])) >= 100"
    );
    assert_eq!(v["guards"][1]["query"], "up");
    assert_eq!(v["guards"][1]["on_breach"], "pause");
    assert!(v["guards"][1]["min_sample"].is_null());

    // Past the first step's second: held there, and the status says why.
    let deadline = Instant::now() + Duration::from_secs(15);
    let out = loop {
        let out = s
            .ok(
                admin,
                &["rollout", "status", "new-search", "--env", "staging"],
            )
            .await;
        if out.contains("held ") {
            break out;
        }
        assert!(Instant::now() < deadline, "never held: {out}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(out.contains(": running"), "{out}");
    assert!(out.contains("step 1 of 2: 10% of users"), "{out}");
    assert!(
        out.contains(&format!("guard 1   {ERRORS} < 0.01 on breach: rollback")),
        "{out}"
    );
    assert!(
        out.contains("unknown: value -, threshold 0.01, read "),
        "{out}"
    );
    assert!(
        out.contains("cannot be evaluated: sample query: Prometheus unreachable"),
        "{out}"
    );
    assert!(
        out.contains("held      guard 1 cannot be evaluated"),
        "{out}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let v = s
        .json(
            admin,
            &["rollout", "status", "new-search", "--env", "staging"],
        )
        .await;
    assert_eq!(v["current_step"], 0, "never advances blind: {v}");
    assert_eq!(v["state"], "running");

    // The console's rollout view says the same: each guard, its state and why it holds.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let signed = http
        .post(s.url("/ui/sign-in"))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .expect("sign in");
    let cookie = signed
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let page = http
        .get(s.url("/ui/flags?env=staging"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("flags page")
        .text()
        .await
        .expect("html");
    assert!(page.contains(r#"<table class="guards">"#), "{page}");
    assert!(
        page.contains(r#"<tr data-guard-state="unknown">"#),
        "{page}"
    );
    assert!(page.contains("<code>up &#60; 2</code>"), "{page}");
    assert!(page.contains("Prometheus unreachable"), "{page}");
    assert!(
        page.contains("<strong>Held:</strong> guard 1 cannot be evaluated"),
        "{page}"
    );
}
