//! JsonLogic and flagd operators, one expression at a time.

use serde_json::{json, Value};
use sluice_eval::{evaluate_expression, Context, FlagSetDef};

fn ev(rule: Value, ctx: Value) -> Value {
    let defs = FlagSetDef::from_value(
        json!({"flags": {}, "$evaluators": {"adult": {">=": [{"var": "age"}, 18]}}}),
    )
    .unwrap();
    let ctx = Context::from_value(ctx).unwrap();
    evaluate_expression(&defs, &rule, &ctx, "my-flag", 1_700_000_000).unwrap()
}

fn check(cases: &[(Value, Value)], ctx: Value) {
    for (rule, want) in cases {
        assert_eq!(ev(rule.clone(), ctx.clone()), *want, "rule {rule}");
    }
}

#[test]
fn var_missing_and_flagd_properties() {
    let ctx = json!({"a": {"b": [10, {"c": "x"}]}, "email": "ann@example.com", "targetingKey": "u1", "empty": ""});
    check(
        &[
            (json!({"var": "a.b.0"}), json!(10)),
            (json!({"var": "a.b.1.c"}), json!("x")),
            (json!({"var": ["nope", "dflt"]}), json!("dflt")),
            (json!({"var": "nope"}), Value::Null),
            (json!({"var": "targetingKey"}), json!("u1")),
            (json!({"var": "$flagd.flagKey"}), json!("my-flag")),
            (json!({"var": "$flagd.timestamp"}), json!(1_700_000_000)),
            (
                json!({"var": {"cat": ["ema", "il"]}}),
                json!("ann@example.com"),
            ),
            (
                json!({"missing": ["email", "nope", "empty"]}),
                json!(["nope", "empty"]),
            ),
            (json!({"missing_some": [1, ["email", "nope"]]}), json!([])),
            (
                json!({"missing_some": [2, ["email", "nope"]]}),
                json!(["nope"]),
            ),
            (json!({"$ref": "adult"}), json!(false)),
        ],
        ctx,
    );
}

/// Context lookups compare whole names: names that share their first eight bytes, differ only
/// past them or by a trailing NUL, and names with multibyte characters each read their own value.
#[test]
fn var_reads_exactly_the_named_attribute() {
    let ctx = json!({"a": 1, "a\u{0}": 2, "ab": 3, "customer": 4, "customerX": 5,
        "customer_id": 6, "customer_ie": 7, "é": 8, "ée": 9, "": 10});
    check(
        &[
            (json!({"var": "a"}), json!(1)),
            (json!({"var": "a\u{0}"}), json!(2)),
            (json!({"var": "ab"}), json!(3)),
            (json!({"var": "customer"}), json!(4)),
            (json!({"var": "customerX"}), json!(5)),
            (json!({"var": "customer_id"}), json!(6)),
            (json!({"var": "customer_ie"}), json!(7)),
            (json!({"var": "customer_if"}), Value::Null),
            (json!({"var": "custome"}), Value::Null),
            (json!({"var": "é"}), json!(8)),
            (json!({"var": "ée"}), json!(9)),
            (json!({"var": "b"}), Value::Null),
        ],
        ctx.clone(),
    );
    let ctx = Context::from_value(ctx).unwrap();
    assert_eq!(ctx.get("customer_ie"), Some(&json!(7)));
    assert_eq!(ctx.get("a\u{0}"), Some(&json!(2)));
    assert_eq!(ctx.get(""), Some(&json!(10)));
    assert_eq!(ctx.get("customer_i"), None);
}

#[test]
fn logic_and_comparison() {
    check(
        &[
            (json!({"if": [false, "a", true, "b", "c"]}), json!("b")),
            (json!({"if": [false, "a"]}), Value::Null),
            (json!({"?:": [1, "y", "n"]}), json!("y")),
            (json!({"==": [1, "1"]}), json!(true)),
            (json!({"===": [1, "1"]}), json!(false)),
            (json!({"===": [1, 1.0]}), json!(true)),
            (json!({"!=": [null, 0]}), json!(true)),
            (json!({"!==": ["a", "a"]}), json!(false)),
            (json!({"!": [[]]}), json!(true)),
            (json!({"!!": ["0"]}), json!(true)),
            (json!({"or": [0, "", "x"]}), json!("x")),
            (json!({"and": [1, 0, 2]}), json!(0)),
            (json!({"<": [1, 2, 3]}), json!(true)),
            (json!({"<": [1, 3, 3]}), json!(false)),
            (json!({"<=": [1, 3, 3]}), json!(true)),
            (json!({">": ["b", "a"]}), json!(true)),
            (json!({">=": [2, "2"]}), json!(true)),
        ],
        json!({}),
    );
}

