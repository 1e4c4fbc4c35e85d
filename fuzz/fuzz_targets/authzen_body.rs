//! AuthZEN request bodies, read as the server reads them — the JSON limits and NUL refusal
//! of `json::parse`, then `routes::authzen::question` (Access Evaluation) and
//! `read_evaluations` (Access Evaluations) — and each question that is accepted decided
//! against a small policy with conditions, as `App::decide` does (name lengths first).
//! Besides "no panic": no accepted question holds a NUL anywhere (the store cannot hold one);
//! an unknown subject is never allowed; the same question gets the same answer twice.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sluice_core::decision::AccessSnapshot;
use sluice_core::policy::Policy;
use sluice_server::json::parse;
use sluice_server::ops::decide::Question;
use sluice_server::routes::authzen::{
    question, read_evaluations, EvaluationRequest, Evaluations, EvaluationsRequest,
};
use std::sync::{Arc, OnceLock};

fn snapshot() -> &'static AccessSnapshot {
    static S: OnceLock<AccessSnapshot> = OnceLock::new();
    S.get_or_init(|| {
        let policy = Policy::from_yaml(sluice_fuzz::POLICY).expect("the fixture policy parses");
        AccessSnapshot::build(Arc::new(policy), ["admin"], [])
    })
}

fn no_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.contains('\0'),
        Value::Array(a) => a.iter().all(no_nul),
        Value::Object(m) => m.iter().all(|(k, v)| !k.contains('\0') && no_nul(v)),
        _ => true,
    }
}

fn decide(q: &Question) {
    let names = [&q.subject, &q.action, &q.resource];
    assert!(
        names.iter().all(|n| !n.contains('\0')),
        "NUL in a name: {q:?}"
    );
    assert!(
        q.subject_type.as_deref().is_none_or(|t| !t.contains('\0')),
        "NUL in a type"
    );
    let values = [
        &q.subject_properties,
        &q.resource_properties,
        &q.action_properties,
        &q.context,
    ];
    assert!(
        values.iter().all(|v| no_nul(v)),
        "NUL in properties or context: {q:?}"
    );
    if q.check_lengths().is_err() {
        return;
    }
    let snap = snapshot();
    let now = sluice_fuzz::now();
    let d = snap.decide_with_facts(&q.subject, &q.action, &q.resource, now, &q.facts());
    let _ = d.explain();
    let policy = snap.policy();
    let known = policy.declares(policy.principal_for_subject_id(&q.subject));
    assert!(
        known || !d.allowed,
        "an unknown subject was allowed: {q:?} {d:?}"
    );
    let again = snap.decide_with_facts(&q.subject, &q.action, &q.resource, now, &q.facts());
    assert_eq!(again, d, "the same question, another answer");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse::<EvaluationRequest>(data) {
        if let Ok(q) = question(&req) {
            decide(&q);
        }
    }
    if let Ok(req) = parse::<EvaluationsRequest>(data) {
        match read_evaluations(req) {
            Ok(Evaluations::Single(q)) => decide(&q),
            Ok(Evaluations::Batch { items, .. }) => items.iter().flatten().for_each(decide),
            Err(_) => {}
        }
    }
});
