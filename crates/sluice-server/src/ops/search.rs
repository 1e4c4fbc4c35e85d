//! AuthZEN search — subjects, resources and actions an evaluation would allow — as operations
//! the AuthZEN routes, the CLI's `who-can`/`what-can` and the console share.
//!
//! Candidates are what Sluice knows by name (see [`sluice_core::search`]): for subjects, the
//! policy's principals and `subject_ids`; for resources, the names the policy's scopes and the
//! live grants spell out, every flag of every environment (`flag`) and every gateway database
//! (`db`); for actions, the names the scopes spell out, the flag actions Sluice asks about
//! ([`FLAG_ACTIONS`]) and the gateway databases' role actions. Each is decided as an evaluation
//! would decide it; searches are not audited.
//!
//! A page token is opaque to clients: a digest of the search it belongs to, the page size and
//! the last key returned. The next page starts after that key (keyset paging), so a change
//! between pages never repeats a result; a token given with another search is refused.

use crate::app::App;
use crate::caller::Caller;
use crate::ops::decide::Question;
use crate::ops::{Input, OpError};
use serde_json::json;
use sha2::{Digest, Sha256};
use sluice_core::scope::{normalize, normalized};
use sluice_core::search::{page, Candidates};
use std::borrow::Cow;

/// The most results one page holds, and the size of a page when none is asked for.
pub const MAX_PAGE: usize = 1000;

/// The actions Sluice itself asks a decision about on `flag:ENV/KEY`: `toggle`, `delete` and
/// `edit-targeting` for flag changes (`ops/flag_changes.rs`), `target`, `target-self` and
/// `edit-rollout` for layers (`ops/layers.rs`).
pub const FLAG_ACTIONS: [&str; 6] = [
    "delete",
    "edit-rollout",
    "edit-targeting",
    "target",
    "target-self",
    "toggle",
];

/// What a search looks for; the question's other parts are given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    /// Subject ids of this AuthZEN type (the question's subject is ignored).
    Subject { subject_type: String },
    /// Resource ids of this type (the question's resource is ignored).
    Resource { kind: String },
    /// Action names (the question's action is ignored).
    Action,
}

impl Search {
    fn name(&self) -> &'static str {
        match self {
            Search::Subject { .. } => "subject",
            Search::Resource { .. } => "resource",
            Search::Action => "action",
        }
    }
}

/// Which page to answer: after the key a previous page's token carries, at most `limit`.
#[derive(Debug, Clone, Default)]
pub struct PageAsk {
    pub token: Option<String>,
    pub limit: Option<usize>,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Subject ids, resource ids (without `type:`) or action names, in byte order.
    pub keys: Vec<String>,
    /// Empty on the last page.
    pub next_token: String,
}

impl App {
    /// Answers one page of `search` about question `q`. Resource and action searches are
    /// questions about `q.subject`, so the caller must be that subject, an administrator or a
    /// member of `deciders`, as for an evaluation.
    pub async fn search(
        &self,
        caller: &Caller,
        search: &Search,
        q: &Question,
        ask: &PageAsk,
    ) -> Result<Found, OpError> {
        q.check_lengths()?;
        if !matches!(search, Search::Subject { .. }) {
            self.may_ask_about(caller, &q.subject)?;
        }
        let digest = digest(search, q);
        let (after, limit) = read_token(ask, &digest)?;
        // Owned, not a guard: the search may await the store (gateway databases).
        let snap = self.access.load_full();
        let now = self.now();
        let facts = q.facts();
        let found = match search {
            Search::Subject { subject_type } => snap.search_subjects(
                subject_type,
                &q.action,
                &q.resource,
                now,
                &facts,
                after.as_deref(),
                limit,
            ),
            Search::Resource { kind } => {
                let mut candidates = snap.named_resources(kind);
                self.known_resources(kind, &mut candidates).await?;
                page(&candidates, after.as_deref(), limit, |id| {
                    snap.decide_with_facts(
                        &q.subject,
                        &q.action,
                        &format!("{kind}:{id}"),
                        now,
                        &facts,
                    )
                    .allowed
                })
            }
            Search::Action => {
                let mut candidates = snap.named_actions();
                self.known_actions(&mut candidates).await?;
                page(&candidates, after.as_deref(), limit, |action| {
                    snap.decide_with_facts(&q.subject, action, &q.resource, now, &facts)
                        .allowed
                })
            }
        };
        let next_token = match (found.more, found.keys.last()) {
            (true, Some(last)) => write_token(&digest, limit, last),
            _ => String::new(),
        };
        Ok(Found {
            keys: found.keys,
            next_token,
        })
    }

