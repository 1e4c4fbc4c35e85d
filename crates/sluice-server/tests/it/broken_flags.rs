//! Every kind of broken flag answers OFREP as flagd's own OFREP service does. flagd loads a
//! file whose rules are broken (JSON-schema violations are only logged) and fails the flag at
//! evaluation; Sluice's default (strict) import refuses such a document up front, naming the
//! fault, and `?mode=lenient` loads it as flagd does. Each case below says which flagd code
//! path it mirrors (open-feature/flagd: `core/pkg/evaluator/json.go` `evaluateVariant` and
//! `resolve`, `core/pkg/service/ofrep/models.go` `EvaluationErrorResponseFrom`, and the
//! flagd-testbed gherkin `evaluator-refs.feature`).
//!
//! flagd's single-flag OFREP answer for an evaluation error is HTTP 400 with
//! `{key, errorCode, errorDetails}` (404 only for `FLAG_NOT_FOUND`); its reason is `ERROR`.

use crate::harness::{Backend, TestServer, ADMIN_TOKEN};
use crate::{backend_tests, server};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn document() -> Value {
    let bool_variants = json!({"on": true, "off": false});
    json!({"flags": {
        // json.go: a targeting result that is not a variant name -> ERROR, PARSE_ERROR
        // ("invalid or missing variant ... variant is not valid").
        "literal-unknown-variant": {"state": "ENABLED", "variants": bool_variants, "defaultVariant": "off",
            "targeting": {"if": [true, "maybe", "off"]}},
        "dynamic-unknown-variant": {"state": "ENABLED", "variants": bool_variants, "defaultVariant": "off",
            "targeting": {"var": "pick"}},
        // json.go: an array result is rendered and looked up as a name: not a variant -> PARSE_ERROR.
        "array-result": {"state": "ENABLED", "variants": bool_variants, "defaultVariant": "off",
            "targeting": {"if": [true, {"merge": [["on"], ["off"]]}, "off"]}},
        // flagd-testbed evaluator-refs.feature "Ref to nonexistent evaluator yields parse error":
        // the `$ref` stays in the rule, jsonlogic refuses it -> PARSE_ERROR.
        "missing-ref": {"state": "ENABLED", "variants": bool_variants, "defaultVariant": "off",
            "targeting": {"if": [{"$ref": "no-such-evaluator"}, "on", "off"]}},
        // json.go: jsonlogic.Apply fails on an operator it does not know -> PARSE_ERROR
        // ("error applying rules").
        "unknown-operator": {"state": "ENABLED", "variants": bool_variants, "defaultVariant": "off",
            "targeting": {"if": [{"no-such-op": [1]}, "on", "off"]}},
        // A boolean flag (its default variant is a boolean) with a string variant: flagd loads
        // it (schema warning only). See `mixed_types` for what each endpoint answers.
        "mixed-types": {"state": "ENABLED", "variants": {"on": true, "off": "nope"}, "defaultVariant": "on",
            "targeting": {"if": [{"==": [{"var": "pick"}, "off"]}, "off", "on"]}},
        "healthy": {"state": "ENABLED", "variants": bool_variants, "defaultVariant": "on"}
    }})
}

