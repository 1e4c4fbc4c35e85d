//! Flag insight over real HTTP: evaluation counts per flag, variant and reason, counted on the
//! OFREP path, stored in batches and read back after a restart; the client keys that
//! evaluated; the label cap of `/metrics`; stale flags under an injected clock.

use crate::harness::{Backend, TestServer, ADMIN_TOKEN};
use crate::ofrep::{call, client_key, document, import};
use crate::{backend_tests, server};
use chrono::TimeDelta;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn eval(s: &TestServer, key: &str, flag: &str, context: Value) -> StatusCode {
    let bearer = format!("Bearer {key}");
    call(
        s,
        &format!("/ofrep/v1/evaluate/flags/{flag}"),
        Some(("authorization", &bearer)),
        &json!({ "context": context }).to_string(),
        &[],
    )
    .await
    .status
}

/// A bulk evaluation; returns the status and the ETag.
async fn bulk(s: &TestServer, key: &str, etag: Option<&str>) -> (StatusCode, String) {
    let bearer = format!("Bearer {key}");
    let extra: Vec<(&str, &str)> = etag.map(|t| ("if-none-match", t)).into_iter().collect();
    let r = call(
        s,
        "/ofrep/v1/evaluate/flags",
        Some(("authorization", &bearer)),
        r#"{"context": {}}"#,
        &extra,
    )
    .await;
    let tag = r
        .headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (r.status, tag)
}

async fn metrics(s: &TestServer) -> String {
    s.http
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

fn flag<'a>(v: &'a Value, key: &str) -> &'a Value {
    v["flags"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["key"] == key))
        .unwrap_or_else(|| panic!("no flag {key} in {v}"))
}

fn answer(f: &Value, variant: Value, reason: &str) -> i64 {
    f["answers"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|x| x["variant"] == variant && x["reason"] == reason)
        })
        .and_then(|x| x["count"].as_i64())
        .unwrap_or(0)
}

