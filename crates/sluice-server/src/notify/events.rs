//! Which audit entries notify, under which event type, and the body every sink is sent (the
//! Standard Webhooks payload shape: `type`, `timestamp`, `data`). The router runs inside
//! the write transaction ([`sluice_store::OutboxRouter`]): pure, quick, infallible.

use super::config::Sink;
pub use super::config::{known, ALL};
use crate::ids::new_id;
use serde_json::{json, Value};
use sluice_audit::AuditEntry;
use sluice_core::policy::Policy;
use sluice_store::{OutboxMessage, OutboxRouter};
use std::collections::BTreeMap;
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

/// The policy in force when a notification is routed (`None` once the server is gone).
pub type PolicySource = Arc<dyn Fn() -> Option<Arc<Policy>> + Send + Sync>;

/// Does `event` (with its `data`) concern `principal`? The holder hears of their own request
/// and grant; an eligible approver of the entitlement (never the requester) hears of a request
/// to approve and of a break-glass use to review; an approver of the environment (never the
/// proposer) hears of a flag change request. Nobody in particular hears of rollout or audit
/// events.
pub fn concerns(policy: Option<&Policy>, event: &str, data: &Value, principal: &str) -> bool {
    let d = &data["details"];
    if event == "change_request.opened" {
        return d["proposer"].as_str() != Some(principal)
            && d["environment"]
                .as_str()
                .zip(policy)
                .and_then(|(env, p)| {
                    let rule = p.doc.environments.get(env)?.approval.as_ref()?;
                    Some((p, rule))
                })
                .is_some_and(|(p, rule)| p.is_in(principal, &rule.approvers));
    }
    let holder = d["requester"].as_str().or(data["holder"].as_str());
    let holder_hears = matches!(
        event,
        "request.approved"
            | "request.denied"
            | "grant.started"
            | "grant.expiring"
            | "grant.expired"
            | "grant.revoked"
            | "break_glass.used"
    );
    if holder_hears && holder == Some(principal) {
        return true;
    }
    let approvers_act = matches!(
        event,
        "request.opened" | "request.pending" | "break_glass.used" | "break_glass.awaiting_review"
    );
    approvers_act
        && holder != Some(principal)
        && d["entitlement"]
            .as_str()
            .zip(policy)
            .and_then(|(e, p)| p.entitlement(e).map(|ent| (p, ent)))
            .is_some_and(|(p, ent)| p.is_in(principal, &ent.approval.approvers))
}

/// Routes audit entries to the configured sinks.
pub struct Router {
    pub sinks: Arc<Vec<Sink>>,
    /// Where the console is (`…/ui/`), for links.
    pub public_url: String,
    /// The policy, to know whom an event concerns (sinks' `recipients`, chat mentions).
    pub policy: PolicySource,
    /// Principal name → chat user id.
    pub chat_users: Arc<BTreeMap<String, String>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("sinks", &self.sinks)
            .field("public_url", &self.public_url)
            .field("chat_users", &self.chat_users.len())
            .finish_non_exhaustive()
    }
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
        let policy = (self.policy)();
        let concerned = |p: &str| concerns(policy.as_deref(), event, &data, p);
        // Chat users it concerns, to @-mention: who must approve, review or extend.
        let mentions: Vec<&String> = self
            .chat_users
            .iter()
            .filter(|(p, _)| concerned(p))
            .map(|(_, id)| id)
            .collect();
        let hearing: Vec<&Sink> = self
            .sinks
            .iter()
            .filter(|s| s.hears(event, entitlement.as_deref(), environment.as_deref()))
            .filter(|s| s.recipients.is_empty() || s.recipients.iter().any(|r| concerned(r)))
            .collect();
        let mentions = json!(mentions);
        if let Some(d) = data.as_object_mut() {
            d.insert(
                "console_url".into(),
                json!(format!("{}/ui/inbox", self.public_url)),
            );
            if mentions.as_array().is_some_and(|m| !m.is_empty()) {
                d.insert("mentions".into(), mentions);
            }
        }
        let body = payload(event, at, data);
        hearing
            .into_iter()
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
    fn an_event_concerns_its_holder_and_who_may_approve_or_review_it() {
        let policy = Policy::from_yaml(
            r#"
users: [ann, bob, cat, dan]
groups: {leads: [bob, cat], eng: [ann, bob, dan]}
environments:
  production: {protected: true, approval: {required: 1, approvers: [group:leads, ann]}}
entitlements:
  - name: db-read
    scopes: [{resource: "db:orders", actions: [read]}]
    requesters: [group:eng]
    max_duration: 1h
    approval: {required: 1, approvers: [group:leads]}
    break_glass: true
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let about = |requester: &str| json!({"details": {"requester": requester, "entitlement": "db-read"}});
        let who = |event: &str, requester: &str| -> Vec<&str> {
            ["ann", "bob", "cat", "dan"]
                .into_iter()
                .filter(|p| concerns(Some(&policy), event, &about(requester), p))
                .collect()
        };
        // Approvers hear of a request, never the requester (bob is a lead and asks himself).
        assert_eq!(who("request.opened", "ann"), ["bob", "cat"]);
        assert_eq!(who("request.pending", "bob"), ["cat"]);
        assert_eq!(who("break_glass.awaiting_review", "dan"), ["bob", "cat"]);
        // A break-glass use: its holder and its reviewers.
        assert_eq!(who("break_glass.used", "dan"), ["bob", "cat", "dan"]);
        // The outcome and the grant: the holder only.
        for e in [
            "request.approved",
            "request.denied",
            "grant.started",
            "grant.expiring",
        ] {
            assert_eq!(who(e, "ann"), ["ann"], "{e}");
        }
        // A reminder names the holder outside `details`.
        let reminder = json!({"holder": "dan", "details": {"entitlement": "db-read"}});
        assert!(concerns(Some(&policy), "grant.expiring", &reminder, "dan"));
        // A flag change request: the environment's approvers, never its proposer.
        let proposal = json!({"details": {"proposer": "bob", "environment": "production"}});
        let approvers: Vec<&str> = ["ann", "bob", "cat", "dan"]
            .into_iter()
            .filter(|p| concerns(Some(&policy), "change_request.opened", &proposal, p))
            .collect();
        assert_eq!(approvers, ["ann", "cat"]);
        // Rollouts concern nobody in particular; without a policy, no approver is known.
        assert!(who("rollout.paused", "ann").is_empty());
        assert!(!concerns(None, "request.opened", &about("ann"), "bob"));
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
