//! Runs every scenario of the flagd testbed's evaluator gherkin suite against
//! the engine loaded with `evaluator/flags/testkit-flags.json`.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};
use sluice_eval::{Context, FlagSetDef, FlagType, Snapshot};

use crate::gherkin::{self, quoted, Scenario};
use crate::testbed;

/// Scenarios for bucketing algorithms Sluice does not implement (none in the testbed today;
/// a new version's tag lands here until it is implemented).
const SKIPPED_TAGS: [&str; 1] = ["@fractional-v3"];

/// Scenarios of flagd's legacy bucketing: run against the same flags marked
/// `fractionalVersion: 1`.
const V1_TAG: &str = "@fractional-v1";

/// The testbed's flags, each marked with `fractionalVersion: version` in its metadata.
fn marked(flags: &Value, version: u8) -> Value {
    let mut doc = flags.clone();
    if let Some(all) = doc["flags"].as_object_mut() {
        for flag in all.values_mut() {
            let Some(f) = flag.as_object_mut() else {
                continue;
            };
            let meta = f.entry("metadata").or_insert_with(|| json!({}));
            if let Some(m) = meta.as_object_mut() {
                m.insert("fractionalVersion".into(), json!(version));
            }
        }
    }
    doc
}

struct Run {
    flag_type: FlagType,
    key: String,
    fallback: Value,
    context: Map<String, Value>,
    /// (value, reason, error code, metadata)
    result: Option<(Value, String, String, Map<String, Value>)>,
}

fn parse_typed(ty: FlagType, text: &str) -> Result<Value, String> {
    Ok(match ty {
        FlagType::Boolean => Value::Bool(text.parse::<bool>().map_err(|e| e.to_string())?),
        FlagType::String => Value::String(text.to_owned()),
        FlagType::Integer => json!(text.parse::<i64>().map_err(|e| e.to_string())?),
        FlagType::Float => json!(text.parse::<f64>().map_err(|e| e.to_string())?),
        FlagType::Object => serde_json::from_str(text).map_err(|e| e.to_string())?,
    })
}

fn flag_type(word: &str) -> Result<FlagType, String> {
    Ok(match word {
        "Boolean" => FlagType::Boolean,
        "String" => FlagType::String,
        "Integer" => FlagType::Integer,
        "Float" => FlagType::Float,
        "Object" => FlagType::Object,
        other => return Err(format!("unknown flag type {other}")),
    })
}

fn same_value(ty: FlagType, got: &Value, want: &Value) -> bool {
    match ty {
        FlagType::Float => got.as_f64() == want.as_f64(),
        _ => got == want,
    }
}

fn step(
    snapshot: &Snapshot,
    run: &mut Option<Run>,
    text: &str,
    table: &[Vec<String>],
) -> Result<(), String> {
    let q = quoted(text);
    let arg = |i: usize| {
        q.get(i)
            .cloned()
            .ok_or_else(|| format!("step lacks argument {i}: {text}"))
    };
    if text == "an evaluator" {
        return Ok(());
    }
    if let Some(rest) = text.strip_prefix("a ") {
        if let Some((ty, _)) = rest.split_once("-flag with key ") {
            let ty = flag_type(ty)?;
            *run = Some(Run {
                flag_type: ty,
                key: arg(0)?,
                fallback: parse_typed(ty, &arg(1)?)?,
                context: Map::new(),
                result: None,
            });
            return Ok(());
        }
    }
    let r = run.as_mut().ok_or("step before a flag was chosen")?;
    if text.starts_with("a context containing a targeting key with value") {
        r.context
            .insert("targetingKey".into(), Value::String(arg(0)?));
    } else if text.starts_with("a context containing a key ") {
        let (key, ty, raw) = (arg(0)?, arg(1)?, arg(2)?);
        let v = match ty.as_str() {
            "String" => Value::String(raw),
            "Integer" => json!(raw.parse::<i64>().map_err(|e| e.to_string())?),
            "Float" => json!(raw.parse::<f64>().map_err(|e| e.to_string())?),
            "Boolean" => Value::Bool(
                raw.parse()
                    .map_err(|e: std::str::ParseBoolError| e.to_string())?,
            ),
            other => return Err(format!("unknown context type {other}")),
        };
        r.context.insert(key, v);
    } else if text.starts_with("a context containing a nested property with outer key") {
        r.context.insert(arg(0)?, json!({ arg(1)?: arg(2)? }));
    } else if text == "the flag was evaluated with details" {
        let ctx = Context::from_map(r.context.clone()).map_err(|e| e.to_string())?;
        let e = snapshot.evaluate_typed(&r.key, &ctx, testbed::NOW, r.flag_type);
        let value = e.value.cloned().unwrap_or_else(|| r.fallback.clone());
        let code = e
            .error
            .as_ref()
            .map(|(c, _)| c.as_str().to_owned())
            .unwrap_or_default();
        r.result = Some((
            value,
            e.reason.as_str().to_owned(),
            code,
            e.metadata.clone(),
        ));
    } else {
        let (value, reason, code, metadata) =
            r.result.as_ref().ok_or("assertion before evaluation")?;
        if text.starts_with("the resolved details value should be") {
            let want = parse_typed(r.flag_type, &arg(0)?)?;
            if !same_value(r.flag_type, value, &want) {
                return Err(format!("value {value} != expected {want}"));
            }
        } else if text.starts_with("the reason should be") {
            if *reason != arg(0)? {
                return Err(format!("reason {reason} != expected {}", arg(0)?));
            }
        } else if text.starts_with("the error-code should be") {
            if *code != arg(0)? {
                return Err(format!("error code {code:?} != expected {}", arg(0)?));
            }
        } else if text == "the resolved metadata is empty" {
            if !metadata.is_empty() {
                return Err(format!("metadata not empty: {metadata:?}"));
            }
        } else if text == "the resolved metadata should contain" {
            for row in table.iter().skip(1) {
                let [k, ty, v] = row.as_slice() else {
                    return Err("bad metadata table".into());
                };
                let want = parse_typed(flag_type(ty)?, v)?;
                let got = metadata
                    .get(k)
                    .ok_or_else(|| format!("metadata lacks {k}"))?;
                if !same_value(flag_type(ty)?, got, &want) || (ty == "Integer" && !got.is_i64()) {
                    return Err(format!("metadata {k}: {got} != {want}"));
                }
            }
        } else {
            return Err(format!("unsupported step: {text}"));
        }
    }
    Ok(())
}

