//! Each kind of explanation, from the snapshot the decision was made from.

use super::*;
use crate::access::{AccessRequest, Origin, RequestStatus};
use crate::duration::Duration;
use crate::policy::Policy;
use crate::scope::{Pattern, Scope};
use chrono::TimeZone;
use std::sync::Arc;

const POLICY: &str = r#"
users: [alice, bob, carol, zed]
groups:
  engineers: [alice, bob]
  leads: [carol]
subject_ids:
  ID-Bob: bob
permissions:
  - to: [carol]
    resource: "db:reports"
    actions: [read]
  - to: [group:engineers]
    resource: "flag:staging/**"
    actions: ["*"]
entitlements:
  - name: flags-prod
    scopes:
      - resource: "flag:production/**"
        actions: [toggle]
    requesters: [group:engineers]
    max_duration: 8h
    approval: { required: 1, approvers: [group:leads] }
    ticket_pattern: "INC-[0-9]+"
"#;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn snapshot() -> AccessSnapshot {
    let policy = Policy::from_yaml(POLICY).unwrap_or_else(|e| panic!("{e}"));
    let t = now();
    let grant = AccessRequest {
        id: "req-1".into(),
        requester: "alice".into(),
        entitlement: "flags-prod".into(),
        scopes: vec![Scope {
            resource: Pattern::parse("flag:production/**").unwrap_or_else(|e| panic!("{e}")),
            actions: vec![Pattern::parse("toggle").unwrap_or_else(|e| panic!("{e}"))],
            when: None,
        }],
        duration: Duration::from_secs(3600),
        reason: String::new(),
        ticket: None,
        status: RequestStatus::Active,
        origin: Origin::Approval,
        extends: None,
        created_at: t,
        pending_until: t,
        starts_at: Some(t),
        expires_at: Some(t + chrono::Duration::hours(1)),
        votes: Vec::new(),
        ended_at: None,
        ended_by: None,
        end_reason: None,
        needs_review: false,
        reviewed_by: None,
    };
    AccessSnapshot::build(Arc::new(policy), [], [Arc::new(grant)])
}

fn explain(subject: &str, action: &str, resource: &str, exact: bool) -> Explanation {
    let snap = snapshot();
    let facts = crate::condition::Facts {
        exact_subject: exact,
        ..Default::default()
    };
    let d = snap.decide_with_facts(subject, action, resource, now(), &facts);
    snap.explain(&d, subject, action, resource, exact)
}

#[test]
fn an_allow_names_the_standing_permission() {
    let e = explain("bob", "toggle", "flag:staging/x", false);
    assert_eq!(
        e.basis,
        Basis::Standing {
            permission: Some(1),
            to: vec!["group:engineers".into()],
            scope: "flag:staging/** [*]".into(),
        }
    );
    assert!(e.text.contains("standing permission #1"), "{}", e.text);
    // By an AuthZEN subject id too.
    let e = explain("ID-Bob", "toggle", "flag:staging/x", true);
    assert!(
        matches!(
            e.basis,
            Basis::Standing {
                permission: Some(1),
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn an_allow_names_the_grant_and_its_scope() {
    let e = explain("alice", "Toggle", "flag:production/Checkout", false);
    assert_eq!(
        e.basis,
        Basis::Grant {
            grant_id: "req-1".into(),
            entitlement: "flags-prod".into(),
            scope: "flag:production/** [toggle]".into(),
            expires_at: now() + chrono::Duration::hours(1),
        }
    );
    assert!(e.text.starts_with("allowed by grant req-1"), "{}", e.text);
}

#[test]
fn a_deny_names_the_entitlement_to_request() {
    let e = explain("bob", "toggle", "flag:production/checkout", false);
    assert_eq!(
        e.basis,
        Basis::Request {
            entitlement: "flags-prod".into(),
            command: "sluice access request flags-prod --for 30m --reason \"…\" --ticket TICKET"
                .into(),
        }
    );
    assert!(e
        .text
        .contains("request it with: sluice access request flags-prod"));
    // Someone who may not request it is told who may.
    let e = explain("zed", "toggle", "flag:production/checkout", false);
    assert_eq!(
        e.basis,
        Basis::NotRequestable {
            entitlement: "flags-prod".into(),
            requesters: vec!["group:engineers".into()],
        }
    );
    assert!(e.text.contains("`zed` may not request it"), "{}", e.text);
    // Nothing grants it.
    let e = explain("bob", "write", "db:orders", false);
    assert_eq!(e.basis, Basis::NoEntitlement);
}
