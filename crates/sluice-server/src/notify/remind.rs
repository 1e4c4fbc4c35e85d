//! Reminders: which requests and grants call for one at `now`. Pure; the dispatcher writes
//! what this returns with ids derived from what it reminds of, so each is written once
//! whatever instance or pass finds it first.

use super::config::Reminders;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sluice_core::access::{AccessRequest, RequestStatus};

/// One reminder to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Reminder {
    pub event: &'static str,
    /// Unique per thing reminded of (a grant's expiry, a request, a review).
    pub key: String,
    pub resource: String,
    pub data: Value,
}

fn data(r: &AccessRequest, extra: Value) -> Value {
    let mut d = json!({
        "subject_id": r.id,
        "resource": format!("entitlement:{}", r.entitlement),
        "holder": r.requester,
        "details": {
            "entitlement": r.entitlement,
            "requester": r.requester,
            "reason": r.reason,
            "ticket": r.ticket,
            "expires_at": r.expires_at,
        },
    });
    if let (Some(d), Some(e)) = (d.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    d
}

/// The reminders `requests` call for at `now`.
pub fn due(requests: &[AccessRequest], r: &Reminders, now: DateTime<Utc>) -> Vec<Reminder> {
    let mut out = Vec::new();
    for q in requests {
        let status = q.status_at(now);
        if let (Some(before), RequestStatus::Active, Some(expires)) =
            (r.expiring_before, status, q.expires_at)
        {
            let before = chrono::Duration::from_std(before).unwrap_or(chrono::Duration::MAX);
            if expires > now && expires - now <= before {
                out.push(Reminder {
                    event: "grant.expiring",
                    key: format!("expiring_{}_{}", q.id, expires.timestamp_millis()),
                    resource: format!("entitlement:{}", q.entitlement),
                    data: data(
                        q,
                        json!({
                            "expires_in_secs": (expires - now).num_seconds(),
                            "extend_command": format!("sluice access extend {} --for 30m --reason \"…\"", q.id),
                        }),
                    ),
                });
            }
        }
        if let (Some(after), RequestStatus::Pending) = (r.pending_after, status) {
            let after = chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
            if now - q.created_at >= after {
                out.push(Reminder {
                    event: "request.pending",
                    key: format!("pending_{}", q.id),
                    resource: format!("entitlement:{}", q.entitlement),
                    data: data(
                        q,
                        json!({"pending_secs": (now - q.created_at).num_seconds()}),
                    ),
                });
            }
        }
        if let (Some(after), true, Some(started)) =
            (r.unreviewed_after, q.needs_review, q.starts_at)
        {
            let after = chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
            if now - started >= after {
                out.push(Reminder {
                    event: "break_glass.awaiting_review",
                    key: format!("review_{}", q.id),
                    resource: format!("entitlement:{}", q.entitlement),
                    data: data(
                        q,
                        json!({"review_command": format!("sluice access review {}", q.id)}),
                    ),
                });
            }
        }
    }
    out
}
