//! In-process evaluation cost, side by side with Unleash's engine
//! (`unleash-yggdrasil`) on equivalent toggles. Contexts are built beforehand
//! and cycled through (1,000 distinct users), as a server would see them.
//!
//! Run: `cargo bench -p sluice-eval --bench engine`

#![expect(clippy::unwrap_used, reason = "benchmark setup fails loudly")]

use std::hint::black_box;
use std::path::PathBuf;

use divan::Bencher;
use serde_json::{json, Value};
use sluice_eval::{Context, FlagSetDef, Snapshot};
use unleash_yggdrasil::{ClientFeatures, EngineState};

/// The server's allocator (see `crates/sluice/src/main.rs`): what the bulk case allocates, and
/// where snapshots and contexts land, is measured as the server would see it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const USERS: usize = 1_000;
const NOW: i64 = 1_795_737_600;

fn main() {
    divan::main();
}

fn sluice() -> Snapshot {
    let doc = json!({"flags": {
        "static": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
        "email": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
            "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", "off"]}},
        "split": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
            "targeting": {"fractional": [["on", 50], ["off", 50]]}},
        "semver": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
            "targeting": {"if": [{"sem_ver": [{"var": "version"}, ">", "2.0.0"]}, "on", "off"]}}
    }});
    Snapshot::compile(&FlagSetDef::from_value(doc).unwrap(), 1).unwrap()
}

fn yggdrasil() -> EngineState {
    let features: ClientFeatures = serde_json::from_value(json!({"version": 2, "features": [
        {"name": "static", "enabled": true, "strategies": [{"name": "default"}]},
        {"name": "email", "enabled": true, "strategies": [{"name": "default", "constraints": [
            {"contextName": "email", "operator": "STR_ENDS_WITH", "values": ["@example.com"]}]}]},
        {"name": "split", "enabled": true, "strategies": [{"name": "flexibleRollout",
            "parameters": {"rollout": "50", "stickiness": "default", "groupId": "split"}}]},
        {"name": "semver", "enabled": true, "strategies": [{"name": "default", "constraints": [
            {"contextName": "version", "operator": "SEMVER_GT", "value": "2.0.0"}]}]}
    ]}))
    .unwrap();
    let engine = EngineState::default();
    engine.apply_client_features(features);
    engine
}

fn user(i: usize) -> (String, String, String) {
    let domain = if i & 1 == 0 {
        "example.com"
    } else {
        "example.org"
    };
    (
        format!("user-{i}"),
        format!("user{i}@{domain}"),
        format!("{}.{}.{}", 1 + i % 3, i % 10, i % 7),
    )
}

fn sluice_contexts() -> Vec<Context> {
    (0..USERS)
        .map(|i| {
            let (key, email, version) = user(i);
            Context::from_value(json!({"targetingKey": key, "email": email, "version": version}))
                .unwrap()
        })
        .collect()
}

fn yggdrasil_contexts() -> Vec<unleash_yggdrasil::Context> {
    (0..USERS)
        .map(|i| {
            let (key, email, version) = user(i);
            serde_json::from_value(
                json!({"userId": key, "properties": {"email": email, "version": version}}),
            )
            .unwrap()
        })
        .collect()
}

const CASES: [&str; 4] = ["static", "email", "split", "semver"];

#[divan::bench(args = CASES, sample_count = 200, sample_size = 2000)]
fn sluice_eval(bencher: Bencher, flag: &str) {
    let snapshot = sluice();
    let contexts = sluice_contexts();
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % USERS;
        let e = snapshot.evaluate(black_box(flag), &contexts[i], NOW);
        black_box(e.value.is_some())
    });
}

#[divan::bench(args = CASES, sample_count = 200, sample_size = 2000)]
fn yggdrasil_eval(bencher: Bencher, flag: &str) {
    let engine = yggdrasil();
    let contexts = yggdrasil_contexts();
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % USERS;
        black_box(engine.is_enabled(black_box(flag), &contexts[i], &None))
    });
}

/// Every flag of the flagd testbed (merged, loaded as flagd loads it).
fn testbed_snapshot() -> Option<Snapshot> {
    let dir = std::env::var_os("SLUICE_CONFORMANCE_DIR").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/conformance/flagd-testbed")
        },
        PathBuf::from,
    );
    let mut merged = FlagSetDef::default();
    for entry in std::fs::read_dir(dir.join("flags")).ok()? {
        let path = entry.ok()?.path();
        let name = path.file_name()?.to_string_lossy().into_owned();
        if name.starts_with("selector") || !name.ends_with(".json") {
            continue;
        }
        let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
        merged
            .merge(FlagSetDef::from_value_lenient(value).ok()?)
            .ok()?;
    }
    Some(Snapshot::compile_lenient(&merged, 1))
}

#[divan::bench(sample_count = 200, sample_size = 20)]
fn sluice_bulk_testbed(bencher: Bencher) {
    let Some(snapshot) = testbed_snapshot() else {
        eprintln!("notice: flagd testbed not found; bulk benchmark skipped");
        return;
    };
    let contexts: Vec<Context> = (0..USERS)
        .map(|i| {
            let (key, email, version) = user(i);
            Context::from_value(
                json!({"targetingKey": key, "email": email, "version": version,
                "user": {"name": key}, "id": email, "tier": "premium", "color": "red", "num": i}),
            )
            .unwrap()
        })
        .collect();
    let mut i = 0;
    bencher.bench_local(|| {
        i = (i + 1) % USERS;
        black_box(snapshot.evaluate_all(&contexts[i], NOW).len())
    });
}
