//! Decisions: "may P do A on R now?", answered from standing permissions and live grants.
//!
//! An [`AccessSnapshot`] is immutable; the server swaps in a new one after every change, and
//! readers never wait for writers. Expiry is checked against `now` at decision time, so a
//! snapshot holding a grant whose time is up still answers "no" (invariant 1).

use crate::access::{AccessRequest, RequestStatus};
use crate::condition::{Facts, Names, PrincipalFacts};
use crate::policy::{Policy, PrincipalKind};
use crate::scope::{normalized, Scope};
use chrono::{DateTime, Utc};
use principals::Principals;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

mod principals;

/// A grant as the decision path needs it: its request, shared (with the store's cache of
/// active requests, and between snapshots), so that copying a principal's grants into a new
/// snapshot copies pointers, not every grant's scopes and names.
#[derive(Debug, Clone)]
pub struct LiveGrant {
    request: Arc<AccessRequest>,
    /// A hash of the request's id: a change looks for its grant among a principal's by this
    /// first, not by comparing every id (which share their time-ordered prefix).
    key: u64,
    pub starts_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl LiveGrant {
    pub fn id(&self) -> &str {
        &self.request.id
    }

    pub fn entitlement(&self) -> &str {
        &self.request.entitlement
    }

    pub fn scopes(&self) -> &[Scope] {
        &self.request.scopes
    }
}

/// One principal's entry. What the policy gives it is shared, so an entry copied to change
/// its grants copies pointers and the grants.
#[derive(Debug, Default, Clone)]
struct PrincipalAccess {
    standing: Arc<[Scope]>,
    grants: Vec<LiveGrant>,
    /// `None` for a principal that exists outside the policy (the first administrator).
    kind: Option<PrincipalKind>,
    groups: Arc<[String]>,
}

impl PrincipalAccess {
    fn of(policy: &Policy, name: &str) -> PrincipalAccess {
        PrincipalAccess {
            standing: policy.standing_scopes(name).into(),
            grants: Vec::new(),
            kind: policy.kind_of(name),
            groups: policy.groups_of(name).into(),
        }
    }

    /// Whether [`apply`](Self::apply) would change these grants: the request is active, or
    /// was (its grant is here). A request asked for or refused changes nothing.
    fn changed_by(&self, req: &AccessRequest) -> bool {
        if req.status == RequestStatus::Active {
            return true;
        }
        let key = grant_key(&req.id);
        self.grants.iter().any(|g| g.key == key && g.id() == req.id)
    }

    /// Applies one request's state to these grants: its grant, if any, removed; then added
    /// again if it is active.
    fn apply(&mut self, req: &Arc<AccessRequest>) {
        let key = grant_key(&req.id);
        self.grants.retain(|g| g.key != key || g.id() != req.id);
        if req.status == RequestStatus::Active {
            self.grants.extend(live_grant(req.clone()));
        }
    }

    /// A copy to change: the grants copied into a vector with room for one more, so adding
    /// a grant does not move them all a second time.
    fn copy_to_change(&self) -> PrincipalAccess {
        let mut grants = Vec::with_capacity(self.grants.len() + 1);
        grants.extend(self.grants.iter().cloned());
        PrincipalAccess {
            standing: self.standing.clone(),
            grants,
            kind: self.kind,
            groups: self.groups.clone(),
        }
    }
}

/// [`LiveGrant::key`]: the same for the same id in every snapshot of the process.
fn grant_key(id: &str) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::hash::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// Everything a decision reads, compiled once.
#[derive(Debug)]
pub struct AccessSnapshot {
    policy: Arc<Policy>,
    // Each principal's entry is shared, and so is each shard of them: a change to one
    // principal copies its shard's pointers, not every principal's or every grant.
    by_principal: Principals,
}

/// Why a decision came out as it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// Allowed by an active grant.
    Grant {
        grant_id: String,
        entitlement: String,
        expires_at: DateTime<Utc>,
    },
    /// Allowed by a standing permission in the policy.
    Standing {
        scope: String,
    },
    UnknownPrincipal,
    /// The question's `subject.type` is not the principal's kind.
    SubjectTypeMismatch {
        subject_type: String,
        principal_kind: String,
    },
    /// A scope covered the names, but its condition did not hold.
    ConditionNotMet {
        scope: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        grant_id: Option<String>,
    },
    /// A scope covered the names, but its condition could not be evaluated (a missing
    /// property, a type mismatch): deny, and say why.
    ConditionFailed {
        scope: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        grant_id: Option<String>,
        error: String,
    },
    /// A grant covered it but its window is over (or not yet open).
    GrantNotLive {
        grant_id: String,
        expires_at: DateTime<Utc>,
    },
    NoPermission,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
}