#[test]
fn arithmetic_strings_and_arrays() {
    check(
        &[
            (json!({"+": [1, "2", 3.5]}), json!(6.5)),
            (json!({"+": [1, 2]}), json!(3)),
            (json!({"-": [5]}), json!(-5)),
            (json!({"*": [2, 3]}), json!(6)),
            (json!({"/": [1, 4]}), json!(0.25)),
            (json!({"/": [1, 0]}), Value::Null),
            (json!({"%": [7, 3]}), json!(1)),
            (json!({"max": [1, 9, 3]}), json!(9)),
            (json!({"min": []}), Value::Null),
            (json!({"in": ["ell", "hello"]}), json!(true)),
            (json!({"in": [2, [1, 2]]}), json!(true)),
            (
                json!({"cat": ["a", 1, null, true, 1.5]}),
                json!("a1true1.5"),
            ),
            (json!({"substr": ["jsonlogic", 4]}), json!("logic")),
            (json!({"substr": ["jsonlogic", -5, 2]}), json!("lo")),
            (json!({"substr": ["jsonlogic", 1, -3]}), json!("sonlo")),
            (json!({"merge": [[1], 2, [[3]]]}), json!([1, 2, [3]])),
            (
                json!({"map": [[1, 2], {"*": [{"var": ""}, 2]}]}),
                json!([2, 4]),
            ),
            (
                json!({"filter": [[1, 2, 3], {">": [{"var": ""}, 1]}]}),
                json!([2, 3]),
            ),
            (
                json!({"reduce": [[1, 2, 3], {"+": [{"var": "current"}, {"var": "accumulator"}]}, 10]}),
                json!(16),
            ),
            (json!({"all": [[], true]}), json!(false)),
            (
                json!({"all": [[1, 2], {">": [{"var": ""}, 0]}]}),
                json!(true),
            ),
            (
                json!({"none": [[1, 2], {">": [{"var": ""}, 5]}]}),
                json!(true),
            ),
            (
                json!({"some": [[1, 2], {">": [{"var": ""}, 1]}]}),
                json!(true),
            ),
        ],
        json!({}),
    );
}

#[test]
fn flagd_custom_operators() {
    check(
        &[
            (json!({"starts_with": ["abcdef", "abc"]}), json!(true)),
            (json!({"ends_with": ["abcdef", "abc"]}), json!(false)),
            (json!({"ends_with": [1, "1"]}), Value::Null),
            (json!({"sem_ver": ["1.2.3", ">=", "1.2.0"]}), json!(true)),
            (
                json!({"sem_ver": ["1.2.3-rc.1", "<", "1.2.3"]}),
                json!(true),
            ),
            (
                json!({"sem_ver": ["1.2.3-rc.2", ">", "1.2.3-rc.10"]}),
                json!(false),
            ),
            (
                json!({"sem_ver": ["1.2.3-alpha", "<", "1.2.3-alpha.1"]}),
                json!(true),
            ),
            (json!({"sem_ver": ["1.2.3", "!=", "1.2.3+b"]}), json!(false)),
            (json!({"sem_ver": ["2.5.0", "^", "2.0.0"]}), json!(true)),
            (json!({"sem_ver": ["2.5.0", "~", "2.4.0"]}), json!(false)),
            (json!({"sem_ver": ["01.2.3", "=", "1.2.3"]}), Value::Null),
            (json!({"sem_ver": ["1.2-rc", "=", "1.2.0"]}), Value::Null),
            (
                json!({"sem_ver": [{"var": "v"}, "<=", {"cat": ["1.", "3"]}]}),
                json!(true),
            ),
            (json!({"fractional": ["fixed-key", ["a", 1]]}), json!("a")),
            (
                json!({"fractional": ["fixed-key", ["a", 0], ["b", 0]]}),
                Value::Null,
            ),
        ],
        json!({"v": 1.2}),
    );
}