    /// Resources of `kind` that exist outside the policy: flags and gateway databases.
    async fn known_resources(
        &self,
        kind: &str,
        candidates: &mut Candidates<'_>,
    ) -> Result<(), OpError> {
        match &*normalized(kind) {
            "flag" => {
                let flags = self.flags.load();
                for (env, f) in &flags.envs {
                    for key in f.snapshot.flag_keys() {
                        candidates.insert(Cow::Owned(normalize(&format!("{env}/{key}"))));
                    }
                }
            }
            "db" => {
                for d in self.gateway_databases().await? {
                    candidates.insert(Cow::Owned(normalize(&d.spec.name)));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Actions Sluice itself asks about: the flag actions and every gateway database's role
    /// actions. Offered on every resource, like the policy's own names: which resource an
    /// action makes sense on is the policy's to say, and the decision says it.
    async fn known_actions(&self, candidates: &mut Candidates<'_>) -> Result<(), OpError> {
        candidates.extend(FLAG_ACTIONS.map(Cow::Borrowed));
        for d in self.gateway_databases().await? {
            candidates.extend(
                d.spec
                    .roles
                    .iter()
                    .map(|r| Cow::Owned(normalize(&r.action))),
            );
        }
        Ok(())
    }
}

/// Bytes of search digest a token carries.
const DIGEST: usize = 8;

/// What a page token is bound to: the kind of search and every part of the question but the
/// searched one (which is a placeholder) — the standard asks that a token come back with the
/// request it was given for.
fn digest(search: &Search, q: &Question) -> [u8; DIGEST] {
    let what = match search {
        Search::Subject { subject_type } => subject_type.as_str(),
        Search::Resource { kind } => kind.as_str(),
        Search::Action => "",
    };
    let parts = json!([
        search.name(),
        what,
        q.subject,
        q.action,
        q.resource,
        q.subject_type,
        q.subject_properties,
        q.resource_properties,
        q.action_properties,
        q.context,
    ]);
    let d = Sha256::digest(parts.to_string().as_bytes());
    let mut out = [0u8; DIGEST];
    out.copy_from_slice(&d[..DIGEST]);
    out
}

/// `hex(digest ‖ limit as 2 bytes ‖ last key)`.
fn write_token(digest: &[u8; DIGEST], limit: usize, last: &str) -> String {
    let limit = u16::try_from(limit).unwrap_or(u16::MAX);
    let mut bytes = Vec::with_capacity(DIGEST + 2 + last.len());
    bytes.extend_from_slice(digest);
    bytes.extend_from_slice(&limit.to_be_bytes());
    bytes.extend_from_slice(last.as_bytes());
    hex::encode(bytes)
}

/// The key to start after and the page size: from the token when there is one (the limit may
/// be left out then, as in the standard's example), else from the request.
fn read_token(ask: &PageAsk, digest: &[u8; DIGEST]) -> Result<(Option<String>, usize), OpError> {
    let limit = match ask.limit {
        None => None,
        Some(n) if (1..=MAX_PAGE).contains(&n) => Some(n),
        Some(n) => {
            return Err(OpError::invalid(
                Input::Request,
                format!("page.limit is {n}; it must be 1 to {MAX_PAGE}"),
            ))
        }
    };
    let token = match ask.token.as_deref() {
        None | Some("") => return Ok((None, limit.unwrap_or(MAX_PAGE))),
        Some(t) => t,
    };
    let refused = || {
        OpError::invalid(
            Input::PageToken,
            "page.token is not a token this server gave (pass a previous answer's next_token as it is)",
        )
    };
    let bytes = hex::decode(token).map_err(|_| refused())?;
    if bytes.len() < DIGEST + 2 {
        return Err(refused());
    }
    let (given, rest) = bytes.split_at(DIGEST);
    if given != digest {
        return Err(OpError::invalid(
            Input::PageToken,
            "page.token belongs to another search: send every part of the first request again unchanged, with only page.token new",
        ));
    }
    let (size, key) = rest.split_at(2);
    let size = usize::from(u16::from_be_bytes([size[0], size[1]]));
    if limit.is_some_and(|l| l != size) {
        return Err(OpError::invalid(
            Input::PageToken,
            format!("page.limit changed mid-search (the token's pages hold {size}); keep it, or leave it out"),
        ));
    }
    let key = String::from_utf8(key.to_vec()).map_err(|_| refused())?;
    Ok((Some(key), size))
}
