//! Every flag file of the flagd testbed loads, compiles and round-trips.

use serde_json::Value;
use sluice_eval::{Context, ErrorCode, FlagSetDef, Snapshot};

use crate::testbed;

pub(crate) fn files() -> Option<Vec<(String, Value)>> {
    let dir = testbed::dir()?.join("flags");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("selector")
        })
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                serde_json::from_str(&text).unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Some(out)
}

/// Flags the testbed makes faulty on purpose (flagd answers them with an error,
/// or never reaches the fault), each with the path strict validation reports.
const FAULTY_ON_PURPOSE: [(&str, &str); 5] = [
    (
        "equal-greater-lesser-version-flag",
        "$.flags.equal-greater-lesser-version-flag.targeting.if[2].if[2].if[2].if[1]",
    ),
    (
        "starts-ends-flag",
        "$.flags.starts-ends-flag.targeting.if[2].if[2].if[1]",
    ),
    (
        "ref-to-nonexistent-evaluator-flag",
        "$.flags.ref-to-nonexistent-evaluator-flag.targeting.if[0].$ref",
    ),
    (
        "error-targeting-flag",
        "$.flags.error-targeting-flag.targeting.invalid",
    ),
    (
        "missing-variant-targeting-flag",
        "$.flags.missing-variant-targeting-flag.targeting.if[1]",
    ),
];

#[test]
fn testbed_flag_files_parse_compile_and_round_trip() {
    let Some(files) = files() else { return };
    assert!(files.len() >= 5);
    let mut merged = FlagSetDef::default();
    for (name, doc) in &files {
        let def =
            FlagSetDef::from_value_lenient(doc.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        merged.merge(def).unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    // Strict validation rejects exactly the deliberately faulty flags, one at a time.
    let mut strict = merged.clone();
    let mut rejected = Vec::new();
    while let Err(e) = strict.validate() {
        let key = e
            .path
            .strip_prefix("$.flags.")
            .and_then(|p| p.split(['.', '[']).next())
            .unwrap()
            .to_owned();
        assert!(strict.remove_flag(&key).is_some(), "{e}");
        rejected.push((key, e.path));
    }
    let want: Vec<(String, String)> = FAULTY_ON_PURPOSE
        .iter()
        .map(|(k, p)| ((*k).to_owned(), (*p).to_owned()))
        .collect();
    rejected.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(rejected, want_sorted);
    let snapshot = Snapshot::compile(&strict, 1).unwrap();
    assert_eq!(
        snapshot.flag_keys().count(),
        merged.flag_keys().count() - FAULTY_ON_PURPOSE.len()
    );

    // Loaded as flagd loads files, everything compiles; faults surface per flag.
    let all = Snapshot::compile_lenient(&merged, 2);
    let broken: Vec<_> = all.broken_flags().map(|(k, _)| k.to_owned()).collect();
    assert_eq!(
        broken,
        ["error-targeting-flag", "ref-to-nonexistent-evaluator-flag"]
    );
    let ctx = Context::empty();
    let results = all.evaluate_all(&ctx, testbed::NOW);
    assert_eq!(results.len(), merged.flag_keys().count());
    assert!(results.len() >= 60, "only {} flags", results.len());
    let e = all.evaluate("missing-variant-targeting-flag", &ctx, testbed::NOW);
    assert_eq!(e.error.map(|(c, _)| c), Some(ErrorCode::ParseError));

    let once = merged.to_value();
    let again = FlagSetDef::from_value_lenient(once.clone())
        .unwrap()
        .to_value();
    assert_eq!(once, again);
    assert_eq!(
        serde_json::to_string(&once).unwrap(),
        serde_json::to_string(&again).unwrap()
    );
    let pretty = FlagSetDef::from_json(&strict.to_json_pretty()).unwrap();
    assert_eq!(pretty, strict);

    // Serialising writes exactly the value's bytes (an import's digest is taken so), and the
    // set-level parts are the value without its flags, in the same order.
    assert_eq!(serde_json::to_string(&merged).unwrap(), once.to_string());
    let mut parts = once.clone();
    parts.as_object_mut().unwrap().shift_remove("flags");
    assert!(!merged.evaluators().is_empty());
    assert_eq!(merged.set_parts().to_string(), parts.to_string());
}
