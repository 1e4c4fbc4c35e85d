//! Access decisions in process with 10,000 live grants (target: ≤ 1 µs per decision).
//!
//! The policy declares 2,000 users, one standing permission for all of them
//! (`flag:staging/**`), and one entitlement; every user holds 5 live grants with glob
//! scopes `flag:production/team-{user}-{grant}-*` (10,000 grants). Each benchmark cycles
//! through 1,000 prepared (subject, resource) pairs, one decision per iteration.
//!
//! Run: `cargo bench -p sluice-core --bench decision`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark harness")]

use chrono::{DateTime, TimeZone, Utc};
use divan::Bencher;
use sluice_core::access::{AccessRequest, Origin, RequestStatus};
use sluice_core::condition::{Condition, Facts};
use sluice_core::decision::AccessSnapshot;
use sluice_core::duration::Duration;
use sluice_core::policy::Policy;
use sluice_core::scope::{Pattern, Scope};
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;

const PRINCIPALS: usize = 2_000;
const GRANTS_EACH: usize = 5;
const PAIRS: usize = 1_000;

fn main() {
    divan::main();
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0)
        .single()
        .unwrap()
}

fn policy() -> Arc<Policy> {
    policy_of(PRINCIPALS)
}

fn policy_of(principals: usize) -> Arc<Policy> {
    let mut y = String::from("users:\n");
    for p in 0..principals {
        writeln!(y, "  - user-{p}").unwrap();
    }
    y.push_str("  - lead\ngroups:\n  engineers:\n");
    for p in 0..principals {
        writeln!(y, "    - user-{p}").unwrap();
    }
    y.push_str(
        r#"  leads: [lead]
permissions:
  - to: [group:engineers]
    resource: "flag:staging/**"
    actions: ["*"]
entitlements:
  - name: team-flags
    scopes:
      - resource: "flag:production/**"
        actions: [toggle, edit-targeting]
    requesters: [group:engineers]
    max_duration: 8h
    approval: { required: 1, approvers: [group:leads] }
"#,
    );
    Arc::new(Policy::from_yaml(&y).unwrap())
}

fn grant(p: usize, g: usize) -> AccessRequest {
    conditional_grant(p, g, None)
}

/// A grant whose scope also carries `when`.
fn conditional_grant(p: usize, g: usize, when: Option<&str>) -> AccessRequest {
    let now = t0();
    AccessRequest {
        id: format!("req-{p:08x}{g:08x}"),
        requester: format!("user-{p}"),
        entitlement: "team-flags".into(),
        scopes: vec![Scope {
            resource: Pattern::parse(&format!("flag:production/team-{p}-{g}-*")).unwrap(),
            actions: vec![
                Pattern::parse("toggle").unwrap(),
                Pattern::parse("edit-targeting").unwrap(),
            ],
            when: when.map(|w| Condition::compile(w).unwrap()),
        }],
        duration: Duration::from_secs(8 * 3600),
        reason: "benchmark".into(),
        ticket: None,
        status: RequestStatus::Active,
        origin: Origin::Approval,
        extends: None,
        created_at: now,
        pending_until: now + chrono::TimeDelta::hours(1),
        starts_at: Some(now),
        expires_at: Some(now + chrono::TimeDelta::hours(8)),
        votes: Vec::new(),
        ended_at: None,
        ended_by: None,
        end_reason: None,
        needs_review: false,
        reviewed_by: None,
    }
}

fn grants() -> Vec<AccessRequest> {
    (0..PRINCIPALS)
        .flat_map(|p| (0..GRANTS_EACH).map(move |g| grant(p, g)))
        .collect()
}

fn snapshot() -> AccessSnapshot {
    let active = grants();
    let snap = AccessSnapshot::build(
        policy(),
        std::iter::empty(),
        active.iter().cloned().map(Arc::new),
    );
    assert_eq!(snap.grant_count(), PRINCIPALS * GRANTS_EACH);
    snap
}

/// 1,000 (subject, resource) pairs spread over the principals and their grants.
fn pairs(resource: impl Fn(usize, usize) -> String) -> Vec<(String, String)> {
    (0..PAIRS)
        .map(|i| {
            let p = (i * 7919) % PRINCIPALS;
            let g = i % GRANTS_EACH;
            (format!("user-{p}"), resource(p, g))
        })
        .collect()
}

/// Cycles through `pairs`, one decision per iteration, and checks the expected answer once.
fn run(bencher: Bencher, pairs: Vec<(String, String)>, action: &'static str, expect: bool) {
    let snap = snapshot();
    let now = t0() + chrono::TimeDelta::minutes(30);
    for (s, r) in &pairs {
        assert_eq!(snap.decide(s, action, r, now).allowed, expect, "{s} {r}");
    }
    let mut i = 0usize;
    bencher.bench_local(|| {
        let (s, r) = &pairs[i % PAIRS];
        i = i.wrapping_add(1);
        black_box(snap.decide(black_box(s), black_box(action), black_box(r), now))
    });
}

/// Allowed by the principal's g-th live grant (the glob matches).
#[divan::bench(sample_count = 200, sample_size = 200)]
fn allow_by_grant(bencher: Bencher) {
    run(
        bencher,
        pairs(|p, g| format!("flag:production/team-{p}-{g}-checkout")),
        "toggle",
        true,
    );
}

