//! Properties of `fractional` bucketing and of evaluation on arbitrary input.

use proptest::prelude::*;
use serde_json::{json, Value};
use sluice_eval::bucketing::{bucket_index, murmur3_32};
use sluice_eval::{Context, FlagSetDef, Reason, Snapshot};

fn split_flag(weights: &[u64]) -> Snapshot {
    let buckets: Vec<Value> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| json!([format!("v{i}"), w]))
        .collect();
    let variants: serde_json::Map<String, Value> = (0..weights.len())
        .map(|i| (format!("v{i}"), json!(i)))
        .collect();
    let doc = json!({"flags": {"split": {"state": "ENABLED", "variants": variants, "defaultVariant": "v0",
        "targeting": {"fractional": buckets}}}});
    Snapshot::compile(&FlagSetDef::from_value(doc).unwrap(), 1).unwrap()
}

fn variant_of(s: &Snapshot, key: &str) -> Option<String> {
    let ctx = Context::from_value(json!({"targetingKey": key})).unwrap();
    let e = s.evaluate("split", &ctx, 0);
    e.variant.map(str::to_owned)
}

/// Keys spread over a run: a simple xorshift keeps 100k keys cheap to make.
fn keys(seed: u64, n: usize) -> impl Iterator<Item = String> {
    let mut x = seed | 1;
    (0..n).map(move |i| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        format!("user-{i}-{x:x}")
    })
}

#[test]
fn murmur3_reference_vectors() {
    assert_eq!(murmur3_32(b""), 0);
    assert_eq!(murmur3_32(b"hello"), 0x248b_fa47);
    assert_eq!(
        murmur3_32(b"The quick brown fox jumps over the lazy dog"),
        0x2e4f_f723
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn bucketing_is_deterministic(key in ".{0,40}", weights in prop::collection::vec(0u64..1000, 1..6)) {
        prop_assume!(weights.iter().sum::<u64>() > 0);
        let (a, b) = (split_flag(&weights), split_flag(&weights));
        let first = variant_of(&a, &key);
        prop_assert!(first.is_some());
        prop_assert_eq!(&first, &variant_of(&a, &key));
        prop_assert_eq!(&first, &variant_of(&b, &key));
        let e = a.evaluate("split", &Context::from_value(json!({"targetingKey": key})).unwrap(), 0);
        prop_assert_eq!(e.reason, Reason::Split);
    }

    /// A `cat` bucket key is hashed piece by piece: it must bucket as the joined string.
    #[test]
    fn a_cat_bucket_key_buckets_as_the_joined_string(a in arb_json(), b in arb_json(), c in arb_json()) {
        let ctx = Context::from_value(json!({"a": a, "b": b, "c": c})).unwrap();
        let cat = json!({"cat": [{"var": "a"}, "-", {"var": "b"}, {"var": "c"}]});
        let joined =
            sluice_eval::evaluate_expression(&FlagSetDef::default(), &cat, &ctx, "f", 0).unwrap();
        let flag = |key: Value| {
            let doc = json!({"flags": {"f": {"state": "ENABLED",
                "variants": {"v0": 0, "v1": 1, "v2": 2}, "defaultVariant": "v0",
                "targeting": {"fractional": [key, ["v0", 30], ["v1", 30], ["v2", 40]]}}}});
            Snapshot::compile(&FlagSetDef::from_value(doc).unwrap(), 1).unwrap()
        };
        let by_cat = flag(cat);
        let by_string = flag(json!({"var": "joined"}));
        let with_joined = Context::from_value(json!({"joined": joined})).unwrap();
        let (x, y) = (by_cat.evaluate("f", &ctx, 0), by_string.evaluate("f", &with_joined, 0));
        prop_assert_eq!(x.variant, y.variant);
    }

    #[test]
    fn growing_the_first_bucket_keeps_its_members(
        key in "[a-z0-9@.]{1,30}",
        weights in prop::collection::vec(1u64..500, 2..5),
        growth in 1u64..500,
    ) {
        let before = split_flag(&weights);
        let mut grown = weights.clone();
        grown[0] += growth;
        let after = split_flag(&grown);
        if variant_of(&before, &key).as_deref() == Some("v0") {
            let now = variant_of(&after, &key);
            prop_assert_eq!(now.as_deref(), Some("v0"));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn shares_match_weights_within_one_percent(seed in any::<u64>(), weights in prop::collection::vec(1u64..100, 2..5)) {
        const N: usize = 100_000;
        let total: u64 = weights.iter().sum();
        let mut counts = vec![0usize; weights.len()];
        for k in keys(seed, N) {
            let i = bucket_index(murmur3_32(format!("split{k}").as_bytes()), &weights).unwrap();
            counts[i] += 1;
        }
        for (c, w) in counts.iter().zip(&weights) {
            let share = *c as f64 / N as f64;
            let want = *w as f64 / total as f64;
            prop_assert!((share - want).abs() <= 0.01, "share {share} vs weight {want}");
        }
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "(v?[0-9]{1,2}(\\.[0-9]{1,2}){0,3}(-rc\\.?[0-9])?)|.{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                "targetingKey|email|version|user|name|id|num|tier|color|[a-z]{1,6}",
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn rich_snapshot() -> Snapshot {
    let doc = json!({
        "flags": {
            "ops": {"state": "ENABLED", "variants": {"a": "a", "b": "b", "true": "t", "false": "f", "1": "one"}, "defaultVariant": "a",
                "targeting": {"if": [
                    {"and": [{"in": [{"var": "email"}, ["x", "y"]]}, {"<": [{"var": "num"}, {"+": [1, {"var": "user.age"}]}, 100]}]}, "b",
                    {"some": [{"merge": [{"var": "tags"}, {"var": ""}]}, {"==": [{"var": ""}, "z"]}]}, "a",
                    {"sem_ver": [{"var": "version"}, "^", "1.0.0"]}, true,
                    {"substr": [{"cat": [{"var": "name"}, {"var": "id"}]}, {"var": "num"}, -1]}
                ]}},
            "split": {"state": "ENABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": "a",
                "targeting": {"fractional": [{"var": "user.name"}, [{"var": "color"}, {"var": "num"}], ["b", 1]]}},
            "strings": {"state": "ENABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": "a",
                "targeting": {"if": [{"starts_with": [{"var": "id"}, "a"]}, "a", {"ends_with": [{"var": "email"}, "@b.c"]}, "b", {"var": "tier"}]}},
            "maps": {"state": "ENABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": "a",
                "targeting": {"reduce": [{"map": [{"var": "user"}, {"*": [{"var": ""}, 2]}]}, {"max": [{"var": "current"}, {"var": "accumulator"}]}, {"missing": ["a", "b"]}]}}
        }
    });
    Snapshot::compile(&FlagSetDef::from_value(doc).unwrap(), 1).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn evaluation_never_panics(ctx in arb_json(), now in any::<i64>()) {
        let snapshot = rich_snapshot();
        if let Ok(ctx) = Context::from_value(ctx) {
            for e in snapshot.evaluate_all(&ctx, now) {
                prop_assert!(e.value.is_some() || e.error.is_some() || e.reason == Reason::Default);
            }
        }
    }
}