impl Decision {
    pub fn explain(&self) -> String {
        match &self.reason {
            Reason::Grant {
                grant_id,
                entitlement,
                expires_at,
            } => {
                format!(
                    "allowed by grant {grant_id} of `{entitlement}` until {}",
                    expires_at.to_rfc3339()
                )
            }
            Reason::Standing { scope } => format!("allowed by standing permission {scope}"),
            Reason::UnknownPrincipal => "unknown principal".into(),
            Reason::SubjectTypeMismatch {
                subject_type,
                principal_kind,
            } => format!(
                "subject type `{subject_type}` does not name this principal's kind ({principal_kind})"
            ),
            Reason::ConditionNotMet { scope, grant_id } => match grant_id {
                Some(g) => format!("grant {g} covers it ({scope}), but its condition is false"),
                None => format!("standing permission {scope} covers it, but its condition is false"),
            },
            Reason::ConditionFailed {
                scope,
                grant_id,
                error,
            } => match grant_id {
                Some(g) => format!(
                    "grant {g} covers it ({scope}), but its condition could not be evaluated: {error}"
                ),
                None => format!(
                    "standing permission {scope} covers it, but its condition could not be evaluated: {error}"
                ),
            },
            Reason::GrantNotLive {
                grant_id,
                expires_at,
            } => {
                format!(
                    "grant {grant_id} is not live (window ends {})",
                    expires_at.to_rfc3339()
                )
            }
            Reason::NoPermission => "no standing permission or live grant covers this".into(),
        }
    }
}

fn live_grant(request: Arc<AccessRequest>) -> Option<LiveGrant> {
    let (starts_at, expires_at) = (request.starts_at?, request.expires_at?);
    Some(LiveGrant {
        key: grant_key(&request.id),
        request,
        starts_at,
        expires_at,
    })
}

