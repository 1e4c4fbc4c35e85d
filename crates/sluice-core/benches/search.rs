//! AuthZEN subject search over 10,000 principals, in process (`AccessSnapshot::search_subjects`,
//! what `POST /access/v1/search/subject` runs after parsing).
//!
//! The policy declares 10,000 users, all in one group with one standing permission
//! (`flag:staging/**`), and one entitlement; every user holds one live grant scoped
//! `flag:production/team-{user}-*`, and the first 10 users also hold one on
//! `flag:production/checkout` (10,010 grants). Three questions:
//!
//! - `few_allowed`: who may toggle `flag:production/checkout`? 10 of 10,000: every principal
//!   is decided (the whole scan);
//! - `all_allowed_first_page`: who may toggle `flag:staging/x`? everyone: the first page of
//!   1,000 (1,001 decisions);
//! - `all_allowed_every_page`: the same, all 10 pages of 1,000 through their keyset cursors.
//!
//! Run: `cargo bench -p sluice-core --bench search`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark harness")]

use chrono::{DateTime, TimeZone, Utc};
use divan::Bencher;
use sluice_core::access::{AccessRequest, Origin, RequestStatus};
use sluice_core::condition::Facts;
use sluice_core::decision::AccessSnapshot;
use sluice_core::duration::Duration;
use sluice_core::policy::Policy;
use sluice_core::scope::{Pattern, Scope};
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;

const PRINCIPALS: usize = 10_000;
const ON_CHECKOUT: usize = 10;
const PAGE: usize = 1_000;

fn main() {
    divan::main();
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).single().unwrap()
}

fn policy() -> Arc<Policy> {
    let mut y = String::from("users:\n");
    for p in 0..PRINCIPALS {
        writeln!(y, "  - user-{p:05}").unwrap();
    }
    y.push_str("  - lead\ngroups:\n  engineers:\n");
    for p in 0..PRINCIPALS {
        writeln!(y, "    - user-{p:05}").unwrap();
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

fn grant(p: usize, n: usize, resource: &str) -> AccessRequest {
    let now = t0();
    AccessRequest {
        id: format!("req-{p:08x}{n:08x}"),
        requester: format!("user-{p:05}"),
        entitlement: "team-flags".into(),
        scopes: vec![Scope {
            resource: Pattern::parse(resource).unwrap(),
            actions: vec![Pattern::parse("toggle").unwrap()],
            when: None,
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

fn snapshot() -> AccessSnapshot {
    let mut active: Vec<AccessRequest> = (0..PRINCIPALS)
        .map(|p| grant(p, 0, &format!("flag:production/team-{p}-*")))
        .collect();
    active.extend((0..ON_CHECKOUT).map(|p| grant(p, 1, "flag:production/checkout")));
    AccessSnapshot::build(
        policy(),
        std::iter::empty(),
        active.iter().cloned().map(Arc::new),
    )
}

fn now() -> DateTime<Utc> {
    t0() + chrono::TimeDelta::minutes(30)
}

/// Who may toggle `flag:production/checkout`: 10 of 10,000, every principal decided.
#[divan::bench(sample_count = 50, sample_size = 1)]
fn few_allowed(bencher: Bencher) {
    let snap = snapshot();
    let facts = Facts::default();
    let page = snap.search_subjects(
        "user",
        "toggle",
        "flag:production/checkout",
        now(),
        &facts,
        None,
        PAGE,
    );
    assert_eq!(page.keys.len(), ON_CHECKOUT);
    assert!(!page.more);
    bencher.bench_local(|| {
        black_box(snap.search_subjects(
            "user",
            black_box("toggle"),
            black_box("flag:production/checkout"),
            now(),
            &facts,
            None,
            PAGE,
        ))
    });
}

/// Who may toggle `flag:staging/x`: everyone; the first page of 1,000.
#[divan::bench(sample_count = 50, sample_size = 1)]
fn all_allowed_first_page(bencher: Bencher) {
    let snap = snapshot();
    let facts = Facts::default();
    bencher.bench_local(|| {
        let page = snap.search_subjects(
            "user",
            black_box("toggle"),
            black_box("flag:staging/x"),
            now(),
            &facts,
            None,
            PAGE,
        );
        assert_eq!(page.keys.len(), PAGE);
        black_box(page)
    });
}

/// The same, all 10 pages through their keyset cursors.
#[divan::bench(sample_count = 20, sample_size = 1)]
fn all_allowed_every_page(bencher: Bencher) {
    let snap = snapshot();
    let facts = Facts::default();
    bencher.bench_local(|| {
        let mut after: Option<String> = None;
        let mut total = 0;
        loop {
            let page = snap.search_subjects(
                "user",
                "toggle",
                "flag:staging/x",
                now(),
                &facts,
                after.as_deref(),
                PAGE,
            );
            total += page.keys.len();
            if !page.more {
                break;
            }
            after = page.keys.last().cloned();
        }
        assert_eq!(total, PRINCIPALS);
        black_box(total)
    });
}
