//! Property: any single-entry mutation is detected, at that entry's seq.

use proptest::prelude::*;
use serde_json::json;
use sluice_audit::{verify, AuditEntry, AuditSigner, ProblemKind};

use crate::{at, chain, rehash};

#[derive(Debug, Clone)]
enum Edit {
    Actor(String),
    Action(String),
    Resource(Option<String>),
    Subject(Option<String>),
    DetailsKey(String),
    AtMillis(i64),
    PrevHash(u8),
    Hash(u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        "[a-z:]{0,12}".prop_map(Edit::Actor),
        "[a-z.]{0,12}".prop_map(Edit::Action),
        proptest::option::of("[a-z:/]{0,12}").prop_map(Edit::Resource),
        proptest::option::of("[a-z_0-9]{0,8}").prop_map(Edit::Subject),
        "\\PC{1,6}".prop_map(Edit::DetailsKey),
        (1i64..10_000_000).prop_map(Edit::AtMillis),
        any::<u8>().prop_map(Edit::PrevHash),
        any::<u8>().prop_map(Edit::Hash),
    ]
}

/// Applies `edit`; false if it happens to change nothing.
fn apply(entry: &mut AuditEntry, edit: &Edit) -> bool {
    let before = entry.clone();
    match edit {
        Edit::Actor(v) => entry.actor = v.clone(),
        Edit::Action(v) => entry.action = v.clone(),
        Edit::Resource(v) => entry.resource = v.clone(),
        Edit::Subject(v) => entry.subject_id = v.clone(),
        Edit::DetailsKey(k) => {
            entry
                .details
                .as_object_mut()
                .unwrap()
                .insert(k.clone(), json!(true));
        }
        Edit::AtMillis(ms) => entry.at += chrono::Duration::milliseconds(*ms),
        Edit::PrevHash(b) => entry.prev_hash = hex::encode([*b; 32]),
        Edit::Hash(b) => entry.hash = hex::encode([*b; 32]),
    }
    *entry != before
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Without recomputing the hash, any edit is found at exactly that seq.
    #[test]
    fn an_edit_is_located_at_its_entry(n in 1usize..12, pick in any::<prop::sample::Index>(), e in edit()) {
        let signer = AuditSigner::generate();
        let mut entries = chain(n);
        let head = entries[n - 1].head();
        let checkpoints = [signer.sign(&head, at(1_000_000))];
        let k = pick.index(n);
        prop_assume!(apply(&mut entries[k], &e));
        let report = verify(&entries, &checkpoints, Some(&signer.verifying_key()), Some(&head));
        prop_assert!(!report.ok());
        let first = report.first_problem().unwrap();
        prop_assert_eq!(first.seq, k as i64 + 1, "{:?}", report.problems);
        prop_assert!(report.problems.iter().all(|p| p.seq == k as i64 + 1), "{:?}", report.problems);
    }

    /// A forger who recomputes the edited entry's hash (any field but its link) is still
    /// located at that entry: by the next entry's link, or by the final checkpoint.
    #[test]
    fn a_rehashed_edit_is_located_at_its_entry(n in 1usize..12, pick in any::<prop::sample::Index>(), e in edit()) {
        prop_assume!(!matches!(e, Edit::PrevHash(_) | Edit::Hash(_)));
        let signer = AuditSigner::generate();
        let mut entries = chain(n);
        let checkpoints = [signer.sign(&entries[n - 1].head(), at(1_000_000))];
        let k = pick.index(n);
        prop_assume!(apply(&mut entries[k], &e));
        rehash(&mut entries[k]);
        let report = verify(&entries, &checkpoints, Some(&signer.verifying_key()), None);
        let expected = if k + 1 == n { ProblemKind::CheckpointMismatch } else { ProblemKind::BrokenLink };
        let found: Vec<_> = report.problems.iter().map(|p| (p.kind, p.seq)).collect();
        prop_assert_eq!(found, vec![(expected, k as i64 + 1)]);
    }

    /// Changing an entry's seq leaves a gap where it was, and nothing is reported before
    /// the lower of its old and new seq.
    #[test]
    fn a_changed_seq_leaves_a_gap(n in 2usize..12, pick in any::<prop::sample::Index>(), new_seq in -3i64..20, rehashed: bool) {
        let mut entries = chain(n);
        let k = pick.index(n);
        let old = k as i64 + 1;
        prop_assume!(new_seq != old);
        entries[k].seq = new_seq;
        if rehashed {
            rehash(&mut entries[k]);
        }
        let head = chain(n)[n - 1].head();
        let report = verify(&entries, &[], None, Some(&head));
        prop_assert!(!report.ok());
        let located = report.problems.iter().any(|p| p.seq == old && matches!(p.kind, ProblemKind::Gap | ProblemKind::Truncated));
        prop_assert!(located, "{:?}", report.problems);
        prop_assert!(report.first_problem().unwrap().seq >= old.min(new_seq), "{:?}", report.problems);
    }

    /// Reordering without editing is reported only as out of order, at the first moved seq.
    #[test]
    fn a_swap_is_out_of_order_at_the_smaller_seq(n in 2usize..12, a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
        let (i, j) = (a.index(n), b.index(n));
        prop_assume!(i != j);
        let mut entries = chain(n);
        entries.swap(i, j);
        let report = verify(&entries, &[], None, None);
        let found: Vec<_> = report.problems.iter().map(|p| (p.kind, p.seq)).collect();
        prop_assert_eq!(found, vec![(ProblemKind::OutOfOrder, i.min(j) as i64 + 1)]);
    }
}

proptest! {
    /// A canonical string is the ECMAScript `JSON.stringify` form RFC 8785 requires, which is
    /// also serde_json's: only `"`, `\` and controls escaped, short forms where they exist,
    /// everything else (non-ASCII included) as it is.
    #[test]
    fn canonical_strings_escape_as_json_stringify(s in "(\\PC|[\\x00-\\x1f\"\\\\\u{7f}\u{2028}])*") {
        let mut out = Vec::new();
        sluice_audit::canonical::write_str(&mut out, &s);
        let expected = serde_json::to_string(&s).unwrap_or_default();
        prop_assert_eq!(String::from_utf8_lossy(&out), expected);
    }
}
