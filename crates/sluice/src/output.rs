//! Human tables and JSON for scripts.

use crate::cli::Output;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_core::Clock;

pub fn now() -> DateTime<Utc> {
    sluice_core::SystemClock.now()
}

/// `"in 12m"` / `"3m ago"` for an RFC 3339 time in `v`.
pub fn when(v: &Value) -> String {
    match v
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
    {
        Some(t) => {
            // Round rather than truncate a time just ahead: "in 2h", not "in 1h59m", for
            // something the server set to two hours from now a moment ago.
            let (t, n) = (t.with_timezone(&Utc), now());
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

/// `"{what} in 12m"` for an RFC 3339 time still ahead; `now_text` for one at or past now —
/// something waiting for the server to act at that time ("due now"), never "applies 15s ago".
pub fn until(v: &Value, what: &str, now_text: &str) -> String {
    let past = v
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .is_some_and(|t| t.with_timezone(&Utc) <= now());
    if past {
        now_text.to_owned()
    } else {
        format!("{what} {}", when(v))
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

pub fn json(v: &Value) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// One request, for people.
pub fn request(v: &Value) {
    let status = s(&v["status"]);
    let mut lines = vec![
        format!("request     {}", s(&v["id"])),
        format!("entitlement {}", s(&v["entitlement"])),
        format!("requester   {}", s(&v["requester"])),
        format!("status      {status} ({})", s(&v["origin"])),
        format!("duration    {}", s(&v["duration"])),
        format!("reason      {}", s(&v["reason"])),
    ];
    if !v["ticket"].is_null() {
        lines.push(format!("ticket      {}", s(&v["ticket"])));
    }
    if status == "active" {
        lines.push(format!(
            "expires     {} ({})",
            s(&v["expires_at"]),
            when(&v["expires_at"])
        ));
    } else if status == "pending" {
        lines.push(format!("times out   {}", when(&v["pending_until"])));
    }
    if let Some(votes) = v["votes"].as_array() {
        for vote in votes {
            let verb = if vote["approve"] == Value::Bool(true) {
                "approved"
            } else {
                "denied"
            };
            lines.push(format!(
                "{verb:<11} by {} {}",
                s(&vote["approver"]),
                when(&vote["at"])
            ));
        }
    }
    if v["needs_review"] == Value::Bool(true) {
        lines.push(format!(
            "review      needed (break-glass): sluice access review {}",
            s(&v["id"])
        ));
    } else if !v["reviewed_by"].is_null() {
        lines.push(format!("reviewed    by {}", s(&v["reviewed_by"])));
    }
    if !v["ended_at"].is_null() || !v["end_reason"].is_null() {
        let reason = if v["end_reason"].is_null() {
            String::new()
        } else {
            format!(": {}", s(&v["end_reason"]))
        };
        lines.push(format!(
            "ended       by {} {}{reason}",
            s(&v["ended_by"]),
            when(&v["ended_at"])
        ));
    }
    if let Some(next) = v["next_step"].as_str() {
        if status == "pending" {
            lines.push(format!(
                "next        {next}; approve with: sluice access approve {}",
                s(&v["id"])
            ));
        } else {
            lines.push(format!("next        {next}"));
        }
    }
    for l in lines {
        outln!("{l}");
    }
}

pub fn requests(list: &Value) {
    let rows = list
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    let status = s(&r["status"]);
                    let time = match status.as_str() {
                        "active" => format!("expires {}", when(&r["expires_at"])),
                        "pending" => format!("times out {}", when(&r["pending_until"])),
                        _ => format!("ended {}", when(&r["ended_at"])),
                    };
                    vec![
                        s(&r["id"]),
                        s(&r["requester"]),
                        s(&r["entitlement"]),
                        status,
                        s(&r["duration"]),
                        time,
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
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

pub fn emit(out: Output, v: &Value, human: impl FnOnce(&Value)) -> anyhow::Result<()> {
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
        let past = Value::String((now() - chrono::TimeDelta::seconds(15)).to_rfc3339());
        assert_eq!(until(&past, "applies", "due now"), "due now");
        let ahead = Value::String((now() + chrono::TimeDelta::hours(1)).to_rfc3339());
        assert_eq!(until(&ahead, "applies", "due now"), "applies in 1h");
    }
}
