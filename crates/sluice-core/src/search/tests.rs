//! Keyset pages: every allowed key once, in order, whatever the page size; a cursor past a
//! removed key still goes on after it.

use super::*;
use crate::access::{AccessRequest, Origin, RequestStatus};
use crate::duration::Duration;
use crate::policy::Policy;
use crate::scope::{Pattern, Scope};
use chrono::TimeZone;
use proptest::prelude::*;
use std::sync::Arc;

const POLICY: &str = r#"
users: [alice, bob, carol]
service_accounts: [ci-bot]
groups:
  engineers: [alice, bob]
subject_ids:
  ID-Alice: alice
permissions:
  - to: [group:engineers]
    resource: "flag:staging/**"
    actions: ["*"]
  - to: [carol]
    resource: "db:orders"
    actions: [read]
    when: "context.office == true"
entitlements:
  - name: prod
    scopes:
      - resource: "flag:production/*"
        actions: [toggle, edit-targeting]
      - resource: "http:payments"
        actions: ["GET /v1/*"]
    requesters: [group:engineers]
    max_duration: 1h
    approval: { required: 1, approvers: [carol] }
"#;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn grant(who: &str, resource: &str, action: &str) -> AccessRequest {
    let t = now();
    AccessRequest {
        id: format!("g-{who}"),
        requester: who.into(),
        entitlement: "prod".into(),
        scopes: vec![Scope {
            resource: Pattern::parse(resource).unwrap_or_else(|e| panic!("{e}")),
            actions: vec![Pattern::parse(action).unwrap_or_else(|e| panic!("{e}"))],
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
    }
}

fn snapshot() -> AccessSnapshot {
    let policy = Policy::from_yaml(POLICY).unwrap_or_else(|e| panic!("{e}"));
    let grants = [grant("alice", "flag:production/checkout", "toggle")];
    AccessSnapshot::build(Arc::new(policy), [], grants.iter().cloned().map(Arc::new))
}

fn strs(c: &Candidates<'_>) -> Vec<String> {
    c.iter().map(|s| s.to_string()).collect()
}

#[test]
fn candidates_are_the_names_the_policy_and_grants_spell_out() {
    let snap = snapshot();
    assert_eq!(
        strs(&snap.subject_ids()),
        ["ID-Alice", "alice", "bob", "carol", "ci-bot"]
    );
    assert_eq!(strs(&snap.named_resources("db")), ["orders"]);
    assert_eq!(strs(&snap.named_resources("http")), ["payments"]);
    // The grant names a flag; the policy's flag patterns all hold wildcards.
    assert_eq!(strs(&snap.named_resources("flag")), ["production/checkout"]);
    assert_eq!(strs(&snap.named_resources("Flag")), ["production/checkout"]);
    assert!(snap.named_resources("user").is_empty());
    assert_eq!(
        strs(&snap.named_actions()),
        ["edit-targeting", "read", "toggle"]
    );
}

#[test]
fn subject_search_decides_every_id_exactly() {
    let snap = snapshot();
    let facts = Facts::default();
    let page = snap.search_subjects("user", "toggle", "flag:staging/x", now(), &facts, None, 10);
    assert_eq!(page.keys, ["ID-Alice", "alice", "bob"]);
    assert!(!page.more);
    // The condition reads the question's context.
    let ctx = serde_json::json!({"office": true});
    let facts = Facts {
        context: Some(&ctx),
        ..Facts::default()
    };
    let page = snap.search_subjects("user", "read", "db:orders", now(), &facts, None, 10);
    assert_eq!(page.keys, ["carol"]);
    let page = snap.search_subjects(
        "service_account",
        "toggle",
        "flag:staging/x",
        now(),
        &facts,
        None,
        10,
    );
    assert!(page.keys.is_empty());
}

#[test]
fn a_page_goes_on_after_its_cursor_even_when_the_cursor_is_gone() {
    let all: Candidates<'_> = ["a", "b", "c", "d", "e"]
        .into_iter()
        .map(Cow::Borrowed)
        .collect();
    let first = page(&all, None, 2, |_| true);
    assert_eq!(first.keys, ["a", "b"]);
    assert!(first.more);
    // `b` is no longer a candidate (say, removed from the policy): the next page starts after it.
    let fewer: Candidates<'_> = ["a", "c", "d", "e"]
        .into_iter()
        .map(Cow::Borrowed)
        .collect();
    let next = page(&fewer, Some("b"), 2, |_| true);
    assert_eq!(next.keys, ["c", "d"]);
    assert!(next.more);
    let last = page(&fewer, Some("d"), 2, |k| k != "e");
    assert_eq!((last.keys.len(), last.more), (0, false));
}

proptest! {
    /// Paging through any page size returns exactly the allowed keys, in order, once each.
    #[test]
    fn pages_join_to_the_whole_answer(
        keys in proptest::collection::btree_set("[a-d]{0,3}", 0..30),
        allowed in proptest::collection::vec(any::<bool>(), 30),
        limit in 1usize..7,
    ) {
        let candidates: Candidates<'_> = keys.iter().map(|k| Cow::Borrowed(k.as_str())).collect();
        let is_allowed = |k: &str| {
            let i = keys.iter().position(|x| x == k).unwrap_or(0);
            allowed[i]
        };
        let want: Vec<String> = keys.iter().filter(|k| is_allowed(k)).cloned().collect();
        let mut got = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let p = page(&candidates, after.as_deref(), limit, is_allowed);
            prop_assert!(p.keys.len() <= limit);
            got.extend(p.keys.iter().cloned());
            if !p.more {
                break;
            }
            prop_assert_eq!(p.keys.len(), limit);
            after = p.keys.last().cloned();
        }
        prop_assert_eq!(got, want);
    }
}
