//! Conditions only narrow; a policy without them decides exactly as before they existed.

use super::*;
use crate::access::Origin;
use crate::duration::Duration;
use crate::scope::Pattern;
use chrono::TimeZone;
use proptest::prelude::*;
use serde_json::json;

const SUBJECTS: [&str; 4] = ["alice", "bob", "svc", "zed"];
const RESOURCES: [&str; 5] = [
    "todo:t1",
    "todo:t2",
    "db:orders",
    "flag:production/x",
    "Todo:T1",
];
const ACTIONS: [&str; 3] = ["read", "update", "delete"];
const PATTERNS: [&str; 5] = ["todo:*", "todo:t1", "db:**", "flag:production/*", "**"];
const ACTION_PATTERNS: [&str; 3] = ["read", "update", "*"];
/// True, false, failing (missing property, not a bool) and fact-dependent conditions.
const CONDITIONS: [&str; 7] = [
    "true",
    "false",
    "resource.owner == subject.id",
    "resource.missing == 1",
    "context.ok",
    "principal.department == 'payments'",
    "1 + 1",
];

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

#[derive(Debug, Clone)]
struct World {
    /// (holders, pattern, actions, condition)
    permissions: Vec<(Vec<usize>, usize, usize, Option<usize>)>,
    /// (holder, pattern, action, condition, starts (minutes from now), length (minutes))
    grants: Vec<(usize, usize, usize, Option<usize>, i64, i64)>,
}

fn world() -> impl Strategy<Value = World> {
    let perm = (
        proptest::collection::vec(0..3usize, 1..3),
        0..PATTERNS.len(),
        0..ACTION_PATTERNS.len(),
        proptest::option::of(0..CONDITIONS.len()),
    );
    let grant = (
        0..3usize,
        0..PATTERNS.len(),
        0..ACTION_PATTERNS.len(),
        proptest::option::of(0..CONDITIONS.len()),
        -90i64..30,
        1i64..120,
    );
    (
        proptest::collection::vec(perm, 0..4),
        proptest::collection::vec(grant, 0..6),
    )
        .prop_map(|(permissions, grants)| World {
            permissions,
            grants,
        })
}

fn when(c: Option<usize>, conditions: bool) -> String {
    match c {
        Some(i) if conditions => format!("\n    when: \"{}\"", CONDITIONS[i]),
        _ => String::new(),
    }
}

/// The world's snapshot, with its conditions or without them.
fn snapshot(w: &World, conditions: bool) -> AccessSnapshot {
    let mut y = String::from(
        "users: [alice, bob]\nservice_accounts: [svc]\nattributes:\n  alice: {department: payments}\npermissions:\n",
    );
    for (to, p, a, c) in &w.permissions {
        let to: Vec<&str> = to.iter().map(|i| SUBJECTS[*i]).collect();
        y.push_str(&format!(
            "  - to: [{}]\n    resource: \"{}\"\n    actions: [\"{}\"]{}\n",
            to.join(", "),
            PATTERNS[*p],
            ACTION_PATTERNS[*a],
            when(*c, conditions)
        ));
    }
    let policy = Policy::from_yaml(&y).unwrap_or_else(|e| panic!("{e}\n{y}"));
    let grants: Vec<AccessRequest> =
        w.grants
            .iter()
            .enumerate()
            .map(|(i, (h, p, a, c, start, len))| {
                let when = match c {
                    Some(c) if conditions => {
                        crate::condition::Condition::compile(CONDITIONS[*c]).ok()
                    }
                    _ => None,
                };
                let starts_at = now() + chrono::Duration::minutes(*start);
                let scope = Scope {
                    resource: Pattern::parse(PATTERNS[*p]).unwrap_or_else(|e| panic!("{e}")),
                    actions: vec![
                        Pattern::parse(ACTION_PATTERNS[*a]).unwrap_or_else(|e| panic!("{e}"))
                    ],
                    when,
                };
                grant_request(
                    format!("g{i}"),
                    SUBJECTS[*h],
                    scope,
                    (starts_at, starts_at + chrono::Duration::minutes(*len)),
                    RequestStatus::Active,
                )
            })
            .collect();
    AccessSnapshot::build(Arc::new(policy), [], grants.iter().cloned().map(Arc::new))
}

