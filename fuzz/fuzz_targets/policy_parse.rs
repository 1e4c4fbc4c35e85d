//! The policy parser: YAML text in, a validated policy or a located error out, never a panic.
//! A policy that parses must also: build a decision snapshot and answer questions about
//! every principal; allow, by standing permission, what an unconditional literal permission
//! names; differ from itself in nothing (`diff`, `removals`); and read back the same after
//! being written out as YAML (what is stored is what was checked).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::decision::AccessSnapshot;
use sluice_core::policy::Policy;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::from_yaml(text) else {
        return;
    };
    assert!(
        policy.diff(&policy).is_empty(),
        "a policy differs from itself"
    );
    assert!(
        policy.removals(&policy).is_empty(),
        "a policy removes from itself"
    );

    let written = yaml_serde::to_string(&policy.doc).expect("a parsed policy writes out");
    let again = Policy::from_yaml(&written)
        .unwrap_or_else(|e| panic!("the written policy does not parse: {e}\n{written}"));
    assert_eq!(
        again.doc, policy.doc,
        "the policy reads back differently\n{written}"
    );

    let now = sluice_fuzz::now();
    let snapshot = AccessSnapshot::build(Arc::new(policy.clone()), ["admin"], []);
    let principals: Vec<&str> = policy.principals().map(|(n, _)| n).collect();
    for p in &policy.doc.permissions {
        let resource = p.scope.resource.as_str();
        for action in &p.scope.actions {
            for who in &principals {
                let d = snapshot.decide(who, action.as_str(), resource, now);
                let _ = d.explain();
                let literal = p.scope.resource.is_literal() && action.is_literal();
                if literal && p.scope.when.is_none() && policy.is_in(who, &p.to) {
                    assert!(d.allowed, "{who} may {action} on {resource}: {d:?}");
                }
            }
            let _ = snapshot.decide_by_grant("admin", action.as_str(), resource, now);
        }
    }
    for e in &policy.doc.entitlements {
        assert!(
            policy.entitlement(&e.name).is_some(),
            "entitlement {} not found",
            e.name
        );
    }
});