/// Allowed by the standing permission (checked before grants).
#[divan::bench(sample_count = 200, sample_size = 200)]
fn allow_standing(bencher: Bencher) {
    run(
        bencher,
        pairs(|p, _| format!("flag:staging/team-{p}-search")),
        "toggle",
        true,
    );
}

/// Denied: no grant matches, so all 5 of the principal's grants are tried.
#[divan::bench(sample_count = 200, sample_size = 200)]
fn deny_no_grant_matches(bencher: Bencher) {
    run(
        bencher,
        pairs(|p, _| format!("flag:production/team-{p}-9-checkout")),
        "toggle",
        false,
    );
}

/// Denied: the resource matches a grant but the action does not.
#[divan::bench(sample_count = 200, sample_size = 200)]
fn deny_wrong_action(bencher: Bencher) {
    run(
        bencher,
        pairs(|p, g| format!("flag:production/team-{p}-{g}-checkout")),
        "delete",
        false,
    );
}

/// Denied: unknown principal (one hash lookup).
#[divan::bench(sample_count = 200, sample_size = 200)]
fn deny_unknown_principal(bencher: Bencher) {
    let pairs = (0..PAIRS)
        .map(|i| {
            (
                format!("ghost-{i}"),
                format!("flag:production/team-{i}-0-x"),
            )
        })
        .collect();
    run(bencher, pairs, "toggle", false);
}

/// Allowed by the g-th grant, whose scope carries one attribute condition
/// (`resource.owner == subject.id`), with the resource's properties in the question — as an
/// AuthZEN request with `resource.properties` would ask. Every grant of the 10,000 carries it.
#[divan::bench(sample_count = 200, sample_size = 200)]
fn allow_by_grant_with_condition(bencher: Bencher) {
    let active: Vec<AccessRequest> = (0..PRINCIPALS)
        .flat_map(|p| {
            (0..GRANTS_EACH)
                .map(move |g| conditional_grant(p, g, Some("resource.owner == subject.id")))
        })
        .collect();
    let snap = AccessSnapshot::build(
        policy(),
        std::iter::empty(),
        active.iter().cloned().map(Arc::new),
    );
    let now = t0() + chrono::TimeDelta::minutes(30);
    let pairs = pairs(|p, g| format!("flag:production/team-{p}-{g}-checkout"));
    let props: Vec<serde_json::Value> = pairs
        .iter()
        .map(|(s, _)| serde_json::json!({"owner": s, "state": "open"}))
        .collect();
    let facts = |i: usize| Facts {
        resource_properties: Some(&props[i]),
        ..Facts::default()
    };
    for (i, (s, r)) in pairs.iter().enumerate() {
        let d = snap.decide_with_facts(s, "toggle", r, now, &facts(i));
        assert!(d.allowed, "{s} {r} {d:?}");
    }
    let mut i = 0usize;
    bencher.bench_local(|| {
        let k = i % PAIRS;
        let (s, r) = &pairs[k];
        i = i.wrapping_add(1);
        black_box(snap.decide_with_facts(black_box(s), "toggle", black_box(r), now, &facts(k)))
    });
}

/// Not in the decision path: what rebuilding the whole snapshot from 10,000 already-decoded
/// grants costs (part of every `App::refresh`, see BENCHMARKS.md, figure 2).
#[divan::bench(sample_count = 20, sample_size = 1)]
fn build_snapshot_10k(bencher: Bencher) {
    let policy = policy();
    // As the store's cache of active requests holds them.
    let active: Vec<Arc<_>> = grants().into_iter().map(Arc::new).collect();
    bencher.bench_local(|| {
        black_box(AccessSnapshot::build(
            policy.clone(),
            std::iter::empty(),
            active.iter().cloned(),
        ))
    });
}

/// Not in the decision path: one change applied to a snapshot of `principals` principals
/// holding 5 grants each, as an instance applies every audited write (its own and other
/// instances') — a grant given, and a request asked for (which gives nothing). What it costs
/// should not grow with the organisation.
#[divan::bench(args = [40, 2_000, 10_000], sample_count = 100, sample_size = 20)]
fn change_applied(bencher: Bencher, principals: usize) {
    let snap = AccessSnapshot::build(
        policy_of(principals),
        std::iter::empty(),
        (0..principals).flat_map(|p| (0..GRANTS_EACH).map(move |g| Arc::new(grant(p, g)))),
    );
    let given: Vec<Arc<AccessRequest>> = (0..PAIRS)
        .map(|i| Arc::new(grant((i * 7919) % principals, GRANTS_EACH)))
        .collect();
    let asked: Vec<Arc<AccessRequest>> = given
        .iter()
        .map(|r| {
            let mut r = AccessRequest::clone(r);
            r.status = RequestStatus::Pending;
            Arc::new(r)
        })
        .collect();
    let mut i = 0usize;
    bencher.bench_local(|| {
        let k = i % PAIRS;
        i = i.wrapping_add(1);
        let next = snap.with_requests([&given[k]]);
        black_box(next.with_requests([&asked[(k + 1) % PAIRS]]))
    });
}
