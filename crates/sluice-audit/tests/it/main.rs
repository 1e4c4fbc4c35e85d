//! Integration tests for `sluice-audit`: one binary, one module per concern.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns should fail loudly too"
)]

mod canonical;
mod chain;
mod export;
mod jcs;
mod keys;
mod props;
mod rotation;
mod stream;
mod tail;
mod tamper;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use sluice_audit::{AuditEntry, ChainHead, NewEntry};

/// A fixed instant; tests never read the clock.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 7, 0, 0).unwrap()
}

pub fn at(ms: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::milliseconds(ms)
}

/// A chain of `n` entries, one second apart, with varied fields.
pub fn chain(n: usize) -> Vec<AuditEntry> {
    let mut head = ChainHead::genesis();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let new = NewEntry::new(format!("user{}", i % 3), "access.request.created")
            .resource(format!("flag:production/f{i}"))
            .subject_id(format!("req_{i}"))
            .details(json!({"reason": format!("INC-{i}"), "minutes": 30, "n": {"b": 1, "a": [i]}}));
        let entry = head.append(at(i as i64 * 1000 + 7), new);
        head = entry.head();
        out.push(entry);
    }
    out
}

/// Recomputes the hash of an entry after an edit (what a careful forger does).
pub fn rehash(entry: &mut AuditEntry) {
    entry.hash = entry.compute_hash();
}
