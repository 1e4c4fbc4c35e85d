//! Flag import over HTTP: strict (all or nothing, a precise error) and lenient (as flagd loads
//! files), the merged flagd testbed through import → export → import, and every one of its
//! flags over OFREP.

use crate::harness::{Backend, TestServer, ADMIN_TOKEN};
use crate::ofrep::{call, client_key, document};
use crate::{backend_tests, server};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sluice_eval::FlagSetDef;
use std::path::PathBuf;

/// The flags the testbed makes faulty on purpose: strict validation rejects each of them.
const FAULTY: [&str; 5] = [
    "equal-greater-lesser-version-flag",
    "error-targeting-flag",
    "missing-variant-targeting-flag",
    "ref-to-nonexistent-evaluator-flag",
    "starts-ends-flag",
];

/// `SLUICE_CONFORMANCE_DIR`, or `../shared/conformance/flagd-testbed` beside the repository;
/// `None` with a notice when absent, a failure under `CI=true`.
fn testbed() -> Option<PathBuf> {
    let dir = match std::env::var_os("SLUICE_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/conformance/flagd-testbed"),
    };
    if dir.join("flags").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "flagd testbed not found at {} (set SLUICE_CONFORMANCE_DIR)",
        dir.display()
    );
    eprintln!(
        "notice: flagd testbed not found at {}; testbed import not run",
        dir.display()
    );
    None
}

/// Every file of the testbed's `flags/` except `selector*`, merged into one document.
pub fn merged_testbed() -> Option<Value> {
    let dir = testbed()?.join("flags");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read testbed flags")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| {
            !p.file_name()
                .expect("name")
                .to_string_lossy()
                .starts_with("selector")
        })
        .collect();
    paths.sort();
    let mut merged = FlagSetDef::default();
    for p in &paths {
        let text = std::fs::read_to_string(p).expect("read");
        let def = FlagSetDef::from_value_lenient(serde_json::from_str(&text).expect("JSON"))
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        merged
            .merge(def)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
    Some(merged.to_value())
}

/// Imports as the administrator, creating the environment if it is new.
async fn put(s: &TestServer, env: &str, query: &str, doc: &Value) -> (StatusCode, Value) {
    let query = if query.is_empty() {
        "?create_env=true".to_owned()
    } else {
        format!("{query}&create_env=true")
    };
    s.send(
        reqwest::Method::PUT,
        ADMIN_TOKEN,
        &format!("/v1/environments/{env}/flags{query}"),
        Some(doc.clone()),
    )
    .await
}

fn broken_keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v["broken"]
        .as_array()
        .unwrap_or_else(|| panic!("a broken list: {v}"))
        .iter()
        .map(|b| b["key"].as_str().expect("key").to_owned())
        .collect();
    keys.sort();
    keys
}

