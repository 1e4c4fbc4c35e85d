use super::*;
use chrono::TimeZone;
use proptest::prelude::*;

const PEOPLE: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

fn policy() -> Policy {
    let text = "
users: [alice, bob, carol, dave, erin]
groups:
  leads: [bob, carol, dave]
";
    match Policy::from_yaml(text) {
        Ok(p) => p,
        Err(e) => panic!("test policy: {e}"),
    }
}

fn rule(required: u32) -> ApprovalRule {
    ApprovalRule {
        required,
        approvers: vec!["group:leads".into()],
    }
}

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + s, 0)
        .single()
        .unwrap_or_default()
}

fn vote(who: &str, approve: bool) -> Vote {
    Vote {
        approver: who.into(),
        approve,
        comment: String::new(),
        at: t(0),
    }
}

fn ballot<'a>(votes: &'a [Vote]) -> Ballot<'a> {
    Ballot {
        id: "r1",
        requester: "bob",
        votes,
    }
}

#[test]
fn the_requester_never_votes_even_as_an_approver() {
    let (p, r) = (policy(), rule(1));
    let rule = Rule {
        subject: Subject::Entitlement("e".into()),
        rule: &r,
    };
    let e = authorize(&p, &rule, ballot(&[]), "bob").unwrap_err();
    assert_eq!(e.code(), "self_approval");
    assert_eq!(
        e.to_string(),
        "you cannot approve or deny your own request; ask someone in: group:leads"
    );
}

#[test]
fn refusals_name_what_is_approved() {
    let (p, r) = (policy(), rule(1));
    let env = Rule {
        subject: Subject::ChangeRequests {
            environment: "production".into(),
        },
        rule: &r,
    };
    let e = authorize(&p, &env, ballot(&[]), "alice").unwrap_err();
    assert_eq!(
        e.to_string(),
        "you are not an approver of `change requests in production`; approvers are: group:leads"
    );
    assert!(e.is_forbidden());
    let votes = [vote("carol", true)];
    let e = authorize(&p, &env, ballot(&votes), "carol").unwrap_err();
    assert_eq!(e, ApprovalError::AlreadyVoted("r1".into()));
    assert!(!e.is_forbidden());
}

#[test]
fn n_of_m_counts_distinct_current_approvers() {
    let (p, r) = (policy(), rule(2));
    let rule = Rule {
        subject: Subject::Entitlement("e".into()),
        rule: &r,
    };
    let mut votes = Vec::new();
    let proof = authorize(&p, &rule, ballot(&votes), "carol").unwrap();
    proof.cast(&mut votes, true, "ok".into(), t(1));
    // An approval from someone who is not an approver (any more) does not count.
    votes.push(vote("alice", true));
    let tally1 = tally(&p, &rule, ballot(&votes));
    assert_eq!(tally1.approvers, ["carol"]);
    assert!(!tally1.met());
    let proof = authorize(&p, &rule, ballot(&votes), "dave").unwrap();
    proof.cast(&mut votes, true, String::new(), t(2));
    assert!(tally(&p, &rule, ballot(&votes)).met());
}

#[test]
fn time_out_is_half_open() {
    assert!(!timed_out(t(10), t(9)));
    assert!(timed_out(t(10), t(10)));
}

fn arb_votes() -> impl Strategy<Value = Vec<(usize, bool)>> {
    prop::collection::vec((0..PEOPLE.len(), any::<bool>()), 0..12)
}

proptest! {
    /// Casting every vote the model allows, in any order: nobody votes twice, the requester
    /// never votes, only approvers vote, one eligible deny means not met, and "met" is exactly
    /// "enough distinct approvals and no deny".
    #[test]
    fn the_rules_hold_for_any_sequence(attempts in arb_votes(), required in 1u32..4) {
        let (p, r) = (policy(), rule(required));
        let rule = Rule { subject: Subject::Entitlement("e".into()), rule: &r };
        let mut votes: Vec<Vote> = Vec::new();
        for (i, (who, approve)) in attempts.into_iter().enumerate() {
            let who = PEOPLE[who];
            let already = votes.iter().any(|v| v.approver == who);
            match authorize(&p, &rule, ballot(&votes), who) {
                Ok(proof) => {
                    prop_assert!(who != "bob");
                    prop_assert!(p.is_in(who, &r.approvers));
                    prop_assert!(!already);
                    proof.cast(&mut votes, approve, String::new(), t(i as i64));
                }
                Err(ApprovalError::SelfApproval { .. }) => prop_assert_eq!(who, "bob"),
                Err(ApprovalError::NotAnApprover { .. }) => {
                    prop_assert!(!p.is_in(who, &r.approvers))
                }
                Err(ApprovalError::AlreadyVoted(_)) => prop_assert!(already),
            }
        }
        let mut seen: Vec<&str> = votes.iter().map(|v| v.approver.as_str()).collect();
        seen.sort_unstable();
        let n = seen.len();
        seen.dedup();
        prop_assert_eq!(seen.len(), n, "one vote per approver");
        let tally = tally(&p, &rule, ballot(&votes));
        let denied = votes.iter().any(|v| !v.approve);
        let approvals = votes.iter().filter(|v| v.approve).count();
        prop_assert_eq!(tally.denied, denied);
        prop_assert_eq!(tally.approvals(), approvals);
        prop_assert_eq!(tally.met(), !denied && approvals >= required as usize);
    }

    /// Approvals from people who are not approvers now never count, however they got there.
    #[test]
    fn only_current_approvers_count(raw in arb_votes()) {
        let (p, r) = (policy(), rule(1));
        let rule = Rule { subject: Subject::Entitlement("e".into()), rule: &r };
        let votes: Vec<Vote> = raw.into_iter().map(|(w, a)| vote(PEOPLE[w], a)).collect();
        let tally = tally(&p, &rule, ballot(&votes));
        for a in &tally.approvers {
            prop_assert!(a != "bob" && p.is_in(a, &r.approvers));
        }
    }
}