impl AccessSnapshot {
    /// Builds a snapshot from the policy and the requests that are (recorded as) active.
    /// `known` names principals that exist outside the policy (the first administrator);
    /// a grant held by anyone else the policy does not declare is left out: default deny.
    pub fn build<'a>(
        policy: Arc<Policy>,
        known: impl IntoIterator<Item = &'a str>,
        active: impl IntoIterator<Item = Arc<AccessRequest>>,
    ) -> Self {
        let mut by_principal: HashMap<String, PrincipalAccess> = HashMap::new();
        for name in known {
            by_principal.entry(name.to_owned()).or_default();
        }
        for (name, _) in policy.principals() {
            by_principal.entry(name.to_owned()).or_default();
        }
        for (name, access) in by_principal.iter_mut() {
            *access = PrincipalAccess::of(&policy, name);
        }
        for req in active {
            // INVARIANT: only declared (or known) principals have an entry; a removed
            // principal's grant never reaches a decision, even before it is recorded revoked.
            if let Some(access) = by_principal.get_mut(&req.requester) {
                access.grants.extend(live_grant(req));
            }
        }
        Self {
            policy,
            by_principal: Principals::new(by_principal),
        }
    }

    /// A copy sharing every principal's entry.
    pub fn clone_shallow(&self) -> AccessSnapshot {
        AccessSnapshot {
            policy: self.policy.clone(),
            by_principal: self.by_principal.clone(),
        }
    }

    /// This snapshot with requests' current states applied in order (each granted, ended or
    /// unchanged): what an instance does after a change, its own or another's, instead of
    /// reloading everything.
    pub fn with_requests<'a>(
        &self,
        reqs: impl IntoIterator<Item = &'a Arc<AccessRequest>>,
    ) -> AccessSnapshot {
        let mut by_principal = self.by_principal.clone();
        for req in reqs {
            // INVARIANT: `build` gave every principal the policy declares an entry; one
            // without is outside it and is given nothing (default deny).
            if !by_principal
                .get(&req.requester)
                .is_some_and(|access| access.changed_by(req))
            {
                continue;
            }
            let Some(entry) = by_principal.get_mut(&req.requester) else {
                continue;
            };
            // Copied once per principal here (the snapshot in force shares it), then changed
            // in place.
            if Arc::get_mut(entry).is_none() {
                *entry = Arc::new(entry.copy_to_change());
            }
            if let Some(access) = Arc::get_mut(entry) {
                access.apply(req);
            }
        }
        AccessSnapshot {
            policy: self.policy.clone(),
            by_principal,
        }
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Every scope the policy (standing permissions, entitlements) and the live grants hold.
    pub(crate) fn scopes(&self) -> impl Iterator<Item = &Scope> {
        let doc = &self.policy.doc;
        doc.permissions
            .iter()
            .map(|p| &p.scope)
            .chain(doc.entitlements.iter().flat_map(|e| &e.scopes))
            .chain(
                self.by_principal
                    .values()
                    .flat_map(|a| a.grants.iter().flat_map(LiveGrant::scopes)),
            )
    }

    /// Number of grants held in the snapshot.
    pub fn grant_count(&self) -> usize {
        self.by_principal.values().map(|p| p.grants.len()).sum()
    }

    /// May `subject` do `action` on `resource` at `now`? Default deny.
    pub fn decide(
        &self,
        subject: &str,
        action: &str,
        resource: &str,
        now: DateTime<Utc>,
    ) -> Decision {
        self.decide_with(subject, action, resource, now, &Facts::default(), true)
    }

    /// Like [`decide`](Self::decide), with what the question says besides the names (AuthZEN's
    /// `subject.type`, properties and `context`), which conditions read.
    pub fn decide_with_facts(
        &self,
        subject: &str,
        action: &str,
        resource: &str,
        now: DateTime<Utc>,
        facts: &Facts<'_>,
    ) -> Decision {
        self.decide_with(subject, action, resource, now, facts, true)
    }

    /// Like [`decide`](Self::decide) but only live grants count, not standing permissions:
    /// what a protected environment asks for.
    pub fn decide_by_grant(
        &self,
        subject: &str,
        action: &str,
        resource: &str,
        now: DateTime<Utc>,
    ) -> Decision {
        self.decide_with(subject, action, resource, now, &Facts::default(), false)
    }

    fn decide_with(
        &self,
        subject: &str,
        action: &str,
        resource: &str,
        now: DateTime<Utc>,
        facts: &Facts<'_>,
        standing: bool,
    ) -> Decision {
        let subject = if facts.exact_subject {
            // INVARIANT: compared exactly, never folded: a declared subject id, else the
            // principal's name as the policy holds it.
            std::borrow::Cow::Borrowed(self.policy.principal_for_subject_id(subject))
        } else {
            normalized(subject)
        };
        let Some(access) = self.by_principal.get(subject.as_ref()) else {
            return deny(Reason::UnknownPrincipal);
        };
        if let Some(t) = facts.subject_type {
            if let Some(mismatch) = self.subject_type_mismatch(t, access.kind) {
                return deny(mismatch);
            }
        }
        let (action, resource) = (normalized(action), normalized(resource));
        let names = Names {
            subject: &subject,
            action: &action,
            resource: &resource,
            now,
        };
        // Why a covering scope did not allow, when none does: a failed condition says most.
        let mut refused: Option<Reason> = None;
        if standing {
            for s in access
                .standing
                .iter()
                .filter(|s| s.allows(&resource, &action))
            {
                match self.condition_holds(s, None, &names, facts, access, subject.as_ref()) {
                    Ok(()) => {
                        return Decision {
                            allowed: true,
                            reason: Reason::Standing {
                                scope: s.to_string(),
                            },
                        }
                    }
                    Err(r) => keep_stronger(&mut refused, r),
                }
            }
        }
        let mut not_live = None;
        // Of several live grants allowing it, the one that lasts longest answers: what is
        // allowed under it (an expiring target, say) may last as long as that.
        let mut best: Option<&LiveGrant> = None;
        for g in &access.grants {
            let mut covering = g
                .scopes()
                .iter()
                .filter(|s| s.allows(&resource, &action))
                .peekable();
            if covering.peek().is_none() {
                continue;
            }
            // INVARIANT: half-open window [starts_at, expires_at), compared with the clock now.
            if !(g.starts_at <= now && now < g.expires_at) {
                not_live = Some(Reason::GrantNotLive {
                    grant_id: g.id().to_owned(),
                    expires_at: g.expires_at,
                });
                continue;
            }
            if best.is_some_and(|b| g.expires_at <= b.expires_at) {
                continue;
            }
            // INVARIANT: a condition is evaluated only for a scope whose names already match,
            // so it can only take away what the pattern allows.
            for s in covering {
                match self.condition_holds(s, Some(g.id()), &names, facts, access, &subject) {
                    Ok(()) => {
                        best = Some(g);
                        break;
                    }
                    Err(r) => keep_stronger(&mut refused, r),
                }
            }
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
        deny(refused.or(not_live).unwrap_or(Reason::NoPermission))
    }

    /// `Ok` when `scope` has no condition or its condition holds; otherwise why not.
    fn condition_holds(
        &self,
        scope: &Scope,
        grant_id: Option<&str>,
        names: &Names<'_>,
        facts: &Facts<'_>,
        access: &PrincipalAccess,
        subject: &str,
    ) -> Result<(), Reason> {
        let Some(c) = &scope.when else {
            return Ok(());
        };
        let principal = PrincipalFacts {
            id: subject,
            kind: access.kind.map_or("user", PrincipalKind::as_str),
            groups: &access.groups,
            attributes: self.policy.attributes_of(subject),
        };
        match c.evaluate(names, facts, &principal) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Reason::ConditionNotMet {
                scope: scope.to_string(),
                grant_id: grant_id.map(str::to_owned),
            }),
            Err(error) => Err(Reason::ConditionFailed {
                scope: scope.to_string(),
                grant_id: grant_id.map(str::to_owned),
                error,
            }),
        }
    }

    /// A `subject.type` that does not name the principal's kind (see
    /// [`Policy::kind_for_subject_type`]). The first administrator, declared outside the
    /// policy, is a user.
    fn subject_type_mismatch(
        &self,
        subject_type: &str,
        kind: Option<PrincipalKind>,
    ) -> Option<Reason> {
        let kind = kind.unwrap_or(PrincipalKind::User);
        if self.policy.kind_for_subject_type(subject_type) == Some(kind) {
            return None;
        }
        Some(Reason::SubjectTypeMismatch {
            subject_type: subject_type.to_owned(),
            principal_kind: kind.as_str().to_owned(),
        })
    }

    /// The grant `grant_id` of `subject`, if the snapshot still holds it (not revoked,
    /// relinquished or recorded as expired). Its window is not checked: compare `expires_at`.
    pub fn grant(&self, subject: &str, grant_id: &str) -> Option<&LiveGrant> {
        let subject = normalized(subject);
        self.by_principal
            .get(subject.as_ref())?
            .grants
            .iter()
            .find(|g| g.id() == grant_id)
    }

    /// The live grant of `subject` with a scope on `resource`, whatever the action, that lasts
    /// longest: what a connection password for a gateway database may outlive no further.
    pub fn longest_grant_on(
        &self,
        subject: &str,
        resource: &str,
        now: DateTime<Utc>,
    ) -> Option<&LiveGrant> {
        let (subject, resource) = (normalized(subject), normalized(resource));
        self.by_principal
            .get(subject.as_ref())?
            .grants
            .iter()
            .filter(|g| g.starts_at <= now && now < g.expires_at)
            .filter(|g| g.scopes().iter().any(|s| s.resource.matches(&resource)))
            .max_by_key(|g| g.expires_at)
    }

    /// Entitlements with a scope on `resource`, whatever the action — the hint given to
    /// someone refused access to it. Depends only on the policy, never on what exists.
    pub fn entitlements_for_resource(&self, resource: &str) -> Vec<&crate::policy::Entitlement> {
        let resource = normalized(resource);
        self.policy
            .doc
            .entitlements
            .iter()
            .filter(|e| e.scopes.iter().any(|s| s.resource.matches(&resource)))
            .collect()
    }

    /// What to tell someone refused `resource` for want of a grant: the command that requests
    /// the first entitlement covering it, with every option that entitlement requires.
    pub fn request_hint(&self, resource: &str) -> String {
        match self.entitlements_for_resource(resource).first() {
            Some(e) => {
                let ticket = if e.ticket_pattern.is_some() {
                    " --ticket …"
                } else {
                    ""
                };
                let reason = match e.reason {
                    crate::policy::ReasonRule::Required => " --reason \"…\"",
                    crate::policy::ReasonRule::Optional => "",
                };
                format!(
                    "request access: sluice access request {} --for 1h{ticket}{reason}",
                    e.name
                )
            }
            None => format!("no entitlement covers {resource}; ask an administrator"),
        }
    }

    /// Entitlements whose scopes would allow `action` on `resource` — for "how do I get this" hints.
    pub fn entitlements_allowing(&self, action: &str, resource: &str) -> Vec<String> {
        let (action, resource) = (normalized(action), normalized(resource));
        self.policy
            .doc
            .entitlements
            .iter()
            .filter(|e| e.scopes.iter().any(|s| s.allows(&resource, &action)))
            .map(|e| e.name.clone())
            .collect()
    }
}

