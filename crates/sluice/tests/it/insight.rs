//! Flag insight through the real CLI and a real `sluice serve` (SQLite, the real clock):
//! `flags evaluations` after OFREP evaluations, `flags stale` naming a flag past its
//! expected removal date, and `--no-evaluation-counts`.

use crate::harness::{Serve, ADMIN_TOKEN};

const FLAGS: &str = r#"{
  "flags": {
    "checkout-v2": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
    "promo-2020": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
      "metadata": {"expectedRemoval": "2020-01-31"}}
  }
}"#;

async fn evaluate(s: &Serve, http: &reqwest::Client, key: &str, flag: &str) {
    let resp = http
        .post(s.url(&format!("/ofrep/v1/evaluate/flags/{flag}")))
        .bearer_auth(key)
        .json(&serde_json::json!({"context": {}}))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluations_and_stale_flags_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start(dir.path()).await;
    let admin = Some(ADMIN_TOKEN);
    let flags = dir.path().join("flags.json");
    std::fs::write(&flags, FLAGS).expect("write flags");
    let path = flags.to_str().expect("utf-8");
    s.ok(
        admin,
        &["flags", "import", path, "--env", "staging", "--create-env"],
    )
    .await;
    let http = reqwest::Client::new();
    let key = s.client_key(&http, "staging").await;
    for _ in 0..3 {
        evaluate(&s, &http, &key, "checkout-v2").await;
    }
    let v = s
        .json(admin, &["flags", "evaluations", "--env", "staging"])
        .await;
    let checkout = v["flags"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["key"] == "checkout-v2"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(checkout["evaluations"], 3, "{v}");
    assert_eq!(v["clients"][0]["evaluations"], 3, "{v}");
    let table = s
        .ok(admin, &["flags", "evaluations", "--env", "staging"])
        .await;
    assert!(
        table.contains("checkout-v2") && table.contains("STATIC") && table.contains("never"),
        "{table}"
    );
    let stale = s
        .ok(
            admin,
            &["flags", "stale", "--env", "staging", "--days", "7"],
        )
        .await;
    assert!(
        stale.contains("promo-2020")
            && stale.contains("past-removal-date")
            && stale.contains("was to be removed by 2020-01-31"),
        "{stale}"
    );
    assert!(!stale.contains("checkout-v2"), "{stale}");
    let r = s
        .cli(
            admin,
            &["flags", "stale", "--env", "staging", "--days", "0"],
        )
        .await;
    assert!(!r.success, "{}", r.stdout);
    assert!(r.stderr.contains("invalid_query"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_evaluation_counts_counts_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start_with(dir.path(), &["--no-evaluation-counts"]).await;
    let admin = Some(ADMIN_TOKEN);
    let flags = dir.path().join("flags.json");
    std::fs::write(&flags, FLAGS).expect("write flags");
    let path = flags.to_str().expect("utf-8");
    s.ok(
        admin,
        &["flags", "import", path, "--env", "staging", "--create-env"],
    )
    .await;
    let http = reqwest::Client::new();
    let key = s.client_key(&http, "staging").await;
    evaluate(&s, &http, &key, "checkout-v2").await;
    let v = s
        .json(admin, &["flags", "evaluations", "--env", "staging"])
        .await;
    assert!(
        v["flags"]
            .as_array()
            .is_some_and(|fs| fs.iter().all(|f| f["evaluations"] == 0)),
        "{v}"
    );
}
