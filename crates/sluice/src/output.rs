//! Human tables and JSON for scripts.

use crate::cli::Output;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sluice_api::access::{RequestStatus, RequestView};
use sluice_api::flags::FlagChange;
use sluice_core::Clock;

pub fn now() -> DateTime<Utc> {
    sluice_core::SystemClock.now()
}

/// `"{what} in 12m"` for a time still ahead; `now_text` for one at or past now — something
/// waiting for the server to act at that time ("due now"), never "applies 15s ago".
pub fn until_at(t: Option<DateTime<Utc>>, what: &str, now_text: &str) -> String {
    match t {
        Some(t) if t <= now() => now_text.to_owned(),
        _ => format!("{what} {}", when_at(t)),
    }
}

/// A value as a table cell or a line for people: strings bare, arrays as `a, b` (never raw
/// JSON), nothing as `-`.
pub fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) => items.iter().map(s).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// A field that may be absent, as a table cell: `-` when it is (as [`s`] shows `null`).
pub fn opt(v: Option<&str>) -> String {
    v.unwrap_or("-").to_owned()
}

/// Prints rows as an aligned table.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        outln!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_uppercase()).collect());
    for r in rows {
        line(r);
    }
}

pub fn json(v: &(impl Serialize + ?Sized)) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// A time as the server wrote it (RFC 3339, as `chrono` serialises it), `-` for none.
pub fn stamp(t: Option<DateTime<Utc>>) -> String {
    t.and_then(|t| serde_json::to_value(t).ok())
        .map_or_else(|| "-".into(), |v| s(&v))
}

/// `"in 12m"` / `"3m ago"`, `-` for none.
pub fn when_at(t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => {
            // Round rather than truncate a time just ahead: "in 2h", not "in 1h59m", for
            // something the server set to two hours from now a moment ago.
            let n = now();
            let n = if t > n {
                n - chrono::TimeDelta::milliseconds(500)
            } else {
                n
            };
            sluice_core::duration::relative(n, t)
        }
        None => "-".into(),
    }
}

/// A text field for people: `-` for none or empty.
fn text(v: Option<&str>) -> String {
    match v {
        Some(t) => t.to_owned(),
        None => "-".into(),
    }
}

/// One request, for people.
pub fn request(v: &RequestView) {
    let status = v.status;
    let mut lines = vec![
        format!("request     {}", v.id),
        format!("entitlement {}", v.entitlement),
        format!("requester   {}", v.requester),
        format!("status      {} ({})", status.as_str(), v.origin.as_str()),
        format!("duration    {}", v.duration),
        format!("reason      {}", v.reason),
    ];
    if let Some(ticket) = &v.ticket {
        lines.push(format!("ticket      {ticket}"));
    }
    if status == RequestStatus::Active {
        lines.push(format!(
            "expires     {} ({})",
            stamp(v.expires_at),
            when_at(v.expires_at)
        ));
    } else if status == RequestStatus::Pending {
        lines.push(format!("times out   {}", when_at(Some(v.pending_until))));
    }
    for vote in &v.votes {
        let verb = if vote.approve { "approved" } else { "denied" };
        lines.push(format!(
            "{verb:<11} by {} {}",
            vote.approver,
            when_at(Some(vote.at))
        ));
    }
    if v.needs_review {
        lines.push(format!(
            "review      needed (break-glass): sluice access review {}",
            v.id
        ));
    } else if let Some(by) = &v.reviewed_by {
        lines.push(format!("reviewed    by {by}"));
    }
    if v.ended_at.is_some() || v.end_reason.is_some() {
        let reason = match &v.end_reason {
            None => String::new(),
            Some(r) => format!(": {r}"),
        };
        lines.push(format!(
            "ended       by {} {}{reason}",
            text(v.ended_by.as_deref()),
            when_at(v.ended_at)
        ));
    }
    if let Some(next) = &v.next_step {
        if status == RequestStatus::Pending {
            lines.push(format!(
                "next        {next}; approve with: sluice access approve {}",
                v.id
            ));
        } else {
            lines.push(format!("next        {next}"));
        }
    }
    for l in lines {
        outln!("{l}");
    }
}

pub fn requests(list: &[RequestView]) {
    let rows = list
        .iter()
        .map(|r| {
            let time = match r.status {
                RequestStatus::Active => format!("expires {}", when_at(r.expires_at)),
                RequestStatus::Pending => format!("times out {}", when_at(Some(r.pending_until))),
                _ => format!("ended {}", when_at(r.ended_at)),
            };
            vec![
                r.id.clone(),
                r.requester.clone(),
                r.entitlement.clone(),
                r.status.as_str().to_owned(),
                r.duration.clone(),
                time,
            ]
        })
        .collect();
    table(
        &[
            "id",
            "requester",
            "entitlement",
            "status",
            "duration",
            "when",
        ],
        rows,
    );
}

/// What a change does, in words: `turn checkout-v2 OFF`.
pub fn describe_change(key: &str, change: &FlagChange) -> String {
    match change {
        FlagChange::SetState { enabled: true } => format!("turn {key} ON"),
        FlagChange::SetState { enabled: false } => format!("turn {key} OFF"),
        FlagChange::SetDefault { variant } => format!("set {key}'s default to `{variant}`"),
        FlagChange::SetTargeting { targeting: None } => format!("remove {key}'s targeting"),
        FlagChange::SetTargeting { targeting: Some(_) } => format!("replace {key}'s targeting"),
        FlagChange::SetMetadata { .. } => format!("replace {key}'s metadata"),
        FlagChange::Put { .. } => format!("replace {key}"),
        FlagChange::Delete => format!("delete {key}"),
    }
}

/// `v` as JSON for scripts, or for people as `human` prints it.
pub fn emit<T: Serialize + ?Sized>(
    out: Output,
    v: &T,
    human: impl FnOnce(&T),
) -> anyhow::Result<()> {
    match out {
        Output::Json => json(v),
        Output::Table => {
            human(v);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_print_as_lists_for_people() {
        assert_eq!(
            s(&serde_json::json!(["group:leads", "bob"])),
            "group:leads, bob"
        );
        assert_eq!(s(&serde_json::json!([1, "x"])), "1, x");
        assert_eq!(s(&serde_json::json!([])), "-");
        assert_eq!(s(&serde_json::json!("plain")), "plain");
        assert_eq!(s(&Value::Null), "-");
    }

    #[test]
    fn an_overdue_time_is_due_now_never_ago() {
        let past = now() - chrono::TimeDelta::seconds(15);
        assert_eq!(until_at(Some(past), "applies", "due now"), "due now");
        let ahead = now() + chrono::TimeDelta::hours(1);
        assert_eq!(until_at(Some(ahead), "applies", "due now"), "applies in 1h");
    }
}
