//! AuthZEN search: which subjects, resources or actions would an evaluation allow?
//!
//! Sluice answers from what it knows by name — the subject ids the policy declares, the
//! resource and action names its scopes and live grants spell out (and, in the server, the
//! flags and gateway databases that exist) — deciding each candidate exactly as an evaluation
//! would. A pattern's other matches are not listed: a name Sluice has never seen cannot be
//! found, only asked about.
//!
//! Results come in byte order of their key, a page at a time. A page is asked for by the last
//! key already returned (keyset paging), never by an offset: when the policy or the grants
//! change between pages, no result is returned twice and none after the cursor is skipped.

use crate::condition::Facts;
use crate::decision::AccessSnapshot;
use crate::scope::normalized;
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::ops::Bound;

/// Keys to search, each once, in byte order.
pub type Candidates<'a> = BTreeSet<Cow<'a, str>>;

/// One page of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The keys allowed, in byte order.
    pub keys: Vec<String>,
    /// Whether another allowed key follows the last one.
    pub more: bool,
}

/// The first `limit` keys of `candidates` after `after` (all of them when `None`) for which
/// `allowed` holds, and whether another follows. Candidates past the next allowed one are
/// not decided.
pub fn page(
    candidates: &Candidates<'_>,
    after: Option<&str>,
    limit: usize,
    mut allowed: impl FnMut(&str) -> bool,
) -> Page {
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut found = candidates
        .range::<str, _>((start, Bound::Unbounded))
        .map(|c| &**c)
        .filter(|c| allowed(c));
    let keys: Vec<String> = found.by_ref().take(limit).map(str::to_owned).collect();
    let more = found.next().is_some();
    Page { keys, more }
}

impl AccessSnapshot {
    /// Every subject id the policy knows: each principal's name and each `subject_ids` entry.
    pub fn subject_ids(&self) -> Candidates<'_> {
        let policy = self.policy();
        policy
            .principals()
            .map(|(n, _)| n)
            .chain(policy.doc.subject_ids.keys().map(String::as_str))
            .map(Cow::Borrowed)
            .collect()
    }

    /// The ids of the resources of type `kind` that the policy's scopes (standing permissions
    /// and entitlements) and the live grants name without a wildcard: `db:orders` is `orders`
    /// of kind `db`. Normalised, like every name.
    pub fn named_resources(&self, kind: &str) -> Candidates<'_> {
        let prefix = format!("{}:", normalized(kind));
        self.scopes()
            .map(|s| &s.resource)
            .filter(|p| p.is_literal())
            .filter_map(|p| p.as_str().strip_prefix(prefix.as_str()))
            .filter(|id| !id.is_empty())
            .map(Cow::Borrowed)
            .collect()
    }

    /// The action names the policy's scopes and the live grants spell out without a wildcard.
    pub fn named_actions(&self) -> Candidates<'_> {
        self.scopes()
            .flat_map(|s| &s.actions)
            .filter(|p| p.is_literal())
            .map(|p| Cow::Borrowed(p.as_str()))
            .collect()
    }

    /// AuthZEN subject search: the subject ids of type `subject_type` that may do `action` on
    /// `resource` at `now`, a page after `after`. Each id is decided as an evaluation decides
    /// it: compared exactly, its type checked, conditions evaluated with `facts`.
    #[expect(
        clippy::too_many_arguments,
        reason = "the question's parts and the page"
    )]
    pub fn search_subjects(
        &self,
        subject_type: &str,
        action: &str,
        resource: &str,
        now: DateTime<Utc>,
        facts: &Facts<'_>,
        after: Option<&str>,
        limit: usize,
    ) -> Page {
        let facts = Facts {
            exact_subject: true,
            subject_type: Some(subject_type),
            ..*facts
        };
        page(&self.subject_ids(), after, limit, |id| {
            self.decide_with_facts(id, action, resource, now, &facts)
                .allowed
        })
    }
}

#[cfg(test)]
mod tests;
