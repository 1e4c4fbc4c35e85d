//! Explaining a decision: which standing permission or grant allowed it, or, for a deny, the
//! nearest entitlement that would allow it and the command that requests it.
//!
//! An explanation is asked for, never given by default: it names policy entries and
//! entitlements, which a plain answer does not. It reads only the snapshot the decision was
//! made from.

use crate::decision::{AccessSnapshot, Decision, GrantHint, Reason};
use crate::scope::normalized;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What a decision rests on, or what would change a deny.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Basis {
    /// Allowed by a standing permission of the policy: its place among `permissions` (from 0),
    /// whom it is given to, and its scope.
    Standing {
        #[serde(skip_serializing_if = "Option::is_none")]
        permission: Option<usize>,
        to: Vec<String>,
        scope: String,
    },
    /// Allowed by a live grant: which, of which entitlement, through which of its scopes, until when.
    Grant {
        grant_id: String,
        entitlement: String,
        scope: String,
        expires_at: DateTime<Utc>,
    },
    /// Denied; this entitlement's scopes would allow it, and the subject may request it so.
    Request {
        entitlement: String,
        command: String,
    },
    /// Denied; this entitlement's scopes would allow it, but the subject may not request it.
    NotRequestable {
        entitlement: String,
        requesters: Vec<String>,
    },
    /// Denied, and no entitlement's scopes would allow it.
    NoEntitlement,
}

/// A [`Basis`] with one sentence saying it for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    #[serde(flatten)]
    pub basis: Basis,
    pub text: String,
}

impl AccessSnapshot {
    /// Explains `decision`, made from this snapshot for `subject`, `action` and `resource`.
    /// `exact_subject` as in [`crate::condition::Facts`]: an AuthZEN subject id. Entitlement
    /// conditions (`when:`) are not evaluated for the hint: it names the first entitlement
    /// whose names cover the question and that the subject may request.
    pub fn explain(
        &self,
        decision: &Decision,
        subject: &str,
        action: &str,
        resource: &str,
        exact_subject: bool,
    ) -> Explanation {
        let principal = if exact_subject {
            std::borrow::Cow::Borrowed(self.policy().principal_for_subject_id(subject))
        } else {
            normalized(subject)
        };
        let (action, resource) = (normalized(action), normalized(resource));
        let basis = match &decision.reason {
            Reason::Standing { scope } if decision.allowed => {
                self.standing_basis(&principal, scope)
            }
            Reason::Grant {
                grant_id,
                entitlement,
                expires_at,
            } if decision.allowed => Basis::Grant {
                grant_id: grant_id.clone(),
                entitlement: entitlement.clone(),
                scope: self
                    .grant(&principal, grant_id)
                    .and_then(|g| g.scopes().iter().find(|s| s.allows(&resource, &action)))
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                expires_at: *expires_at,
            },
            _ => self.deny_basis(&principal, &action, &resource),
        };
        let text = describe(&basis, &principal);
        Explanation { basis, text }
    }

    fn standing_basis(&self, principal: &str, scope: &str) -> Basis {
        let policy = self.policy();
        let found = policy
            .doc
            .permissions
            .iter()
            .enumerate()
            .find(|(_, p)| p.scope.to_string() == scope && policy.is_in(principal, &p.to));
        Basis::Standing {
            permission: found.map(|(i, _)| i),
            to: found.map(|(_, p)| p.to.clone()).unwrap_or_default(),
            scope: scope.to_owned(),
        }
    }

    fn deny_basis(&self, principal: &str, action: &str, resource: &str) -> Basis {
        let policy = self.policy();
        let allowing = self.entitlements_allowing(action, resource);
        match GrantHint::new(policy, &allowing, principal) {
            GrantHint::Request {
                entitlement,
                command,
            } => Basis::Request {
                entitlement,
                command,
            },
            GrantHint::NotRequestable { entitlement } => Basis::NotRequestable {
                requesters: policy
                    .entitlement(&entitlement)
                    .map(|e| e.requesters.clone())
                    .unwrap_or_default(),
                entitlement,
            },
            GrantHint::NoEntitlement => Basis::NoEntitlement,
        }
    }
}

fn describe(basis: &Basis, principal: &str) -> String {
    match basis {
        Basis::Standing {
            permission,
            to,
            scope,
        } => match permission {
            Some(i) => format!(
                "allowed by standing permission #{i} of the policy ({scope}), given to {}",
                to.join(", ")
            ),
            None => format!("allowed by standing permission {scope}"),
        },
        Basis::Grant {
            grant_id,
            entitlement,
            scope,
            expires_at,
        } => format!(
            "allowed by grant {grant_id} of `{entitlement}` ({scope}) until {}",
            expires_at.to_rfc3339()
        ),
        Basis::Request {
            entitlement,
            command,
        } => format!("`{entitlement}` would allow it; request it with: {command}"),
        Basis::NotRequestable {
            entitlement,
            requesters,
        } => format!(
            "`{entitlement}` would allow it, but `{principal}` may not request it (its requesters: {})",
            requesters.join(", ")
        ),
        Basis::NoEntitlement => {
            "no entitlement would allow it; ask an administrator to add one to the policy".into()
        }
    }
}

#[cfg(test)]
mod tests;