/// Counts by flag, variant and reason; single, bulk, cached bulk and 304 answers counted;
/// unknown keys not listed; stored at shutdown and read back by the next server; the client
/// key's last evaluation; `?days=` narrows the range.
async fn evaluation_counts_survive_a_restart(b: Backend) {
    let s = server!(b);
    import(&s, "staging", document()).await;
    let key = client_key(&s, "staging").await;
    let (_, tokens) = s.get(ADMIN_TOKEN, "/v1/tokens").await;
    let token_id = tokens
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["kind"] == "client"))
        .and_then(|t| t["id"].as_str())
        .expect("the client key's id")
        .to_owned();
    for _ in 0..3 {
        assert_eq!(
            eval(&s, &key, "bool-static", json!({})).await,
            StatusCode::OK
        );
    }
    for _ in 0..2 {
        let ctx = json!({"email": "ann@example.com"});
        assert_eq!(eval(&s, &key, "targeted", ctx).await, StatusCode::OK);
    }
    assert_eq!(eval(&s, &key, "disabled", json!({})).await, StatusCode::OK);
    assert_eq!(
        eval(&s, &key, "no-such-flag", json!({})).await,
        StatusCode::NOT_FOUND
    );
    // Bulk: evaluated, then served from the answer cache, then 304: three times each flag.
    let (st, tag) = bulk(&s, &key, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(bulk(&s, &key, None).await.0, StatusCode::OK);
    assert_eq!(bulk(&s, &key, Some(&tag)).await.0, StatusCode::NOT_MODIFIED);
    let text = metrics(&s).await;
    assert!(
        text.contains(
            r#"sluice_flag_evaluations_total{environment="staging",flag="bool-static",variant="on",reason="STATIC"} 6"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"sluice_flag_evaluations_unknown_total{environment="staging"} 1"#),
        "{text}"
    );
    let at = s.clock_now();
    // Stopped: the counts still in memory are stored; the next server reads them back.
    let s = s.restart().await;
    let (st, v) = s
        .get(ADMIN_TOKEN, "/v1/environments/staging/evaluations")
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let f = flag(&v, "bool-static");
    assert_eq!(f["evaluations"], 6, "{v}");
    assert_eq!(answer(f, json!("on"), "STATIC"), 6, "{v}");
    assert_eq!(
        f["last_evaluated_at"].as_str(),
        Some(
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                .as_str()
        ),
        "{v}"
    );
    let f = flag(&v, "targeted");
    assert_eq!(answer(f, json!("on"), "TARGETING_MATCH"), 2, "{v}");
    assert_eq!(answer(f, json!("off"), "DEFAULT"), 3, "{v}");
    assert_eq!(
        answer(flag(&v, "disabled"), Value::Null, "DISABLED"),
        4,
        "{v}"
    );
    assert_eq!(flag(&v, "split")["evaluations"], 3, "{v}");
    assert!(
        !v.to_string().contains("no-such-flag"),
        "unknown keys are not listed: {v}"
    );
    // The client key: 7 single evaluations (the unknown flag too) and 3 × 10 in bulk.
    let clients = v["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 1, "{v}");
    assert_eq!(clients[0]["token_id"], token_id.as_str(), "{v}");
    assert_eq!(clients[0]["evaluations"], 37, "{v}");
    // More counted after the restart add up; counts are per UTC day.
    assert_eq!(
        eval(&s, &key, "bool-static", json!({})).await,
        StatusCode::OK
    );
    s.advance(TimeDelta::days(3));
    assert_eq!(
        eval(&s, &key, "split", json!({"targetingKey": "u1"})).await,
        StatusCode::OK
    );
    let (_, all) = s
        .get(ADMIN_TOKEN, "/v1/environments/staging/evaluations")
        .await;
    assert_eq!(flag(&all, "bool-static")["evaluations"], 7, "{all}");
    assert_eq!(flag(&all, "split")["evaluations"], 4, "{all}");
    let (st, recent) = s
        .get(ADMIN_TOKEN, "/v1/environments/staging/evaluations?days=1")
        .await;
    assert_eq!(st, StatusCode::OK, "{recent}");
    assert_eq!(flag(&recent, "bool-static")["evaluations"], 0, "{recent}");
    assert_eq!(
        flag(&recent, "bool-static")["last_evaluated_at"],
        Value::Null
    );
    assert_eq!(flag(&recent, "split")["evaluations"], 1, "{recent}");
    // Neither an administrator nor an auditor: the flags, not the client keys.
    let dave = s.token("dave").await;
    let (st, v) = s.get(&dave, "/v1/environments/staging/evaluations").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["clients"], json!([]), "{v}");
    // Bad input: a range out of bounds, an environment that does not exist.
    let (st, v) = s
        .get(ADMIN_TOKEN, "/v1/environments/staging/evaluations?days=0")
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["code"], "invalid_query", "{v}");
    let (st, v) = s
        .get(ADMIN_TOKEN, "/v1/environments/nowhere/evaluations")
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
}