fn deny(reason: Reason) -> Decision {
    Decision {
        allowed: false,
        reason,
    }
}

/// Keeps the refusal that says most: a condition that failed over one that was false.
fn keep_stronger(kept: &mut Option<Reason>, r: Reason) {
    let failed = |r: &Reason| matches!(r, Reason::ConditionFailed { .. });
    if kept.as_ref().is_none_or(|k| !failed(k) && failed(&r)) {
        *kept = Some(r);
    }
}

/// How someone refused for want of a grant could get one: the first entitlement granting it
/// that they may request, with the command (for at most 30 minutes or the entitlement's cap,
/// with a ticket when it asks for one). Depends only on the policy. Displays as the tail of a
/// refusal message (`; request it with: …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantHint {
    Request {
        entitlement: String,
        command: String,
    },
    NotRequestable {
        entitlement: String,
    },
    NoEntitlement,
}

impl GrantHint {
    /// `allowing`: the entitlements whose scopes allow it ([`AccessSnapshot::entitlements_allowing`]).
    pub fn new(policy: &Policy, allowing: &[String], who: &str) -> GrantHint {
        let Some(first) = allowing.first() else {
            return GrantHint::NoEntitlement;
        };
        let Some(ent) = allowing
            .iter()
            .filter_map(|name| policy.entitlement(name))
            .find(|e| policy.is_in(who, &e.requesters))
        else {
            return GrantHint::NotRequestable {
                entitlement: first.clone(),
            };
        };
        let half_hour = crate::duration::Duration::from_secs(30 * 60);
        let duration = ent.max_duration.min(half_hour);
        let ticket = if ent.ticket_pattern.is_some() {
            " --ticket TICKET"
        } else {
            ""
        };
        GrantHint::Request {
            entitlement: ent.name.clone(),
            command: format!(
                "sluice access request {} --for {duration} --reason \"…\"{ticket}",
                ent.name
            ),
        }
    }
}

impl std::fmt::Display for GrantHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GrantHint::Request { command, .. } => write!(f, "; request it with: {command}"),
            GrantHint::NotRequestable { entitlement } => write!(
                f,
                "; `{entitlement}` grants it, but you may not request it — ask one of its requesters or an administrator"
            ),
            GrantHint::NoEntitlement => f.write_str(
                "; no entitlement grants it — ask an administrator to add one to the policy",
            ),
        }
    }
}

#[cfg(test)]
mod tests;
