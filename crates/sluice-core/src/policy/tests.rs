//! Validation refuses what can never work, naming the key and a stable code.

use super::*;

const BASE: &str = "
users: [alice, bob, carol]
groups:
  leads: [bob, carol]
  nobody: []
";

fn with(rest: &str) -> Result<Policy, PolicyError> {
    Policy::from_yaml(&format!("{BASE}{rest}"))
}

fn refused(rest: &str) -> PolicyError {
    match with(rest) {
        Ok(_) => panic!("accepted:\n{rest}"),
        Err(e) => e,
    }
}

fn entitlement(requesters: &str, approval: &str) -> String {
    format!(
        "
entitlements:
  - name: e
    scopes: [{{resource: \"db:x\", actions: [read]}}]
    requesters: {requesters}
    max_duration: 1h
    approval: {approval}
"
    )
}

#[test]
fn the_example_policy_passes() {
    let text = include_str!("../../../../examples/policy.yaml");
    assert!(Policy::from_yaml(text).is_ok());
}

#[test]
fn more_approvals_than_approvers_is_refused() {
    let e = refused(&entitlement(
        "[alice]",
        "{ required: 3, approvers: [group:leads] }",
    ));
    assert_eq!(e.kind, PolicyErrorKind::TooFewApprovers);
    assert_eq!(e.code(), "too_few_approvers");
    assert_eq!(e.path, "entitlements[0].approval.required");
    assert!(e.message.contains("needs 3 approvals"), "{e}");
    assert!(e.message.contains("bob, carol"), "{e}");
}

#[test]
fn a_principal_named_twice_counts_once() {
    let e = refused(&entitlement(
        "[alice]",
        "{ required: 3, approvers: [group:leads, bob, user:carol] }",
    ));
    assert_eq!(e.kind, PolicyErrorKind::TooFewApprovers);
    assert!(with(&entitlement(
        "[alice]",
        "{ required: 2, approvers: [group:leads, bob] }"
    ))
    .is_ok());
}

#[test]
fn an_empty_approver_group_is_refused() {
    let e = refused(&entitlement(
        "[alice]",
        "{ required: 1, approvers: [bob, group:nobody] }",
    ));
    assert_eq!(e.kind, PolicyErrorKind::EmptyApproverGroup);
    assert_eq!(e.code(), "empty_approver_group");
    assert_eq!(e.path, "entitlements[0].approval.approvers[1]");
    assert!(e.message.contains("`nobody` has no members"), "{e}");
}

#[test]
fn an_entitlement_nobody_can_request_is_refused() {
    for requesters in ["[]", "[group:nobody]"] {
        let e = refused(&entitlement(
            requesters,
            "{ required: 1, approvers: [group:leads] }",
        ));
        assert_eq!(e.kind, PolicyErrorKind::NoRequesters, "{requesters}");
        assert_eq!(e.code(), "no_requesters");
        assert_eq!(e.path, "entitlements[0].requesters");
    }
}

#[test]
fn the_only_approver_being_the_only_requester_is_refused() {
    let e = refused(&entitlement("[bob]", "{ required: 1, approvers: [bob] }"));
    assert_eq!(e.kind, PolicyErrorKind::OnlySelfApproval);
    assert_eq!(e.code(), "only_self_approval");
    assert_eq!(e.path, "entitlements[0].approval");
    assert!(
        e.message.contains("the only eligible approver, `bob`"),
        "{e}"
    );
    // Two leads, both needed, each asking: neither can ever get two others.
    let e = refused(&entitlement(
        "[group:leads]",
        "{ required: 2, approvers: [group:leads] }",
    ));
    assert_eq!(e.kind, PolicyErrorKind::OnlySelfApproval);
    // One lead needed: each lead's request is approved by the other.
    assert!(with(&entitlement(
        "[group:leads]",
        "{ required: 1, approvers: [group:leads] }"
    ))
    .is_ok());
}

#[test]
fn environment_approval_rules_follow_the_same_rules() {
    let e = refused(
        "
environments:
  production:
    protected: true
    approval: { required: 3, approvers: [group:leads] }
",
    );
    assert_eq!(e.kind, PolicyErrorKind::TooFewApprovers);
    assert_eq!(e.path, "environments.production.approval.required");
    let e = refused(
        "
environments:
  production:
    approval: { required: 1, approvers: [group:nobody] }
",
    );
    assert_eq!(e.kind, PolicyErrorKind::EmptyApproverGroup);
    assert_eq!(e.path, "environments.production.approval.approvers[0]");
}

#[test]
fn other_faults_keep_the_generic_code() {
    let e = refused(&entitlement(
        "[alice]",
        "{ required: 1, approvers: [group:ghosts] }",
    ));
    assert_eq!(e.code(), "invalid_policy");
}

#[test]
fn removals_name_what_is_taken_away() {
    let before = Policy::from_yaml(include_str!("../../../../examples/policy.yaml")).unwrap();
    let empty = Policy::from_yaml("{}").unwrap();
    let gone = before.removals(&empty);
    assert!(gone.contains(&"- user alice".to_owned()), "{gone:?}");
    assert!(
        gone.contains(&"- service account ci-bot".to_owned()),
        "{gone:?}"
    );
    assert!(
        gone.contains(&"- environment production".to_owned()),
        "{gone:?}"
    );
    assert!(
        gone.contains(&"- entitlement flags-prod-operator".to_owned()),
        "{gone:?}"
    );
    let unprotected = include_str!("../../../../examples/policy.yaml")
        .replace("protected: true", "protected: false");
    let next = Policy::from_yaml(&unprotected).unwrap();
    assert_eq!(
        before.removals(&next),
        vec!["~ environment production: no longer protected".to_owned()]
    );
    // Additions take nothing away.
    assert!(empty.removals(&before).is_empty());
    assert!(before.removals(&before).is_empty());
}

#[test]
fn a_syntax_error_names_its_line_once() {
    for (yaml, at) in [
        ("users: [alice]\nbogus: 1\n", "line 2 column 1"),
        (
            "users: [alice]\ngroups:\n  leads: [bob\n",
            "line 4 column 1",
        ),
    ] {
        let text = Policy::from_yaml(yaml).unwrap_err().to_string();
        assert_eq!(text.matches(at).count(), 1, "{text}");
        assert!(text.starts_with(at), "{text}");
    }
}

const CONDITIONAL: &str = "
permissions:
  - to: [alice]
    resource: \"todo:*\"
    actions: [update]
    when: resource.owner == subject.id
entitlements:
  - name: e
    scopes:
      - resource: \"db:x\"
        actions: [read]
        when: context.ticket.startsWith('INC-')
    requesters: [alice]
    max_duration: 1h
    approval: { required: 1, approvers: [group:leads] }
attributes:
  alice: { department: payments, roles: [editor] }
subject_types:
  identity: user
";

#[test]
fn conditions_attributes_and_subject_types_are_read() {
    let p = with(CONDITIONAL).unwrap_or_else(|e| panic!("{e}"));
    let when = |s: &Scope| s.when.as_ref().map(|c| c.source().to_owned());
    assert_eq!(
        when(&p.doc.permissions[0].scope).as_deref(),
        Some("resource.owner == subject.id")
    );
    assert_eq!(
        when(&p.doc.entitlements[0].scopes[0]).as_deref(),
        Some("context.ticket.startsWith('INC-')")
    );
    assert_eq!(
        p.attributes_of("alice").and_then(|a| a.get("department")),
        Some(&serde_json::json!("payments"))
    );
    assert_eq!(
        p.kind_for_subject_type("identity"),
        Some(PrincipalKind::User)
    );
    assert_eq!(p.kind_for_subject_type("user"), Some(PrincipalKind::User));
    assert_eq!(
        p.kind_for_subject_type("service_account"),
        Some(PrincipalKind::Service)
    );
    assert_eq!(p.kind_for_subject_type("User"), None);
}

#[test]
fn a_bad_condition_is_refused_with_its_line() {
    for (bad, says) in [
        ("resource.owner ==", "not a valid CEL expression"),
        ("owner == subject.id", "unknown variable `owner`"),
    ] {
        for (from, to) in [
            ("when: resource.owner == subject.id", bad),
            ("when: context.ticket.startsWith('INC-')", bad),
        ] {
            let text = CONDITIONAL.replace(from, &format!("when: \"{to}\""));
            let e = refused(&text);
            assert_eq!(e.kind, PolicyErrorKind::InvalidCondition, "{e}");
            assert_eq!(e.code(), "invalid_condition");
            assert!(e.path.starts_with("line "), "{e}");
            assert!(e.message.contains(says), "{e}");
            // The line is the condition's own (BASE's lines come first).
            let line = format!("{BASE}{text}")
                .lines()
                .position(|l| l.contains(&format!("when: \"{to}\"")))
                .map(|i| i + 1)
                .unwrap_or_default();
            assert_eq!(e.path, format!("line {line}"), "{e}");
        }
    }
}

#[test]
fn attributes_of_an_undeclared_principal_are_refused() {
    let e = refused("attributes:\n  zed: { a: 1 }\n");
    assert_eq!(e.path, "attributes.zed");
    let e = refused("attributes:\n  alice: { groups: [x] }\n");
    assert_eq!(e.path, "attributes.alice.groups");
    let e = refused("subject_types:\n  user: service\n");
    assert_eq!(e.path, "subject_types.user");
}

#[test]
fn identity_provider_groups_map_to_declared_groups_and_count_at_sign_in() {
    let e = refused("idp_groups:\n  sre-team: [ghosts]\n");
    assert_eq!(e.path, "idp_groups.sre-team[0]");
    // A group only the identity provider fills is not refused as empty: its members sign in.
    let source = format!(
        "groups:\n  oncall: []\n  leads: [bob]\nusers: [bob]\nidp_groups:\n  SRE Team: [oncall]\n{}",
        "entitlements:\n  - name: e\n    scopes: [{resource: \"db:x\", actions: [read]}]\n    requesters: [group:oncall]\n    max_duration: 1h\n    approval: {required: 1, approvers: [group:oncall]}\n"
    );
    let p = Policy::from_yaml(&source).expect("valid");
    assert!(!p.is_in("dana@example.com", &["group:oncall".into()]));
    let p = p.with_idp_members([
        ("dana@example.com", &["SRE Team".to_owned()][..]),
        ("eve@example.com", &["sre team".to_owned()][..]),
    ]);
    assert!(p.is_in("dana@example.com", &["group:oncall".into()]));
    assert_eq!(p.groups_of("dana@example.com"), ["oncall"]);
    // Group names of the identity provider are compared exactly.
    assert!(!p.is_in("eve@example.com", &["group:oncall".into()]));
    assert_eq!(p.kind_of("eve@example.com"), Some(PrincipalKind::User));
    // The overlay is not part of the document: a policy diff does not see it.
    let plain = Policy::from_yaml(&source).expect("valid");
    assert!(plain.diff(&p).is_empty());
}