/// `/metrics` exports at most the cap of label sets (the rest in the overflow counter), and
/// unknown flag keys create no series at all.
async fn metrics_label_sets_are_capped(b: Backend) {
    let s = server!(b);
    import(&s, "staging", document()).await;
    let key = client_key(&s, "staging").await;
    s.app.insight.set_series_cap(2);
    // The first two label sets are taken (in the order they are drained), the rest overflow.
    for f in ["bool-static", "string-flag"] {
        assert_eq!(eval(&s, &key, f, json!({})).await, StatusCode::OK);
    }
    metrics(&s).await;
    for f in ["int-flag", "float-zero"] {
        assert_eq!(eval(&s, &key, f, json!({})).await, StatusCode::OK);
    }
    for i in 0..50 {
        let st = eval(&s, &key, &format!("made-up-{i}"), json!({})).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
    }
    let text = metrics(&s).await;
    let series = text
        .lines()
        .filter(|l| l.starts_with("sluice_flag_evaluations_total{"))
        .count();
    assert_eq!(series, 2, "{text}");
    assert!(
        text.contains("sluice_flag_evaluations_overflow_total 2"),
        "{text}"
    );
    assert!(
        text.contains(r#"sluice_flag_evaluations_unknown_total{environment="staging"} 50"#),
        "{text}"
    );
    assert!(!text.contains("made-up"), "{text}");
    // A label set already exported keeps counting past the cap.
    assert_eq!(
        eval(&s, &key, "bool-static", json!({})).await,
        StatusCode::OK
    );
    let text = metrics(&s).await;
    let counted: u64 = text
        .lines()
        .filter(|l| l.starts_with("sluice_flag_evaluations_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(counted, 3, "{text}");
}

fn findings(v: &Value) -> Vec<(String, String)> {
    v["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .map(|f| {
            (
                f["key"].as_str().unwrap_or_default().to_owned(),
                f["kind"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Stale flags with an injected clock: ten days of evaluations, then the flags never
/// evaluated, no longer evaluated, serving one variant to everyone, and past their expected
/// removal date — each with a suggestion; the same after a restart; a longer window than
/// counting has run does not call a flag one-variant.
async fn stale_flags_are_listed_with_a_suggestion(b: Backend) {
    let s = server!(b);
    let two = json!({"on": true, "off": false});
    let doc = json!({"flags": {
        "always-on": {"state": "ENABLED", "variants": two, "defaultVariant": "on"},
        "split": {"state": "ENABLED", "variants": two, "defaultVariant": "off",
            "targeting": {"fractional": [["on", 50], ["off", 50]]}},
        "unused": {"state": "ENABLED", "variants": two, "defaultVariant": "on"},
        "retired": {"state": "ENABLED", "variants": two, "defaultVariant": "on"},
        "promo": {"state": "ENABLED", "variants": two, "defaultVariant": "on",
            "metadata": {"expectedRemoval": "2026-11-28"}}
    }});
    import(&s, "staging", doc).await;
    let key = client_key(&s, "staging").await;
    assert_eq!(eval(&s, &key, "retired", json!({})).await, StatusCode::OK);
    for day in 0..10 {
        if day > 0 {
            s.advance(TimeDelta::days(1));
        }
        assert_eq!(eval(&s, &key, "always-on", json!({})).await, StatusCode::OK);
        for u in 0..8 {
            let ctx = json!({"targetingKey": format!("user-{u}")});
            assert_eq!(eval(&s, &key, "split", ctx).await, StatusCode::OK);
        }
    }
    let want = vec![
        ("always-on".to_owned(), "one-variant".to_owned()),
        ("promo".to_owned(), "not-evaluated".to_owned()),
        ("promo".to_owned(), "past-removal-date".to_owned()),
        ("retired".to_owned(), "not-evaluated".to_owned()),
        ("unused".to_owned(), "not-evaluated".to_owned()),
    ];
    let (st, v) = s
        .get(ADMIN_TOKEN, "/v1/environments/staging/stale?days=7")
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(findings(&v), want, "{v}");
    let row = |v: &Value, key: &str, kind: &str| {
        v["flags"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["key"] == key && f["kind"] == kind))
            .cloned()
            .unwrap_or_else(|| panic!("no {key} {kind} in {v}"))
    };
    let on = row(&v, "always-on", "one-variant");
    assert_eq!(on["variant"], "on", "{on}");
    assert!(
        on["suggestion"]
            .as_str()
            .unwrap_or_default()
            .contains("delete the flag"),
        "{on}"
    );
    let promo = row(&v, "promo", "past-removal-date");
    assert_eq!(promo["due"], "2026-11-29T00:00:00Z", "{promo}");
    let retired = row(&v, "retired", "not-evaluated");
    assert_eq!(
        retired["last_evaluated_at"], "2026-11-27T09:00:00Z",
        "{retired}"
    );
    // Stored: the next server lists the same.
    let s = s.restart().await;
    let (_, again) = s
        .get(ADMIN_TOKEN, "/v1/environments/staging/stale?days=7")
        .await;
    assert_eq!(findings(&again), want, "{again}");
    // Looking back 30 days: counting began 10 days ago, so nothing is known to have served
    // one variant for 30 days, and no flag was written longer ago than that.
    let (_, long) = s
        .get(ADMIN_TOKEN, "/v1/environments/staging/stale?days=30")
        .await;
    assert_eq!(
        findings(&long),
        vec![("promo".to_owned(), "past-removal-date".to_owned())],
        "{long}"
    );
    // Bad input changes nothing and says why.
    let (st, v) = s
        .get(ADMIN_TOKEN, "/v1/environments/staging/stale?days=99999")
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["code"], "invalid_query", "{v}");
}

backend_tests!(
    evaluation_counts_survive_a_restart,
    metrics_label_sets_are_capped,
    stale_flags_are_listed_with_a_suggestion,
);