/// The decision as it was made before conditions existed: names and windows only.
fn as_before(
    snap: &AccessSnapshot,
    subject: &str,
    action: &str,
    resource: &str,
    now: DateTime<Utc>,
    standing: bool,
) -> Decision {
    let subject = normalized(subject);
    let Some(access) = snap.by_principal.get(subject.as_ref()) else {
        return deny(Reason::UnknownPrincipal);
    };
    let (action, resource) = (normalized(action), normalized(resource));
    if standing {
        if let Some(s) = access
            .standing
            .iter()
            .find(|s| s.allows(&resource, &action))
        {
            return Decision {
                allowed: true,
                reason: Reason::Standing {
                    scope: s.to_string(),
                },
            };
        }
    }
    let mut not_live = None;
    let mut best: Option<&LiveGrant> = None;
    for g in &access.grants {
        if !g.scopes().iter().any(|s| s.allows(&resource, &action)) {
            continue;
        }
        if g.starts_at <= now && now < g.expires_at {
            if best.is_none_or(|b| g.expires_at > b.expires_at) {
                best = Some(g);
            }
            continue;
        }
        not_live = Some(Reason::GrantNotLive {
            grant_id: g.id().to_owned(),
            expires_at: g.expires_at,
        });
    }
    if let Some(g) = best {
        return Decision {
            allowed: true,
            reason: Reason::Grant {
                grant_id: g.id().to_owned(),
                entitlement: g.entitlement().to_owned(),
                expires_at: g.expires_at,
            },
        };
    }
    deny(not_live.unwrap_or(Reason::NoPermission))
}

fn facts_json(owner: usize, ok: bool) -> (serde_json::Value, serde_json::Value) {
    (json!({"owner": SUBJECTS[owner]}), json!({"ok": ok}))
}

proptest! {
    #[test]
    fn without_conditions_decisions_are_as_before(
        w in world(), s in 0..SUBJECTS.len(), a in 0..ACTIONS.len(), r in 0..RESOURCES.len(),
        owner in 0..SUBJECTS.len(), ok in any::<bool>(),
    ) {
        let snap = snapshot(&w, false);
        let (resource_props, context) = facts_json(owner, ok);
        let facts = Facts {
            exact_subject: false,
            subject_type: None,
            subject_properties: None,
            resource_properties: Some(&resource_props),
            action_properties: None,
            context: Some(&context),
        };
        let (s, a, r) = (SUBJECTS[s], ACTIONS[a], RESOURCES[r]);
        let before = as_before(&snap, s, a, r, now(), true);
        prop_assert_eq!(&snap.decide(s, a, r, now()), &before);
        prop_assert_eq!(&snap.decide_with_facts(s, a, r, now(), &facts), &before);
        prop_assert_eq!(&snap.decide_by_grant(s, a, r, now()), &as_before(&snap, s, a, r, now(), false));
    }

    #[test]
    fn conditions_never_widen_a_scope(
        w in world(), s in 0..SUBJECTS.len(), a in 0..ACTIONS.len(), r in 0..RESOURCES.len(),
        owner in 0..SUBJECTS.len(), ok in any::<bool>(),
    ) {
        let with = snapshot(&w, true);
        let without = snapshot(&w, false);
        let (resource_props, context) = facts_json(owner, ok);
        let facts = Facts {
            exact_subject: false,
            subject_type: None,
            subject_properties: None,
            resource_properties: Some(&resource_props),
            action_properties: None,
            context: Some(&context),
        };
        let (s, a, r) = (SUBJECTS[s], ACTIONS[a], RESOURCES[r]);
        let d = with.decide_with_facts(s, a, r, now(), &facts);
        if d.allowed {
            prop_assert!(without.decide(s, a, r, now()).allowed, "{:?}", d);
        }
        let d = with.decide_by_grant(s, a, r, now());
        if d.allowed {
            prop_assert!(without.decide_by_grant(s, a, r, now()).allowed, "{:?}", d);
        }
    }
}

fn one(yaml_when: &str) -> AccessSnapshot {
    let y = format!(
        "users: [alice]\nservice_accounts: [svc]\nattributes:\n  alice: {{department: payments}}\npermissions:\n  - to: [alice, svc]\n    resource: \"todo:*\"\n    actions: [update]\n    when: \"{yaml_when}\"\n"
    );
    let policy = Policy::from_yaml(&y).unwrap_or_else(|e| panic!("{e}"));
    AccessSnapshot::build(Arc::new(policy), [], [])
}