/// A snapshot knows whether any rule may read `$flagd.timestamp` (its answers then change
/// with time alone, which caches must respect) — through a `$ref` or a computed path too.
#[test]
fn snapshots_know_whether_a_rule_reads_the_time() {
    let reads = |targeting: Value| {
        let doc = json!({
            "flags": {"f": {"state": "ENABLED", "variants": {"on": true, "off": false},
                "defaultVariant": "off", "targeting": targeting}},
            "$evaluators": {"late": {">": [{"var": "$flagd.timestamp"}, 5]}}
        });
        let def = FlagSetDef::from_value(doc).unwrap();
        sluice_eval::Snapshot::compile(&def, 1)
            .unwrap()
            .reads_time()
    };
    let on_if = |cond: Value| json!({"if": [cond, "on", "off"]});
    assert!(reads(on_if(json!({">": [{"var": "$flagd.timestamp"}, 5]}))));
    assert!(reads(on_if(json!({"==": [{"var": "$flagd"}, {}]}))));
    assert!(reads(on_if(json!({"$ref": "late"}))));
    assert!(reads(on_if(
        json!({"==": [{"var": {"cat": ["$flagd.", "timestamp"]}}, 1]})
    )));
    assert!(!reads(on_if(
        json!({"==": [{"var": "$flagd.flagKey"}, "f"]})
    )));
    assert!(!reads(on_if(
        json!({"ends_with": [{"var": "email"}, "@x.org"]})
    )));
}

/// `fractional` buckets by the flag's own hash version: a flag marked
/// `fractionalVersion: 1` keeps flagd's legacy float bucketing, the others (no key, or 2) the
/// integer one; two flags with the same split and the same users can answer differently, and
/// re-importing a flag without its mark re-buckets it (the documented, deliberate migration).
#[test]
fn fractional_buckets_by_the_flags_hash_version() {
    use sluice_eval::{HashVersion, Snapshot};
    let split = json!({"fractional": [{"var": "id"}, ["a", 50], ["b", 50]]});
    let flag = |meta: Value| {
        json!({"state": "ENABLED", "variants": {"a": "A", "b": "B"}, "defaultVariant": "a",
            "targeting": split.clone(), "metadata": meta})
    };
    let def = FlagSetDef::from_value(json!({"flags": {
        "v1": flag(json!({"fractionalVersion": 1})),
        "v2": flag(json!({"fractionalVersion": 2})),
        "unmarked": flag(json!({}))
    }}))
    .unwrap();
    let snap = Snapshot::compile(&def, 1).unwrap();
    assert_eq!(snap.hash_version("v1"), Some(HashVersion::V1));
    assert_eq!(snap.hash_version("v2"), Some(HashVersion::V2));
    assert_eq!(snap.hash_version("unmarked"), Some(HashVersion::V2));
    let (mut differ, mut same_as_unmarked) = (0, 0);
    for i in 0..200 {
        let ctx = Context::from_value(json!({"id": format!("user-{i}")})).unwrap();
        let pick = |k: &str| snap.evaluate(k, &ctx, 0).variant.map(str::to_owned);
        differ += usize::from(pick("v1") != pick("v2"));
        same_as_unmarked += usize::from(pick("v2") == pick("unmarked"));
    }
    assert!(
        differ > 20,
        "v1 and v2 bucket alike: {differ} of 200 differ"
    );
    assert_eq!(same_as_unmarked, 200);
    // A value that names no version is refused, at its path; lenient loading isolates it.
    let bad = json!({"flags": {"f": flag(json!({"fractionalVersion": 3}))}});
    let err = Snapshot::compile(&FlagSetDef::from_value(bad.clone()).unwrap(), 1).unwrap_err();
    assert_eq!(err.path, "$.flags.f.metadata.fractionalVersion", "{err:?}");
    let lenient = Snapshot::compile_lenient(&FlagSetDef::from_value_lenient(bad).unwrap(), 1);
    assert_eq!(lenient.broken_flags().count(), 1);
}