async fn setup(s: &TestServer) -> String {
    // Strict import refuses the document, naming a fault; nothing is stored.
    let r = s
        .http
        .put(s.url("/v1/environments/staging/flags?create_env=true"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&document())
        .send()
        .await
        .expect("import");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Lenient import loads it as flagd loads a file.
    let r = s
        .http
        .put(s.url("/v1/environments/staging/flags?mode=lenient&create_env=true"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&document())
        .send()
        .await
        .expect("import");
    let st = r.status();
    let v: Value = r.json().await.expect("json");
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"name": "web", "kind": "client", "environment": "staging"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["token"].as_str().expect("token").to_owned()
}

async fn one(s: &TestServer, key: &str, flag: &str, context: Value) -> (StatusCode, Value) {
    let r = s
        .http
        .post(s.url(&format!("/ofrep/v1/evaluate/flags/{flag}")))
        .header("x-api-key", key)
        .json(&json!({"context": context}))
        .send()
        .await
        .expect("sent");
    (r.status(), r.json().await.expect("json"))
}

async fn every_broken_rule_answers_ofrep_as_flagd_does(b: Backend) {
    let s = server!(b);
    let key = setup(&s).await;
    let ctx = json!({"targetingKey": "u-1", "pick": "zzz"});
    for flag in [
        "literal-unknown-variant",
        "dynamic-unknown-variant",
        "array-result",
        "missing-ref",
        "unknown-operator",
    ] {
        let (st, v) = one(&s, &key, flag, ctx.clone()).await;
        assert_eq!(
            st,
            StatusCode::BAD_REQUEST,
            "{flag}: flagd answers 400: {v}"
        );
        assert_eq!(v["key"], flag, "{v}");
        assert_eq!(v["errorCode"], "PARSE_ERROR", "{flag}: {v}");
        assert!(
            v["errorDetails"].as_str().is_some_and(|d| !d.is_empty()),
            "{v}"
        );
        assert!(
            v.get("value").is_none() && v.get("variant").is_none(),
            "{flag}: {v}"
        );
    }
    // In a bulk answer each broken flag fails alone with the same code; the rest answer.
    let r = s
        .http
        .post(s.url("/ofrep/v1/evaluate/flags"))
        .header("x-api-key", &key)
        .json(&json!({"context": ctx}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    let entry = |k: &str| {
        v["flags"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["key"] == k))
            .cloned()
            .expect("flag")
    };
    for flag in [
        "literal-unknown-variant",
        "dynamic-unknown-variant",
        "array-result",
        "missing-ref",
        "unknown-operator",
    ] {
        assert_eq!(entry(flag)["errorCode"], "PARSE_ERROR", "{flag}: {v}");
    }
    assert_eq!(entry("healthy")["value"], true, "{v}");
}

/// A flag whose variants have different types. flagd's single-flag OFREP handler resolves it
/// with `ResolveAsAnyValue` (`resolve[interface{}]`: no type to mismatch), so the string variant
/// is simply answered. Its bulk handler resolves each flag as the type of its default variant
/// (`ResolveAllValues`: `resolve[bool]` here), so a string variant is `TYPE_MISMATCH`, which
/// `EvaluationErrorResponseFrom` writes as `GENERAL`.
async fn mixed_types(b: Backend) {
    let s = server!(b);
    let key = setup(&s).await;
    let (st, v) = one(&s, &key, "mixed-types", json!({"pick": "off"})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["value"], &v["variant"], &v["reason"]),
        (&json!("nope"), &json!("off"), &json!("TARGETING_MATCH")),
        "{v}"
    );
    let (st, v) = one(&s, &key, "mixed-types", json!({"pick": "on"})).await;
    assert_eq!((st, &v["value"]), (StatusCode::OK, &json!(true)), "{v}");

    let bulk = |pick: &str| {
        s.http
            .post(s.url("/ofrep/v1/evaluate/flags"))
            .header("x-api-key", &key)
            .json(&json!({"context": {"pick": pick}}))
            .send()
    };
    let v: Value = bulk("off").await.expect("sent").json().await.expect("json");
    let e = v["flags"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["key"] == "mixed-types"))
        .expect("flag");
    assert_eq!(e["errorCode"], "GENERAL", "{v}");
    assert!(e.get("value").is_none(), "{e}");
    let v: Value = bulk("on").await.expect("sent").json().await.expect("json");
    let e = v["flags"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["key"] == "mixed-types"))
        .expect("flag");
    assert_eq!(
        e["value"], true,
        "the default variant's own type passes: {v}"
    );
}

backend_tests!(every_broken_rule_answers_ofrep_as_flagd_does, mixed_types);