#[test]
fn a_condition_allows_denies_or_fails_with_a_reason() {
    let snap = one("resource.owner == subject.id");
    let mine = json!({"owner": "alice"});
    let theirs = json!({"owner": "bob"});
    let facts = |p| Facts {
        resource_properties: Some(p),
        ..Facts::default()
    };
    let d = snap.decide_with_facts("alice", "update", "todo:1", now(), &facts(&mine));
    assert!(d.allowed, "{d:?}");
    let d = snap.decide_with_facts("alice", "update", "todo:1", now(), &facts(&theirs));
    assert!(!d.allowed);
    assert!(matches!(d.reason, Reason::ConditionNotMet { .. }), "{d:?}");
    assert!(
        d.explain().contains("condition is false"),
        "{}",
        d.explain()
    );
    // Without the property the condition cannot be evaluated: deny, saying what was missing.
    let d = snap.decide("alice", "update", "todo:1", now());
    assert!(!d.allowed);
    assert!(d.explain().contains("owner"), "{}", d.explain());
    assert!(matches!(d.reason, Reason::ConditionFailed { .. }), "{d:?}");
    // The names still have to match first.
    let d = snap.decide_with_facts("alice", "update", "db:1", now(), &facts(&mine));
    assert_eq!(d.reason, Reason::NoPermission);
}

#[test]
fn principal_attributes_come_from_the_policy() {
    let snap = one("principal.department == 'payments' && 'payments' in principal.groups == false");
    assert!(snap.decide("alice", "update", "todo:1", now()).allowed);
    // svc has no `department` attribute: the condition fails, and says so.
    let d = snap.decide("svc", "update", "todo:1", now());
    assert!(!d.allowed);
    assert!(d.explain().contains("department"), "{}", d.explain());
}

#[test]
fn the_subject_type_must_name_the_principal_kind() {
    let snap = one("true");
    let typed = |t| Facts {
        subject_type: Some(t),
        ..Facts::default()
    };
    assert!(
        snap.decide_with_facts("alice", "update", "todo:1", now(), &typed("user"))
            .allowed
    );
    assert!(
        snap.decide_with_facts("svc", "update", "todo:1", now(), &typed("service_account"))
            .allowed
    );
    for (who, t) in [
        ("alice", "service_account"),
        ("svc", "user"),
        ("alice", "identity"),
        ("alice", "User"),
    ] {
        let d = snap.decide_with_facts(who, "update", "todo:1", now(), &typed(t));
        assert!(!d.allowed, "{who} as {t}");
        assert!(
            matches!(d.reason, Reason::SubjectTypeMismatch { .. }),
            "{d:?}"
        );
    }
}

#[test]
fn now_is_the_decision_time() {
    let snap = one("now.getHours() >= 9 && now.getHours() < 17");
    assert!(snap.decide("alice", "update", "todo:1", now()).allowed);
    let night = now() + chrono::Duration::hours(8);
    assert!(!snap.decide("alice", "update", "todo:1", night).allowed);
}

#[test]
fn authzen_subject_ids_compare_exactly() {
    let y = "users: [rick, morty]\nsubject_ids:\n  CiRmZDA2: rick\n  CiRmZDE2: morty\npermissions:\n  - to: [rick, morty]\n    resource: \"todo:*\"\n    actions: [read]\n";
    let policy = Policy::from_yaml(y).unwrap_or_else(|e| panic!("{e}"));
    let snap = AccessSnapshot::build(Arc::new(policy), [], []);
    let exact = Facts {
        exact_subject: true,
        subject_type: Some("user"),
        ..Facts::default()
    };
    let ask = |id: &str| snap.decide_with_facts(id, "read", "todo:1", now(), &exact);
    assert!(ask("CiRmZDA2").allowed);
    assert!(ask("CiRmZDE2").allowed);
    assert!(ask("rick").allowed, "a principal's own name");
    // Case variants are other ids: never folded onto a declared one.
    for other in ["cirmzda2", "CIRMZDA2", "Rick", "RICK", "CiRmZDA2 "] {
        let d = ask(other);
        assert_eq!(d.reason, Reason::UnknownPrincipal, "{other}");
    }
    // By names (the CLI, the gateways) names are still normalised.
    assert!(snap.decide("Rick", "read", "todo:1", now()).allowed);
}

