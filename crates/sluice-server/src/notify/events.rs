//! Which audit entries notify, under which event type, and the body every sink is sent (the
//! Standard Webhooks payload shape: `type`, `timestamp`, `data`). The router runs inside
//! the write transaction ([`sluice_store::OutboxRouter`]): pure, quick, infallible.

use super::config::Sink;
pub use super::config::{known, ALL};
use crate::ids::new_id;
use serde_json::{json, Value};
use sluice_audit::AuditEntry;
use sluice_store::{OutboxMessage, OutboxRouter};
use std::sync::Arc;

/// The event type an audit entry is announced as, if any.
pub fn event_of(e: &AuditEntry) -> Option<&'static str> {
    Some(match e.action.as_str() {
        "access.requested" | "access.extension-requested" => "request.opened",
        "access.approved" | "access.auto-approved" => "request.approved",
        "access.denied" => "request.denied",
        "access.granted" => "grant.started",
        "access.expired" => "grant.expired",
        "access.revoked" => "grant.revoked",
        "access.break-glass" => "break_glass.used",
        "flag.change-proposed" => "change_request.opened",
        "flag.created" | "flag.changed" | "flag.deleted"
            if e.details["authority"]["by"] == "change_request" =>
        {
            "change_request.applied"
        }
        "rollout.advanced" => "rollout.step",
        "rollout.paused" => "rollout.paused",
        "rollout.rolled-back" => "rollout.rolled_back",
        _ => return None,
    })
}

/// What an entry is about, for the sinks' `entitlements` and `environments` filters.
pub fn about(resource: Option<&str>, details: &Value) -> (Option<String>, Option<String>) {
    let resource = resource.unwrap_or_default();
    let entitlement = resource.strip_prefix("entitlement:").map(str::to_owned);
    let environment = resource
        .strip_prefix("flag:")
        .and_then(|r| r.split('/').next())
        .map(str::to_owned)
        .or_else(|| details["environment"].as_str().map(str::to_owned));
    (entitlement, environment)
}

/// The body every sink receives (a chat sink reshapes it; see [`super::slack`]).
pub fn payload(event: &str, at: chrono::DateTime<chrono::Utc>, data: Value) -> String {
    json!({
        "type": event,
        "timestamp": sluice_audit::format_timestamp(&at),
        "data": data,
    })
    .to_string()
}

/// Routes audit entries to the configured sinks.
#[derive(Debug)]
pub struct Router {
    pub sinks: Arc<Vec<Sink>>,
    /// Where the console is (`…/ui/`), for links.
    pub public_url: String,
}

impl Router {
    /// The messages of one event, one per sink that hears it; ids fresh unless `id` names
    /// the event (a reminder: then the id is `id` and the sink's name, so it is written once).
    pub fn messages(
        &self,
        event: &str,
        at: chrono::DateTime<chrono::Utc>,
        resource: Option<&str>,
        mut data: Value,
        id: Option<&str>,
    ) -> Vec<OutboxMessage> {
        let (entitlement, environment) = about(resource, &data["details"]);
        if let Some(d) = data.as_object_mut() {
            d.insert(
                "console_url".into(),
                json!(format!("{}/ui/inbox", self.public_url)),
            );
        }
        let body = payload(event, at, data);
        self.sinks
            .iter()
            .filter(|s| s.hears(event, entitlement.as_deref(), environment.as_deref()))
            .map(|s| OutboxMessage {
                id: match id {
                    Some(id) => format!("msg_{id}_{}", s.name),
                    None => new_id("msg"),
                },
                sink: s.name.clone(),
                event: event.to_owned(),
                payload: body.clone(),
            })
            .collect()
    }
}

impl OutboxRouter for Router {
    fn route(&self, e: &AuditEntry) -> Vec<OutboxMessage> {
        let Some(event) = event_of(e) else {
            return Vec::new();
        };
        let data = json!({
            "audit_seq": e.seq,
            "action": e.action,
            "actor": e.actor,
            "resource": e.resource,
            "subject_id": e.subject_id,
            "details": e.details,
        });
        self.messages(event, e.at, e.resource.as_deref(), data, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str, resource: &str, details: Value) -> AuditEntry {
        sluice_audit::ChainHead::genesis().append(
            chrono::DateTime::UNIX_EPOCH,
            sluice_audit::NewEntry::new("someone", action)
                .resource(resource)
                .details(details),
        )
    }

    #[test]
    fn audit_actions_map_to_events() {
        let cases = [
            ("access.requested", "request.opened"),
            ("access.extension-requested", "request.opened"),
            ("access.auto-approved", "request.approved"),
            ("access.denied", "request.denied"),
            ("access.granted", "grant.started"),
            ("access.expired", "grant.expired"),
            ("access.revoked", "grant.revoked"),
            ("access.break-glass", "break_glass.used"),
            ("flag.change-proposed", "change_request.opened"),
            ("rollout.advanced", "rollout.step"),
            ("rollout.paused", "rollout.paused"),
            ("rollout.rolled-back", "rollout.rolled_back"),
        ];
        for (action, event) in cases {
            assert_eq!(
                event_of(&entry(action, "x", Value::Null)),
                Some(event),
                "{action}"
            );
            assert!(ALL.contains(&event));
        }
        let applied = entry(
            "flag.changed",
            "flag:production/x",
            json!({"authority": {"by": "change_request", "id": "cr-1"}}),
        );
        assert_eq!(event_of(&applied), Some("change_request.applied"));
        let by_grant = entry(
            "flag.changed",
            "flag:production/x",
            json!({"authority": {"by": "grant"}}),
        );
        assert_eq!(event_of(&by_grant), None);
        assert_eq!(event_of(&entry("decision", "x", Value::Null)), None);
    }

    #[test]
    fn flag_events_are_about_their_environment() {
        assert_eq!(
            about(Some("flag:production/x"), &Value::Null),
            (None, Some("production".into()))
        );
        assert_eq!(
            about(Some("entitlement:db-read"), &Value::Null),
            (Some("db-read".into()), None)
        );
        assert_eq!(
            about(None, &json!({"environment": "staging"})),
            (None, Some("staging".into()))
        );
    }
}
