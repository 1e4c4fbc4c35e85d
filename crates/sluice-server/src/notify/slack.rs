//! A Slack-compatible incoming-webhook message (`text` plus Block Kit `blocks`) made from a
//! notification's payload: what happened in one line, the facts that matter, and buttons
//! linking to the console, where the approve and deny buttons are.

use serde_json::{json, Value};

/// The message for one payload (the stored body; see [`super::events::payload`]).
pub fn message(payload: &Value) -> Value {
    let event = payload["type"].as_str().unwrap_or("event");
    let data = &payload["data"];
    let d = &data["details"];
    let who = d["requester"]
        .as_str()
        .or(data["holder"].as_str())
        .or(data["actor"].as_str())
        .unwrap_or("someone");
    let what = d["entitlement"]
        .as_str()
        .map(|e| format!("`{e}`"))
        .or_else(|| data["resource"].as_str().map(|r| format!("`{r}`")))
        .unwrap_or_default();
    let id = data["subject_id"].as_str().unwrap_or_default();
    let headline = match event {
        "request.opened" => format!("{who} requests {what}"),
        "request.approved" => format!(
            "Request `{id}` for {what} approved by {}",
            data["actor"].as_str().unwrap_or("?")
        ),
        "request.denied" => format!(
            "Request `{id}` for {what} denied by {}",
            data["actor"].as_str().unwrap_or("?")
        ),
        "request.pending" => format!("{who}'s request for {what} is still waiting for approval"),
        "grant.started" => format!("{who} now holds {what}"),
        "grant.expiring" => format!("{who}'s access to {what} expires soon"),
        "grant.expired" => format!("{who}'s access to {what} expired"),
        "grant.revoked" => format!("{who}'s access to {what} was revoked"),
        "break_glass.used" => format!(":rotating_light: {who} used break-glass on {what}"),
        "break_glass.awaiting_review" => format!("{who}'s break-glass use of {what} awaits review"),
        "change_request.opened" => format!(
            "{} proposes a change to {what}",
            data["actor"].as_str().unwrap_or("?")
        ),
        "change_request.applied" => format!("A change request on {what} was applied"),
        "rollout.step" => format!("Rollout of {what} moved to {}%", d["percent"]),
        "rollout.paused" => format!(
            "Rollout of {what} paused by {}",
            data["actor"].as_str().unwrap_or("?")
        ),
        "rollout.rolled_back" => format!(
            "Rollout of {what} rolled back by {}",
            data["actor"].as_str().unwrap_or("?")
        ),
        "audit.verify_failed" => ":warning: The audit trail failed verification".to_owned(),
        other => format!("{other} on {what}"),
    };
    let mut fields = Vec::new();
    for (label, v) in [
        ("Reason", &d["reason"]),
        ("Ticket", &d["ticket"]),
        ("Duration", &d["duration_secs"]),
        ("Expires", &d["expires_at"]),
        ("Scopes", &d["scopes"]),
    ] {
        if !v.is_null() {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            fields.push(json!({"type": "mrkdwn", "text": format!("*{label}:*\n{text}")}));
        }
    }
    // Who must act (the approvers, the reviewers, the holder), @-mentioned first.
    let mentions: Vec<String> = data["mentions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|id| format!("<@{id}>"))
        .collect();
    let headline = if mentions.is_empty() {
        headline
    } else {
        format!("{} {headline}", mentions.join(" "))
    };
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": headline}})];
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    if let Some(extend) = data["extend_command"].as_str() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("Need longer? `{extend}`")}}));
    }
    if let Some(url) = data["console_url"].as_str() {
        let buttons = if matches!(event, "request.opened" | "request.pending") {
            vec![
                json!({"type": "button", "text": {"type": "plain_text", "text": "Approve"}, "style": "primary", "url": url, "action_id": "approve"}),
                json!({"type": "button", "text": {"type": "plain_text", "text": "Deny"}, "style": "danger", "url": url, "action_id": "deny"}),
            ]
        } else {
            vec![
                json!({"type": "button", "text": {"type": "plain_text", "text": "Open in Sluice"}, "url": url, "action_id": "open"}),
            ]
        };
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    json!({"text": headline, "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_gets_approve_and_deny_links() {
        let m = message(&json!({
            "type": "request.opened",
            "data": {"actor": "alice", "subject_id": "req-1", "console_url": "https://s/ui/inbox",
                     "details": {"requester": "alice", "entitlement": "db-read", "reason": "INC-1"}}
        }));
        assert_eq!(m["text"], "alice requests `db-read`");
        let actions = &m["blocks"][2]["elements"];
        assert_eq!(actions[0]["text"]["text"], "Approve");
        assert_eq!(actions[1]["url"], "https://s/ui/inbox");
    }
}
