//! OFREP request bodies, read as the server reads them (`routes::ofrep::context_of`), with
//! and without an environment's static context, then evaluated against a small flag set.
//! Besides "no panic": a context that is accepted has a string `targetingKey` (or none) and
//! holds every static value (static wins); its digest (which keys ETags and the answer cache)
//! ignores key order; and the zero-copy wire form of every answer, single and bulk, is the
//! same JSON as the plain one.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use sluice_eval::ofrep::{to_bulk_response, to_response, BulkWire, Wire};
use sluice_eval::{Context, FlagSetDef, Snapshot};
use sluice_server::routes::ofrep::{context_digest, context_of};
use std::sync::OnceLock;

fn snapshot() -> &'static Snapshot {
    static S: OnceLock<Snapshot> = OnceLock::new();
    S.get_or_init(|| {
        let def = FlagSetDef::from_json(sluice_fuzz::FLAGS).expect("the fixture flags parse");
        Snapshot::compile(&def, 1).expect("the fixture flags compile")
    })
}

fn check(ctx: &Context, fixed: Option<&Map<String, Value>>) {
    if let Some(v) = ctx.as_value().get("targetingKey") {
        assert!(v.is_string() || v.is_null(), "targetingKey {v:?}");
    }
    for (k, v) in fixed.into_iter().flatten() {
        assert_eq!(ctx.get(k), Some(v), "static value {k} lost");
    }
    // The same context with its keys in reverse order has the same digest.
    let mut entries: Vec<(String, Value)> = ctx
        .entries()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect();
    entries.reverse();
    let reversed: Map<String, Value> = entries.into_iter().collect();
    let again = Context::from_map(reversed).expect("an accepted context is accepted again");
    assert_eq!(
        context_digest(&again),
        context_digest(ctx),
        "digest depends on key order"
    );

    let now = sluice_fuzz::now().timestamp();
    let all = snapshot().evaluate_all(ctx, now);
    for e in &all {
        let wire = serde_json::to_value(Wire(e)).expect("wire form");
        let plain = serde_json::to_value(to_response(e)).expect("plain form");
        assert_eq!(wire, plain, "single answer for {}", e.key);
    }
    let metadata = Map::new();
    let bulk = BulkWire {
        evaluations: &all,
        metadata: &metadata,
        extra: &[],
    };
    assert_eq!(
        serde_json::to_value(bulk).expect("bulk wire form"),
        serde_json::to_value(to_bulk_response(&all, &metadata)).expect("bulk plain form"),
    );
    let _ = snapshot().evaluate("missing", ctx, now);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(ctx) = context_of(data, None) {
        check(&ctx, None);
    }
    let fixed = json!({"region": "eu", "targetingKey": "static-key"});
    let fixed = fixed.as_object();
    if let Ok(ctx) = context_of(data, fixed) {
        check(&ctx, fixed);
    }
});
