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

/// The command that asks for more time on grant `q`, ready to paste: as long again as it was
/// granted for (the server caps it at the entitlement's longest), for the same reason.
pub fn extend_command(q: &AccessRequest) -> String {
    let mut c = format!("sluice access extend {} --for {}", q.id, q.duration);
    if !q.reason.is_empty() {
        c.push_str(" --reason ");
        c.push_str(&shell_quoted(&q.reason));
    }
    c
}

/// `s` as one POSIX shell word: in single quotes, each `'` written `'\''`.
fn shell_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
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
                            "extend_command": extend_command(q),
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use std::time::Duration;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000, 0)
            .single()
            .unwrap_or_default()
            + chrono::Duration::minutes(min)
    }

    fn request(
        id: &str,
        status: &str,
        created: i64,
        expires: Option<i64>,
        review: bool,
    ) -> AccessRequest {
        serde_json::from_value(json!({
            "id": id, "requester": "dave", "entitlement": "orders-db-read", "scopes": [],
            "duration": "1h", "reason": "why", "ticket": null, "status": status,
            "origin": if review { "break-glass" } else { "approval" }, "extends": null,
            "created_at": t(created), "pending_until": t(created + 120),
            "starts_at": expires.map(|e| t(e - 60)), "expires_at": expires.map(t),
            "votes": [], "ended_at": null, "ended_by": null, "end_reason": null,
            "needs_review": review, "reviewed_by": null,
        }))
        .unwrap_or_else(|e| panic!("a request: {e}"))
    }

    #[test]
    fn each_reminder_falls_due_at_its_threshold_and_not_before() {
        let r = Reminders {
            expiring_before: Some(Duration::from_secs(600)),
            pending_after: Some(Duration::from_secs(1800)),
            unreviewed_after: Some(Duration::from_secs(3600)),
        };
        let grant = request("req-g", "active", 0, Some(60), false);
        let pending = request("req-p", "pending", 0, None, false);
        let glass = request("req-b", "active", 0, Some(60), true);
        let all = [grant, pending, glass];
        let events = |now| {
            due(&all, &r, now)
                .into_iter()
                .map(|d| (d.event, d.key))
                .collect::<Vec<_>>()
        };
        assert!(events(t(49)).iter().all(|(e, _)| *e == "request.pending"));
        let at_50 = events(t(50));
        assert!(at_50.contains(&(
            "grant.expiring",
            format!("expiring_req-g_{}", t(60).timestamp_millis())
        )));
        assert!(!at_50
            .iter()
            .any(|(e, _)| *e == "break_glass.awaiting_review"));
        // The pending request times out at 120 minutes: no reminder after that.
        assert!(events(t(29)).is_empty());
        assert_eq!(
            events(t(30)),
            [("request.pending", "pending_req-p".to_owned())]
        );
        assert!(!events(t(121)).iter().any(|(e, _)| *e == "request.pending"));
        // Break-glass: an hour after it started (minute 0), reviewed or not expired.
        assert!(events(t(60))
            .iter()
            .any(|(e, k)| *e == "break_glass.awaiting_review" && k == "review_req-b"));
        // At expiry, no more expiry reminder.
        assert!(!events(t(60)).iter().any(|(e, _)| *e == "grant.expiring"));
    }

    #[test]
    fn the_extend_command_is_exact_and_quoted_for_the_shell() {
        let mut q = request("req-g", "active", 0, Some(60), false);
        assert_eq!(
            extend_command(&q),
            "sluice access extend req-g --for 1h --reason 'why'"
        );
        q.reason = "it's INC-7".into();
        assert_eq!(
            extend_command(&q),
            r"sluice access extend req-g --for 1h --reason 'it'\''s INC-7'"
        );
        q.reason.clear();
        assert_eq!(extend_command(&q), "sluice access extend req-g --for 1h");
    }
}
