//! Who may read what. Least privilege for readers, decided here and nowhere else:
//!
//! - everyone reads their own requests, grants and change requests;
//! - an approver also reads those it may vote on: the requests for entitlements whose
//!   `approval.approvers` name it, the change requests of environments whose approval rule
//!   names it;
//! - members of the group `auditors` and administrators read everything (the policy source,
//!   every token's metadata, the audit trail);
//! - an AuthZEN question about another subject needs an administrator or a member of the group
//!   `deciders` (the services that enforce access themselves); anyone may ask about itself.
//!
//! What a reader may not see is answered as if it did not exist (404), so ids cannot be probed.

use crate::app::App;
use crate::caller::Caller;
use crate::ops::{Missing, OpError};
use sluice_core::access::AccessRequest;
use sluice_core::policy::{Entitlement, Policy};
use sluice_store::{RequestFilter, TokenRow, Visibility};

/// The group whose members read everything an administrator reads, and change nothing.
pub const AUDITORS: &str = "auditors";
/// The group whose members may ask AuthZEN questions about any subject.
pub const DECIDERS: &str = "deciders";

fn in_group(policy: &Policy, name: &str, group: &str) -> bool {
    policy.groups_of(name).iter().any(|g| g == group)
}

/// Whether `caller` reads everything: an administrator or an auditor.
pub fn reads_all(policy: &Policy, caller: &Caller) -> bool {
    caller.admin || in_group(policy, &caller.name, AUDITORS)
}

/// Administrators and auditors only.
pub fn require_auditor(policy: &Policy, caller: &Caller) -> Result<(), OpError> {
    if reads_all(policy, caller) {
        Ok(())
    } else {
        Err(OpError::Forbidden(format!(
            "this needs an administrator or a member of group `{AUDITORS}`"
        )))
    }
}

/// What a caller who does not read everything may see of access requests: its own, and those
/// for the entitlements it approves (`None`: everything).
fn request_visibility(policy: &Policy, caller: &Caller) -> Option<Visibility> {
    if reads_all(policy, caller) {
        return None;
    }
    Some(Visibility {
        principal: caller.name.clone(),
        entitlements: policy
            .doc
            .entitlements
            .iter()
            .filter(|e| policy.is_in(&caller.name, &e.approval.approvers))
            .map(|e| e.name.clone())
            .collect(),
    })
}

/// Whether `caller` may see `req` (the same rule as [`request_visibility`], for one request).
fn sees_request(policy: &Policy, caller: &Caller, req: &AccessRequest) -> bool {
    reads_all(policy, caller)
        || req.requester == caller.name
        || policy
            .entitlement(&req.entitlement)
            .is_some_and(|e| policy.is_in(&caller.name, &e.approval.approvers))
}

/// Whether `caller` may see the change requests of `environment`: its own always, the others
/// when it approves that environment's changes.
pub(crate) fn sees_change_request(
    policy: &Policy,
    caller: &Caller,
    environment: &str,
    proposer: &str,
) -> bool {
    reads_all(policy, caller)
        || proposer == caller.name
        || policy
            .doc
            .environments
            .get(environment)
            .and_then(|e| e.approval.as_ref())
            .is_some_and(|a| policy.is_in(&caller.name, &a.approvers))
}

impl App {
    /// Requests matching `filter` that `caller` may see, newest first.
    pub async fn visible_requests(
        &self,
        caller: &Caller,
        mut filter: RequestFilter,
    ) -> Result<Vec<AccessRequest>, OpError> {
        filter.visible_to = request_visibility(&self.policy(), caller);
        Ok(self.store.requests(&filter).await?)
    }

    /// One request, if `caller` may see it; otherwise the same 404 as a request that does not
    /// exist.
    pub async fn visible_request(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<AccessRequest, OpError> {
        let missing = || OpError::NotFound(Missing::Request(id.to_owned()));
        let req = self.store.request(id).await?.ok_or_else(missing)?;
        if sees_request(&self.policy(), caller, &req) {
            Ok(req)
        } else {
            Err(missing())
        }
    }

    /// Grants live now that `caller` may see, of `principal` or of everyone.
    pub async fn visible_grants(
        &self,
        caller: &Caller,
        principal: Option<&str>,
    ) -> Result<Vec<AccessRequest>, OpError> {
        let now = self.now();
        let policy = self.policy();
        let list = self.store.active_requests().await?;
        Ok(list
            .into_iter()
            .filter(|r| {
                r.is_live(now)
                    && principal.is_none_or(|p| r.requester == p)
                    && sees_request(&policy, caller, r)
            })
            .collect())
    }

    /// The entitlements `caller` may request or approve (every one for administrators and
    /// auditors): who may ask for what, and who approves it, is not everyone's business.
    pub fn visible_entitlements(&self, caller: &Caller) -> Vec<Entitlement> {
        let policy = self.policy();
        let all = reads_all(&policy, caller);
        policy
            .doc
            .entitlements
            .iter()
            .filter(|e| {
                all || policy.is_in(&caller.name, &e.requesters)
                    || policy.is_in(&caller.name, &e.approval.approvers)
            })
            .cloned()
            .collect()
    }

    /// The stored policy in force (version, source), for administrators and auditors.
    pub async fn policy_source(&self, caller: &Caller) -> Result<Option<(i64, String)>, OpError> {
        require_auditor(&self.policy(), caller)?;
        Ok(self.store.current_policy().await?)
    }

    /// Token metadata (never secrets): `caller`'s own, or `principal`'s or everyone's (`None`)
    /// for administrators and auditors.
    pub async fn visible_tokens(
        &self,
        caller: &Caller,
        principal: Option<&str>,
    ) -> Result<Vec<TokenRow>, OpError> {
        if principal != Some(caller.name.as_str()) {
            require_auditor(&self.policy(), caller)?;
        }
        Ok(self.store.tokens(principal).await?)
    }

    /// Refuses an AuthZEN question about another subject unless `caller` is an administrator
    /// or a member of `deciders`.
    pub fn may_ask_about(&self, caller: &Caller, subject: &str) -> Result<(), OpError> {
        if subject == caller.name
            || caller.admin
            || in_group(&self.policy(), &caller.name, DECIDERS)
        {
            Ok(())
        } else {
            Err(OpError::Forbidden(format!(
                "`{}` may ask only about itself; questions about other subjects need an \
                 administrator or a member of group `{DECIDERS}`",
                caller.name
            )))
        }
    }
}
