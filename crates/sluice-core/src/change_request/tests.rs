use super::*;
use chrono::TimeZone;

fn policy(required: u32) -> Policy {
    let text = format!(
        "
users: [alice, bob, carol, dave]
groups:
  leads: [bob, carol, dave]
environments:
  production:
    approval: {{ required: {required}, approvers: [group:leads] }}
    change_request_ttl: 1h
  staging: {{}}
"
    );
    match Policy::from_yaml(&text) {
        Ok(p) => p,
        Err(e) => panic!("test policy: {e}"),
    }
}

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + s, 0)
        .single()
        .unwrap_or_default()
}

fn proposal(env: &str, apply_at: Option<DateTime<Utc>>) -> Proposal<&'static str> {
    Proposal {
        environment: env.into(),
        key: "checkout".into(),
        change: "toggle",
        base_revision: Some(3),
        apply_at,
        reason: "  INC-1  ".into(),
    }
}

fn open(p: &Policy, apply_at: Option<DateTime<Utc>>) -> ChangeRequest<&'static str> {
    propose(
        p,
        "bob",
        proposal("production", apply_at),
        "cr1".into(),
        t(0),
    )
    .unwrap()
}

fn vote(p: &Policy, cr: &mut ChangeRequest<&str>, who: &str, approve: bool, now: DateTime<Utc>) {
    let proof = cr.authorize_vote(p, who, approve, now).unwrap();
    cr.vote(proof, approve, "", now);
}

#[test]
fn proposing_needs_a_rule_a_reason_and_a_future_time() {
    let p = policy(1);
    let e = propose(&p, "bob", proposal("staging", None), "x".into(), t(0)).unwrap_err();
    assert_eq!(e, ChangeRequestError::NoApprovalRule("staging".into()));
    let mut no_reason = proposal("production", None);
    no_reason.reason = " ".into();
    let e = propose(&p, "bob", no_reason, "x".into(), t(0)).unwrap_err();
    assert_eq!(e, ChangeRequestError::ReasonRequired);
    let e = propose(
        &p,
        "bob",
        proposal("production", Some(t(0))),
        "x".into(),
        t(0),
    )
    .unwrap_err();
    assert_eq!(e, ChangeRequestError::ApplyAtPast);
    let cr = open(&p, None);
    assert_eq!(cr.reason, "INC-1");
    assert_eq!(cr.pending_until, t(3600));
    assert_eq!(cr.status_at(t(3599)), ChangeRequestStatus::Pending);
    assert_eq!(cr.status_at(t(3600)), ChangeRequestStatus::TimedOut);
}

#[test]
fn the_proposer_never_approves_and_refusals_name_the_environment() {
    let p = policy(1);
    let cr = open(&p, None);
    let e = cr.authorize_vote(&p, "bob", true, t(1)).unwrap_err();
    assert!(matches!(
        e,
        ChangeRequestError::Approval(ApprovalError::SelfApproval { .. })
    ));
    let e = cr.authorize_vote(&p, "alice", true, t(1)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "you are not an approver of `change requests in production`; approvers are: group:leads"
    );
}

#[test]
fn enough_approvals_apply_at_once_or_at_the_time() {
    let p = policy(2);
    let mut cr = open(&p, None);
    vote(&p, &mut cr, "carol", true, t(1));
    assert_eq!(cr.next(&p, t(1)), Next::Wait);
    vote(&p, &mut cr, "dave", true, t(2));
    assert_eq!(
        cr.next(&p, t(2)),
        Next::Apply {
            approvers: vec!["carol".into(), "dave".into()]
        }
    );
    cr.applied(7, t(2));
    assert_eq!(cr.status, ChangeRequestStatus::Applied);
    assert_eq!(cr.result.as_deref(), Some("revision 7"));

    let p1 = policy(1);
    let mut later = open(&p1, Some(t(100)));
    vote(&p1, &mut later, "carol", true, t(1));
    assert_eq!(later.next(&p1, t(1)), Next::Scheduled);
    assert_eq!(later.status, ChangeRequestStatus::Approved);
    assert_eq!(later.next(&p1, t(50)), Next::Wait);
    // Carol left the approvers before it came due: it lapses.
    let text = "
users: [alice, bob, carol, dave]
groups:
  leads: [bob, dave]
environments:
  production:
    approval: { required: 1, approvers: [group:leads] }
";
    let p2 = Policy::from_yaml(text).unwrap();
    assert_eq!(later.next(&p2, t(100)), Next::Lapsed);
}

#[test]
fn deny_wins_even_over_an_approved_request() {
    let p = policy(1);
    let mut cr = open(&p, Some(t(100)));
    vote(&p, &mut cr, "carol", true, t(1));
    assert_eq!(cr.next(&p, t(1)), Next::Scheduled);
    assert!(
        cr.authorize_vote(&p, "dave", true, t(2)).is_err(),
        "no approving an approved one"
    );
    vote(&p, &mut cr, "dave", false, t(2));
    assert_eq!(cr.status, ChangeRequestStatus::Denied);
    assert_eq!(cr.ended_by.as_deref(), Some("dave"));
    assert_eq!(cr.next(&p, t(100)), Next::Wait);
}

#[test]
fn only_the_proposer_cancels_and_time_outs_are_recorded_once() {
    let p = policy(1);
    let mut cr = open(&p, None);
    assert_eq!(
        cr.cancel("carol", t(1)),
        Err(ChangeRequestError::NotProposer("cr1".into()))
    );
    let mut late = cr.clone();
    assert!(cr.cancel("bob", t(1)).is_ok());
    assert!(matches!(
        cr.cancel("bob", t(2)),
        Err(ChangeRequestError::WrongStatus { .. })
    ));
    assert!(!late.time_out(t(3599)));
    assert!(late.time_out(t(4000)));
    assert_eq!(late.ended_at, Some(t(3600)));
    assert!(!late.time_out(t(5000)));
}

#[test]
fn status_filters_include_unrecorded_time_outs() {
    assert_eq!(
        ChangeRequestStatus::TimedOut.recorded_as(),
        [ChangeRequestStatus::Pending, ChangeRequestStatus::TimedOut]
    );
    let e = ChangeRequestStatus::parse_filter("open").unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown status `open`; use one of: pending, approved, applied, denied, cancelled, stale, timed-out, refused"
    );
}