async fn strict_import_is_all_or_nothing_with_a_precise_error(b: Backend) {
    let s = server!(b);
    let base = |targeting: Value| {
        json!({"flags": {
            "ok": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
            "bad": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on", "targeting": targeting}
        }})
    };
    let cases = [
        (
            base(json!({"if": [true, "nope", "off"]})),
            "$.flags.bad.targeting.if[1]",
        ),
        (
            base(json!({"no_such_op": [1]})),
            "$.flags.bad.targeting.no_such_op",
        ),
        (
            base(json!({"if": [{"$ref": "missing"}, "on", "off"]})),
            "$.flags.bad.targeting.if[0].$ref",
        ),
        (
            json!({"flags": {"bad": {"state": "ENABLED", "variants": {"a": true, "b": "x"}, "defaultVariant": "a"}}}),
            "$.flags.bad.variants",
        ),
    ];
    for (doc, path) in cases {
        let (st, v) = put(&s, "staging", "", &doc).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{doc}: {v}");
        assert_eq!(v["code"], "invalid_flags", "{v}");
        let msg = v["message"].as_str().expect("message");
        assert!(msg.starts_with(path), "{path} in {msg}");
    }
    // Nothing was stored or audited.
    let (st, v) = s.get(ADMIN_TOKEN, "/v1/environments/staging/flags").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert!(s.audit_actions("flags.imported").await.is_empty());

    // An unknown mode, or Sluice's own marker inside a document, is refused too.
    let (st, v) = put(&s, "staging", "?mode=sloppy", &document()).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_mode")),
        "{v}"
    );
    let mut marked = document();
    marked["x-sluice-lenient"] = json!(true);
    let (st, v) = put(&s, "staging", "?mode=lenient", &marked).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(s.audit_actions("flags.imported").await.is_empty());

    // A valid document goes in strict mode and says so.
    let (st, v) = put(&s, "staging", "?mode=strict", &document()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["mode"].as_str(), v["broken"].clone()),
        (Some("strict"), json!([]))
    ); // Once it exists: a client key of it may not import; neither may a non-administrator.
    let key = client_key(&s, "staging").await;
    let (st, _) = s
        .send(
            reqwest::Method::PUT,
            &key,
            "/v1/environments/staging/flags",
            Some(document()),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // bob holds no permission on staging flags (engineers' standing `*` would allow it).
    let bob = s.token("bob").await;
    let (st, _) = s
        .send(
            reqwest::Method::PUT,
            &bob,
            "/v1/environments/staging/flags?mode=lenient",
            Some(document()),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

async fn lenient_import_serves_the_rest_and_broken_flags_answer_parse_error(b: Backend) {
    let s = server!(b);
    let mut doc = document();
    doc["flags"]["broken-op"] = json!({"state": "ENABLED", "variants": {"on": true, "off": false},
        "defaultVariant": "off", "targeting": {"no_such_op": [1]}});
    let (st, v) = put(&s, "staging", "", &doc).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "strict by default: {v}");

    let (st, v) = put(&s, "staging", "?mode=lenient", &doc).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["mode"], "lenient");
    assert_eq!(v["flags"], 11);
    assert_eq!(
        v["broken"],
        json!([{"key": "broken-op", "path": "$.flags.broken-op.targeting.no_such_op",
            "reason": v["broken"][0]["reason"]}])
    );
    assert!(v["broken"][0]["reason"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));

    // The audit entry records the mode and the broken flags.
    let entries = s.audit_actions("flags.imported").await;
    assert_eq!(entries.len(), 1);
    let d = &entries[0]["details"];
    assert_eq!(d["mode"], "lenient", "{d}");
    assert_eq!(d["broken"][0]["key"], "broken-op", "{d}");
    // The digest is that of the document in canonical order, as exported.
    let canonical = FlagSetDef::from_value_lenient(doc.clone())
        .expect("doc")
        .to_value()
        .to_string();
    use sha2::Digest;
    assert_eq!(
        d["sha256"],
        hex::encode(sha2::Sha256::digest(canonical.as_bytes())),
        "{d}"
    );

    // The export is plain flagd: no marker, the document as given.
    let (st, exported) = s.get(ADMIN_TOKEN, "/v1/environments/staging/flags").await;
    assert_eq!(st, StatusCode::OK);
    assert!(exported.get("x-sluice-lenient").is_none(), "{exported}");
    assert_eq!(
        exported,
        FlagSetDef::from_value_lenient(doc.clone())
            .expect("doc")
            .to_value()
    );

    // Over OFREP the broken flag answers PARSE_ERROR; the others are served.
    let key = client_key(&s, "staging").await;
    let auth = Some(("x-api-key", key.as_str()));
    let r = call(&s, "/ofrep/v1/evaluate/flags/broken-op", auth, "{}", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(
        (r.json()["key"].clone(), r.json()["errorCode"].clone()),
        (json!("broken-op"), json!("PARSE_ERROR"))
    );
    let r = call(&s, "/ofrep/v1/evaluate/flags/bool-static", auth, "{}", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // The set stays lenient across a restart (compiled from the stored marker).
    let s = s.restart().await;
    let r = call(
        &s,
        "/ofrep/v1/evaluate/flags/broken-op",
        Some(("x-api-key", key.as_str())),
        "{}",
        &[],
    )
    .await;
    assert_eq!(r.json()["errorCode"], "PARSE_ERROR", "{}", r.text);
    let r = call(
        &s,
        "/ofrep/v1/evaluate/flags",
        Some(("x-api-key", key.as_str())),
        "{}",
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["flags"].as_array().map(Vec::len), Some(11));

    // A strict re-import clears the marker: the next lenient-only document is refused again.
    let (st, v) = put(&s, "staging", "", &document()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, exported) = s.get(ADMIN_TOKEN, "/v1/environments/staging/flags").await;
    assert_eq!(
        exported,
        FlagSetDef::from_value_lenient(document())
            .expect("doc")
            .to_value()
    );
}

async fn the_merged_testbed_round_trips_and_every_flag_evaluates(b: Backend) {
    let Some(merged) = merged_testbed() else {
        return;
    };
    let s = server!(b);
    let total = merged["flags"].as_object().map_or(0, |m| m.len());
    assert!(total >= 70, "{total} flags");

    // Strict import refuses it, naming one of the deliberately faulty flags.
    let (st, v) = put(&s, "testbed", "", &merged).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let msg = v["message"].as_str().expect("message");
    assert!(
        FAULTY
            .iter()
            .any(|k| msg.starts_with(&format!("$.flags.{k}"))),
        "{msg}"
    );

    // Lenient import accepts it and lists exactly those flags.
    let (st, v) = put(&s, "testbed", "?mode=lenient", &merged).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["flags"], json!(total));
    assert_eq!(broken_keys(&v), FAULTY);
    for b in v["broken"].as_array().expect("broken") {
        let key = b["key"].as_str().expect("key");
        let path = b["path"].as_str().expect("path");
        assert!(path.starts_with(&format!("$.flags.{key}.")), "{b}");
    }

    // import → export → import → export is lossless.
    let (st, first) = s.get(ADMIN_TOKEN, "/v1/environments/testbed/flags").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(first, merged, "the export is the imported document");
    let (st, again) = put(&s, "testbed-copy", "?mode=lenient", &first).await;
    assert_eq!(st, StatusCode::OK, "{again}");
    assert_eq!(broken_keys(&again), FAULTY);
    let (_, second) = s
        .get(ADMIN_TOKEN, "/v1/environments/testbed-copy/flags")
        .await;
    assert_eq!(second, first);
    assert_eq!(
        FlagSetDef::from_value_lenient(second.clone())
            .expect("parses")
            .to_value(),
        merged
    );

    // Every flag evaluates over OFREP, in bulk and one by one, and nothing is a 5xx.
    let key = client_key(&s, "testbed").await;
    let auth = Some(("x-api-key", key.as_str()));
    let contexts = [
        json!({}),
        json!({"context": {"targetingKey": "user-1", "email": "ballmer@macrosoft.com", "version": "1.2.3",
            "color": "yellow", "age": 30, "customer": true, "locale": "de", "time": 1_700_000_000}}),
    ];
    for ctx in &contexts {
        let r = call(&s, "/ofrep/v1/evaluate/flags", auth, &ctx.to_string(), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let v = r.json();
        let flags = v["flags"].as_array().expect("flags");
        assert_eq!(flags.len(), total);
        for f in flags {
            assert!(
                f.get("reason").is_some() || f.get("errorCode").is_some(),
                "an answer or an error: {f}"
            );
        }
        for k in ["error-targeting-flag", "ref-to-nonexistent-evaluator-flag"] {
            assert_eq!(bulk(&v, k)["errorCode"], "PARSE_ERROR", "{k}");
        }
        for name in merged["flags"].as_object().expect("flags").keys() {
            let r = call(
                &s,
                &format!("/ofrep/v1/evaluate/flags/{name}"),
                auth,
                &ctx.to_string(),
                &[],
            )
            .await;
            assert!(
                r.status == StatusCode::OK || r.status == StatusCode::BAD_REQUEST,
                "{name}: {} {}",
                r.status,
                r.text
            );
            assert_eq!(r.json()["key"], json!(name), "{}", r.text);
        }
    }
}

fn bulk<'a>(v: &'a Value, key: &str) -> &'a Value {
    v["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .find(|f| f["key"] == key)
        .unwrap_or_else(|| panic!("{key} missing"))
}

backend_tests!(
    strict_import_is_all_or_nothing_with_a_precise_error,
    lenient_import_serves_the_rest_and_broken_flags_answer_parse_error,
    the_merged_testbed_round_trips_and_every_flag_evaluates,
);
