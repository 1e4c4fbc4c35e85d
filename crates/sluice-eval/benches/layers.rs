//! What Sluice's layers cost: a flag carrying 1,000 expiring targets and a staged rollout,
//! against the same flag without them, evaluated for 1,000 varied users (half of them
//! targeted). This is the path the server takes (`EnvFlags::evaluate`): the flag's own
//! evaluation, then one map lookup and, if not targeted, one rollout bucket.
//!
//! Run: `cargo bench -p sluice-eval --bench layers`

#![expect(clippy::unwrap_used, reason = "benchmark setup fails loudly")]

use divan::Bencher;
use serde_json::json;
use sluice_eval::layers::{CompiledLayers, FlagLayers, Rollout, RolloutState, RolloutStep, Target};
use sluice_eval::{Context, FlagSetDef, Snapshot};
use std::hint::black_box;

/// The server's allocator (see `crates/sluice/src/main.rs`): what the bulk case allocates, and
/// where snapshots and contexts land, is measured as the server would see it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const USERS: usize = 1_000;
const NOW_MS: i64 = 1_795_737_600_000;

fn main() {
    divan::main();
}

fn snapshot() -> Snapshot {
    let doc = json!({"flags": {"new-search": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}}});
    Snapshot::compile(&FlagSetDef::from_value(doc).unwrap(), 1).unwrap()
}

fn layers() -> CompiledLayers {
    let targets = (0..1_000)
        .map(|i| Target {
            id: format!("tgt-{i}"),
            variant: "on".into(),
            keys: vec![format!("user-{}", i * 2)],
            group: None,
            expires_at_ms: NOW_MS + 3_600_000 + i64::from(i),
            created_by: "bench".into(),
        })
        .collect();
    let rollout = Rollout {
        variant: "on".into(),
        steps: [100, 1_000, 5_000, 10_000]
            .iter()
            .map(|&share_bp| RolloutStep {
                share_bp,
                hold_ms: 1_800_000,
            })
            .collect(),
        started_at_ms: NOW_MS - 2_000_000,
        state: RolloutState::Running,
        paused_at_ms: None,
        paused_total_ms: 0,
        recorded_step: Some(1),
        completed_at_ms: None,
        completed_revision: None,
        completion_error: None,
        guards: Vec::new(),
        held_ms: 0,
    };
    CompiledLayers::compile(&FlagLayers {
        targets,
        rollout: Some(rollout),
    })
}

fn contexts() -> Vec<Context> {
    (0..USERS)
        .map(|i| Context::from_value(json!({"targetingKey": format!("user-{i}")})).unwrap())
        .collect()
}

#[divan::bench]
fn without_layers(b: Bencher) {
    let snap = snapshot();
    let ctxs = contexts();
    let mut i = 0;
    b.bench_local(|| {
        i = (i + 1) % USERS;
        black_box(
            snap.evaluate(black_box("new-search"), &ctxs[i], NOW_MS / 1000)
                .value,
        )
    });
}

#[divan::bench]
fn with_1000_targets_and_a_rollout(b: Bencher) {
    let snap = snapshot();
    let layers = layers();
    let ctxs = contexts();
    let mut i = 0;
    b.bench_local(|| {
        i = (i + 1) % USERS;
        let ctx = &ctxs[i];
        let e = snap.evaluate(black_box("new-search"), ctx, NOW_MS / 1000);
        let hit = layers.hit("new-search", ctx.targeting_key(), NOW_MS);
        black_box((e.value, hit))
    });
}
