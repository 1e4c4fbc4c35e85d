//! Every kind of definition error names its JSON path.

use serde_json::{json, Value};
use sluice_eval::{FlagSetDef, Snapshot};

fn flag(targeting: Value) -> Value {
    json!({"flags": {"my-flag": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off", "targeting": targeting}}})
}

fn expect_err(doc: Value, path: &str, reason: &str) {
    let err = FlagSetDef::from_value(doc.clone()).expect_err(&format!("accepted {doc}"));
    assert_eq!(err.path, path, "{err}");
    assert!(
        err.reason.contains(reason),
        "reason {:?} lacks {reason:?}",
        err.reason
    );
}

#[test]
fn document_shape() {
    expect_err(json!([]), "$", "JSON object");
    expect_err(json!({}), "$.flags", "required");
    expect_err(json!({"flags": []}), "$.flags", "object");
    expect_err(
        json!({"flags": {"f": {"state": "ON", "variants": {"a": 1}}}}),
        "$.flags.f.state",
        "ENABLED",
    );
    expect_err(
        json!({"flags": {"f": {"variants": {"a": 1}}}}),
        "$.flags.f.state",
        "required",
    );
    expect_err(
        json!({"flags": {"f": {"state": "ENABLED"}}}),
        "$.flags.f.variants",
        "required",
    );
    expect_err(
        json!({"flags": {"f": {"state": "ENABLED", "variants": {}}}}),
        "$.flags.f.variants",
        "at least one",
    );
    expect_err(
        json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1, "b": "x"}}}}),
        "$.flags.f.variants.b",
        "mixed variant types",
    );
    expect_err(
        json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": null}}}}),
        "$.flags.f.variants.a",
        "null",
    );
    expect_err(
        json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "b"}}}),
        "$.flags.f.defaultVariant",
        "unknown variant",
    );
    expect_err(
        json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "targeting": "a"}}}),
        "$.flags.f.targeting",
        "object",
    );
    expect_err(
        json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "metadata": {"x": [1]}}}}),
        "$.flags.f.metadata.x",
        "metadata",
    );
    expect_err(
        json!({"flags": {"odd key": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": 3}}}),
        "$.flags[\"odd key\"].defaultVariant",
        "variant name",
    );
    let err = FlagSetDef::from_json("{\"flags\": ").unwrap_err();
    assert_eq!(err.path, "$");
    assert!(err.reason.contains("invalid JSON"));
}

#[test]
fn targeting_rules() {
    expect_err(
        flag(json!({"if": [true, "maybe", "off"]})),
        "$.flags.my-flag.targeting.if[1]",
        "unknown variant \"maybe\"",
    );
    expect_err(
        flag(json!({"if": [{"nope": [1]}, "on"]})),
        "$.flags.my-flag.targeting.if[0].nope",
        "unknown operator \"nope\"",
    );
    expect_err(
        flag(json!({"if": [{"$ref": "missing"}, "on"]})),
        "$.flags.my-flag.targeting.if[0].$ref",
        "unknown evaluator",
    );
    expect_err(
        flag(json!({"if": [{"$ref": "x", "==": [1, 1]}, "on"]})),
        "$.flags.my-flag.targeting.if[0]",
        "only key",
    );
    expect_err(
        flag(json!({"==": [1, 1], "!=": [1, 2]})),
        "$.flags.my-flag.targeting",
        "exactly one operator",
    );
    expect_err(
        flag(json!({"fractional": [["on", 50], "off"]})),
        "$.flags.my-flag.targeting.fractional[1]",
        "bucket",
    );
    expect_err(
        flag(json!({"fractional": [["on", 50.5], ["off", 50]]})),
        "$.flags.my-flag.targeting.fractional[0][1]",
        "whole number",
    );
    expect_err(
        flag(json!({"fractional": [{"var": "x"}, ["mystery", 1]]})),
        "$.flags.my-flag.targeting.fractional[1][0]",
        "unknown variant",
    );
    let mut deep = json!(true);
    for _ in 0..40 {
        deep = json!({"!": [deep]});
    }
    let err = FlagSetDef::from_value(flag(json!({"if": [deep, "on"]}))).unwrap_err();
    assert!(
        err.path
            .starts_with("$.flags.my-flag.targeting.if[0][\"!\"][0][\"!\"][0]"),
        "{err}"
    );
    assert!(err.reason.contains("deeper than 64"), "{err}");
}

#[test]
fn shared_evaluators() {
    let mut doc = flag(json!({"if": [{"$ref": "a"}, "on"]}));
    doc["$evaluators"] = json!({"a": {"$ref": "b"}, "b": {"!": {"$ref": "a"}}});
    let err = FlagSetDef::from_value(doc).unwrap_err();
    assert!(err.reason.contains("cyclic"), "{err}");
    assert!(err.path.starts_with("$.$evaluators."), "{err}");
    let mut doc = flag(json!({"==": [1, 1]}));
    doc["$evaluators"] = json!({"unused": {"bogus": []}});
    expect_err(doc, "$.$evaluators.unused.bogus", "unknown operator");
}

#[test]
fn merge_conflicts_and_all_or_nothing() {
    let mut a = FlagSetDef::from_value(flag(json!({"==": [1, 1]}))).unwrap();
    let b = a.clone();
    let before = a.clone();
    let err = a.merge(b).unwrap_err();
    assert_eq!(err.path, "$.flags.my-flag");
    assert_eq!(a, before, "a failed merge changes nothing");
    let lenient = FlagSetDef::from_value_lenient(flag(json!({"if": [true, "maybe"]}))).unwrap();
    assert!(
        Snapshot::compile(&lenient, 1).is_err(),
        "strict compile rejects what lenient loading kept"
    );
    let snap = Snapshot::compile_lenient(&lenient, 1);
    assert_eq!(
        snap.broken_flags().count(),
        0,
        "an unknown literal variant is a run-time error when lenient"
    );
    let e = snap.evaluate("my-flag", &sluice_eval::Context::empty(), 0);
    assert_eq!(
        e.error.map(|(c, _)| c),
        Some(sluice_eval::ErrorCode::ParseError)
    );
}