fn run_scenario(snapshot: &Snapshot, s: &Scenario) -> Result<(), String> {
    let mut run = None;
    for st in &s.steps {
        step(snapshot, &mut run, &st.text, &st.table)
            .map_err(|e| format!("step `{}`: {e}", st.text))?;
    }
    Ok(())
}

#[test]
fn flagd_evaluator_gherkin_suite() {
    let Some(dir) = testbed::dir() else { return };
    let flags = std::fs::read_to_string(dir.join("evaluator/flags/testkit-flags.json")).unwrap();
    let flags: Value = serde_json::from_str(&flags).unwrap();
    let def = FlagSetDef::from_value_lenient(flags.clone()).unwrap();
    let snapshot = Snapshot::compile_lenient(&def, 1);
    let def_v1 = FlagSetDef::from_value_lenient(marked(&flags, 1)).unwrap();
    let snapshot_v1 = Snapshot::compile_lenient(&def_v1, 1);
    assert_eq!(
        snapshot_v1.hash_version("fractional-flag"),
        Some(sluice_eval::HashVersion::V1)
    );
    assert_eq!(
        snapshot.hash_version("fractional-flag"),
        Some(sluice_eval::HashVersion::V2)
    );
    let mut by_version = [0usize; 2];
    let mut files: Vec<_> = std::fs::read_dir(dir.join("evaluator/gherkin"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "feature"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no feature files");
    let (mut passed, mut skipped, mut failures) = (0, 0, Vec::new());
    let mut skipped_tags = BTreeSet::new();
    for file in &files {
        for s in gherkin::parse(&std::fs::read_to_string(file).unwrap()) {
            if let Some(t) = s.tags.iter().find(|t| SKIPPED_TAGS.contains(&t.as_str())) {
                skipped += 1;
                skipped_tags.insert(t.clone());
                continue;
            }
            let v1 = s.tags.iter().any(|t| t == V1_TAG);
            let against = if v1 { &snapshot_v1 } else { &snapshot };
            if s.tags.iter().any(|t| t == "@fractional-v2") {
                by_version[1] += 1;
            }
            if v1 {
                by_version[0] += 1;
            }
            match run_scenario(against, &s) {
                Ok(()) => passed += 1,
                Err(e) => failures.push(format!(
                    "{}: {}: {e}",
                    file.file_name().unwrap().to_string_lossy(),
                    s.name
                )),
            }
        }
    }
    println!("conformance: skipped tags {skipped_tags:?}");
    println!(
        "conformance: {passed} passed, {} failed, {skipped} skipped",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} scenarios failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(passed > 100, "suspiciously few scenarios ran: {passed}");
    println!(
        "conformance: {} @fractional-v1 and {} @fractional-v2 scenarios",
        by_version[0], by_version[1]
    );
    assert!(
        by_version[0] >= 10 && by_version[1] >= 10,
        "both bucketing versions' examples must run: {by_version:?}"
    );
}

#[test]
fn harness_rejects_wrong_answers_and_unknown_steps() {
    let def = FlagSetDef::from_value(json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": "x"}, "defaultVariant": "a"}}})).unwrap();
    let snapshot = Snapshot::compile(&def, 1).unwrap();
    let feature = "Feature: t\n  Scenario: s\n    Given a String-flag with key \"f\" and a fallback value \"d\"\n    When the flag was evaluated with details\n    Then the resolved details value should be \"<v>\"\n";
    let ok = gherkin::parse(&feature.replace("<v>", "x"));
    assert_eq!(run_scenario(&snapshot, &ok[0]), Ok(()));
    let wrong = gherkin::parse(&feature.replace("<v>", "y"));
    assert!(run_scenario(&snapshot, &wrong[0]).is_err());
    let unknown = gherkin::parse(&format!(
        "{}    And something new happens\n",
        feature.replace("<v>", "x")
    ));
    assert!(run_scenario(&snapshot, &unknown[0])
        .unwrap_err()
        .contains("unsupported step"));
}