#[test]
fn subject_ids_are_one_to_one() {
    let base = "users: [rick, morty]\n";
    for (ids, says) in [
        (
            "subject_ids:\n  A: rick\n  B: rick\n",
            "already has a subject id",
        ),
        ("subject_ids:\n  morty: rick\n", "another principal"),
        ("subject_ids:\n  A: nobody\n", "not declared"),
    ] {
        let e = Policy::from_yaml(&format!("{base}{ids}")).err();
        assert!(
            e.as_ref().is_some_and(|e| e.message.contains(says)),
            "{ids}: {e:?}"
        );
    }
}

/// A request of `holder` for `scope` over `window` (start, end), in `status`.
fn grant_request(
    id: String,
    holder: &str,
    scope: Scope,
    window: (DateTime<Utc>, DateTime<Utc>),
    status: RequestStatus,
) -> AccessRequest {
    let (starts_at, expires_at) = window;
    AccessRequest {
        id,
        requester: holder.into(),
        entitlement: "e".into(),
        scopes: vec![scope],
        duration: Duration::from_secs(3600),
        reason: String::new(),
        ticket: None,
        status,
        origin: Origin::Approval,
        extends: None,
        created_at: starts_at,
        pending_until: starts_at,
        starts_at: Some(starts_at),
        expires_at: Some(expires_at),
        votes: Vec::new(),
        ended_at: None,
        ended_by: None,
        end_reason: None,
        needs_review: false,
        reviewed_by: None,
    }
}

/// Request `i` of `holder`, active or ended.
fn request_state(i: usize, holder: usize, active: bool) -> Arc<AccessRequest> {
    let scope = Scope {
        resource: Pattern::parse(PATTERNS[i % PATTERNS.len()]).unwrap_or_else(|e| panic!("{e}")),
        actions: vec![Pattern::parse("read").unwrap_or_else(|e| panic!("{e}"))],
        when: None,
    };
    let status = if active {
        RequestStatus::Active
    } else {
        RequestStatus::Revoked
    };
    let window = (now(), now() + chrono::Duration::minutes(30));
    Arc::new(grant_request(
        format!("req_{i:04}"),
        SUBJECTS[holder],
        scope,
        window,
        status,
    ))
}

/// Each principal's grants, by request id.
fn held(s: &AccessSnapshot) -> std::collections::BTreeMap<String, Vec<String>> {
    s.by_principal
        .iter()
        .map(|(name, a)| {
            let mut ids: Vec<String> = a.grants.iter().map(|g| g.id().to_owned()).collect();
            ids.sort();
            (name.to_owned(), ids)
        })
        .collect()
}

proptest! {
    /// Changes applied to a snapshot, in groups of any size (one per own write, many per
    /// sync with another instance), leave it as a snapshot built from the final states, and
    /// leave the snapshot they were applied to as it was.
    #[test]
    fn changes_applied_in_any_grouping_equal_a_fresh_build(
        changes in proptest::collection::vec((0..12usize, 0..4usize, any::<bool>()), 0..40),
        cuts in proptest::collection::vec(1..6usize, 1..40),
    ) {
        // Bystanders enough for the principals to be held in several shards.
        let bystanders: Vec<String> = (0..200).map(|i| format!("user-{i}")).collect();
        let policy = Arc::new(
            Policy::from_yaml(&format!(
                "users: [alice, bob, {}]\nservice_accounts: [svc]\n",
                bystanders.join(", ")
            ))
            .unwrap_or_else(|e| panic!("{e}")),
        );
        // A request keeps its holder; `zed` is not declared, so never holds anything.
        let states: Vec<Arc<AccessRequest>> = changes
            .iter()
            .map(|(i, _, active)| request_state(*i, *i % 4, *active))
            .collect();
        let first = AccessSnapshot::build(policy.clone(), [], []);
        prop_assert!(first.by_principal.shard_count() > 1);
        let before = held(&first);
        let mut snap = first.clone_shallow();
        let mut rest = states.as_slice();
        for n in cuts.iter().cycle().take(states.len() + 1) {
            let (now, later) = rest.split_at((*n).min(rest.len()));
            snap = snap.with_requests(now);
            rest = later;
        }
        let mut last = std::collections::BTreeMap::new();
        for r in &states {
            last.insert(r.id.clone(), r.clone());
        }
        let fresh = AccessSnapshot::build(
            policy,
            [],
            last.into_values().filter(|r| r.status == RequestStatus::Active),
        );
        prop_assert_eq!(held(&snap), held(&fresh));
        prop_assert_eq!(held(&first), before);
    }
}
