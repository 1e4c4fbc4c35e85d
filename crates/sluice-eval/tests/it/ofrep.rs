//! OFREP wire forms of evaluations.

use serde_json::json;
use sluice_eval::ofrep::{http_status, to_bulk_response, to_response, EvaluationRequest};
use sluice_eval::{Context, ErrorCode, FlagSetDef, Snapshot};

fn snapshot() -> Snapshot {
    let def = FlagSetDef::from_value(json!({
        "flags": {
            "float-zero": {"state": "ENABLED", "variants": {"zero": 0.0, "one": 1.0}, "defaultVariant": "zero", "metadata": {"team": "search"}},
            "int-zero": {"state": "ENABLED", "variants": {"zero": 0, "one": 1}, "defaultVariant": "zero"},
            "off": {"state": "DISABLED", "variants": {"on": true}, "defaultVariant": "on"}
        },
        "metadata": {"team": "core", "env": "prod"}
    }))
    .unwrap();
    Snapshot::compile(&def, 7).unwrap()
}

#[test]
fn success_keeps_number_kinds_and_merges_metadata() {
    let s = snapshot();
    let ctx = Context::empty();
    let body = serde_json::to_string(&to_response(&s.evaluate("float-zero", &ctx, 0))).unwrap();
    assert_eq!(
        body,
        r#"{"key":"float-zero","value":0.0,"reason":"STATIC","variant":"zero","metadata":{"team":"search","env":"prod"}}"#
    );
    let body = serde_json::to_value(to_response(&s.evaluate("int-zero", &ctx, 0))).unwrap();
    assert_eq!(serde_json::to_string(&body["value"]).unwrap(), "0");
}

#[test]
fn disabled_omits_value_and_variant() {
    let s = snapshot();
    let ctx = Context::empty();
    let body = serde_json::to_value(to_response(&s.evaluate("off", &ctx, 0))).unwrap();
    assert_eq!(
        body,
        json!({"key": "off", "reason": "DISABLED", "metadata": {"team": "core", "env": "prod"}})
    );
}

#[test]
fn failures_and_status_codes() {
    let s = snapshot();
    let ctx = Context::empty();
    let body = serde_json::to_value(to_response(&s.evaluate("nope", &ctx, 0))).unwrap();
    assert_eq!(
        body,
        json!({"key": "nope", "errorCode": "FLAG_NOT_FOUND", "errorDetails": "flag not found"})
    );
    assert_eq!(http_status(ErrorCode::FlagNotFound), 404);
    for code in [
        ErrorCode::ParseError,
        ErrorCode::TargetingKeyMissing,
        ErrorCode::InvalidContext,
        ErrorCode::General,
    ] {
        assert_eq!(http_status(code), 400);
    }
    let err = Context::from_value(json!([1])).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidContext);
    assert_eq!(
        Context::from_value(json!({"targetingKey": 3}))
            .unwrap_err()
            .code,
        ErrorCode::InvalidContext
    );
}

#[test]
fn bulk_and_request() {
    let s = snapshot();
    let ctx = Context::empty();
    let bulk = to_bulk_response(&s.evaluate_all(&ctx, 0), &serde_json::Map::new());
    let v = serde_json::to_value(&bulk).unwrap();
    assert_eq!(v["flags"].as_array().unwrap().len(), 3);
    assert_eq!(v["flags"][2]["reason"], "DISABLED");
    let req: EvaluationRequest =
        serde_json::from_str(r#"{"context": {"targetingKey": "u"}}"#).unwrap();
    assert_eq!(req.context, Some(json!({"targetingKey": "u"})));
    assert_eq!(s.revision(), 7);
    assert_eq!(
        s.flag_keys().collect::<Vec<_>>(),
        ["float-zero", "int-zero", "off"]
    );
    assert_eq!(s.metadata()["env"], "prod");
}

#[test]
fn borrowed_wire_forms_match_the_owned_ones() {
    use sluice_eval::ofrep::{BulkWire, Wire};
    let s = snapshot();
    let ctx = Context::empty();
    for key in ["float-zero", "int-zero", "off", "missing"] {
        let e = s.evaluate(key, &ctx, 0);
        assert_eq!(
            serde_json::to_string(&Wire(&e)).unwrap(),
            serde_json::to_string(&to_response(&e)).unwrap(),
            "{key}"
        );
    }
    let evals = s.evaluate_all(&ctx, 0);
    let owned = serde_json::to_value(to_bulk_response(&evals, s.metadata())).unwrap();
    let extra = [("eventStreams", json!([{"type": "sse"}]))];
    let wire = BulkWire {
        evaluations: &evals,
        metadata: s.metadata(),
        extra: &extra,
    };
    let text = serde_json::to_string(&wire).unwrap();
    let mut want = owned.clone();
    want["eventStreams"] = json!([{"type": "sse"}]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        want
    );
    assert!(text.contains(r#""value":0.0"#), "{text}");
    let none = BulkWire {
        evaluations: &evals,
        metadata: s.metadata(),
        extra: &[],
    };
    assert_eq!(
        serde_json::to_string(&none).unwrap(),
        serde_json::to_string(&owned).unwrap()
    );
}
