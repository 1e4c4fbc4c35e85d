use super::*;
use serde_json::json;

fn lenient(doc: Value) -> FlagSetDef {
    FlagSetDef::from_value_lenient(doc).unwrap()
}

#[test]
fn faults_name_their_flag_without_reading_paths() {
    let bools = json!({"on": true, "off": false});
    let def = lenient(json!({"flags": {
        "odd key.x": {"state": "ENABLED", "variants": bools, "defaultVariant": "off",
            "targeting": {"if": [true, "maybe", "off"]}},
        "fine": {"state": "ENABLED", "variants": bools, "defaultVariant": "on"},
        "mixed": {"state": "ENABLED", "variants": {"on": true, "off": "nope"}, "defaultVariant": "on"},
    }}));
    let faults = strict_faults(&def);
    let keys: Vec<_> = faults.iter().map(|f| f.key.as_deref()).collect();
    assert_eq!(keys, [Some("odd key.x"), Some("mixed")]);
    assert!(
        faults[0].path.starts_with("$.flags[\"odd key.x\"]"),
        "{}",
        faults[0].path
    );
    assert!(
        faults[1].path.starts_with("$.flags.mixed.variants"),
        "{}",
        faults[1].path
    );
    assert!(
        strict_faults(&lenient(json!({"flags": {"fine": {"state": "ENABLED",
        "variants": bools, "defaultVariant": "on"}}})))
        .is_empty()
    );
}

#[test]
fn a_set_level_fault_is_the_only_one() {
    let def = lenient(json!({
        "$evaluators": {"bad": {"no-such-op": [1]}},
        "flags": {"a": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on",
            "targeting": {"if": [{"no-such-op": [1]}, "on", null]}}}
    }));
    let faults = strict_faults(&def);
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].key, None);
}

#[test]
fn stored_sets_compile_as_they_were_imported() {
    let broken = json!({"flags": {
        "b": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
            "targeting": {"if": [{"no-such-op": [1]}, "on", "off"]}},
    }});
    let def = lenient(broken.clone());
    let mut set_doc = def.set_parts();
    assert_eq!(def.flags().len(), 1);
    assert_eq!(set_doc.get("flags"), None);
    mark_lenient(&mut set_doc);
    let mut stored = broken.clone();
    stored[LENIENT_MARKER] = json!(true);
    let c = compile_stored(stored, 3);
    assert!(c.lenient && c.fallback.is_none());
    assert_eq!(c.snapshot.broken_flags().count(), 1);
    // A strict set that no longer compiles is served leniently, and says why.
    let c = compile_stored(broken.clone(), 4);
    assert!(!c.lenient && c.fallback.is_some());
    assert_eq!(c.snapshot.revision(), 4);
    assert_eq!(c.snapshot.broken_flags().count(), 1);
    // One that no longer parses at all is served empty, and says why.
    let c = compile_stored(json!({"flags": {"x": {"state": "MAYBE"}}}), 5);
    assert!(!c.lenient && c.fallback.is_some());
    assert_eq!(c.snapshot.flag_keys().count(), 0);
    let (doc, was) = strip_marker(json!({LENIENT_MARKER: true, "flags": {}}));
    assert!(was);
    assert_eq!(doc, json!({"flags": {}}));
}
