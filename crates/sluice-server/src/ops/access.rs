use crate::app::App;
use crate::caller::Caller;
use crate::ids::new_id;
use crate::ops::{Missing, OpError};
use serde_json::json;
use sluice_audit::NewEntry;
use sluice_core::access::{
    self, AccessRequest, ApprovalProgress, Origin, RequestInput, RequestStatus,
};
use sluice_store::WriteTx;

/// How a request is ended by a person.
#[derive(Debug, Clone)]
pub enum Ending {
    Cancel,
    Revoke { reason: String },
    Relinquish,
    Review,
}

fn resource(req: &AccessRequest) -> String {
    format!("entitlement:{}", req.entitlement)
}

fn summary(req: &AccessRequest) -> serde_json::Value {
    json!({
        "entitlement": req.entitlement,
        "requester": req.requester,
        "scopes": req.scopes,
        "duration_secs": req.duration.as_secs(),
        "reason": req.reason,
        "ticket": req.ticket,
        "origin": req.origin.as_str(),
        "extends": req.extends,
        "status": req.status.as_str(),
        "starts_at": req.starts_at,
        "expires_at": req.expires_at,
    })
}

pub(crate) async fn record(
    tx: &mut WriteTx,
    at: chrono::DateTime<chrono::Utc>,
    actor: &str,
    action: &str,
    req: &AccessRequest,
    extra: serde_json::Value,
) -> Result<(), OpError> {
    let mut details = summary(req);
    if let (Some(d), Some(e)) = (details.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    tx.audit(
        at,
        NewEntry::new(actor, action)
            .resource(resource(req))
            .subject_id(&req.id)
            .details(details),
    )
    .await?;
    Ok(())
}

impl App {
    /// More time on grant `id`: a new request for the same entitlement and scopes, linked to
    /// it and approved under the same rules (its ticket kept unless another is given).
    pub async fn extend_request(
        &self,
        caller: &Caller,
        id: &str,
        duration: Option<sluice_core::duration::Duration>,
        reason: String,
        ticket: Option<String>,
    ) -> Result<AccessRequest, OpError> {
        let old = self
            .store
            .request(id)
            .await?
            .ok_or_else(|| Missing::Request(id.to_owned()))?;
        let input = RequestInput {
            entitlement: old.entitlement,
            scopes: Some(old.scopes),
            duration,
            reason,
            ticket: ticket.or(old.ticket),
            break_glass: false,
        };
        self.open_request(caller, input, Some(id)).await
    }

    /// Opens a request (or an extension of `extends`). Auto-approval and break-glass come back active.
    pub async fn open_request(
        &self,
        caller: &Caller,
        input: RequestInput,
        extends: Option<&str>,
    ) -> Result<AccessRequest, OpError> {
        let policy = self.policy();
        let mut tx = self.store.begin().await?;
        let now = self.now();
        let old = match extends {
            Some(id) => Some(
                tx.lock_request(id)
                    .await?
                    .ok_or_else(|| Missing::Grant(id.to_owned()))?,
            ),
            None => None,
        };
        let req = access::open(
            &policy,
            &caller.actor(),
            input,
            old.as_ref(),
            new_id("req"),
            now,
        )?;
        tx.insert_request(&req).await?;
        let action = if req.extends.is_some() {
            "access.extension-requested"
        } else {
            "access.requested"
        };
        record(&mut tx, now, &caller.name, action, &req, json!({})).await?;
        match req.origin {
            Origin::AutoApproved => {
                record(
                    &mut tx,
                    now,
                    "system:policy",
                    "access.auto-approved",
                    &req,
                    json!({}),
                )
                .await?
            }
            Origin::BreakGlass => {
                record(
                    &mut tx,
                    now,
                    &caller.name,
                    "access.break-glass",
                    &req,
                    json!({"needs_review": true}),
                )
                .await?
            }
            Origin::Approval => {}
        }
        if req.status == RequestStatus::Active {
            record(
                &mut tx,
                now,
                "system:policy",
                "access.granted",
                &req,
                json!({}),
            )
            .await?;
        }
        let rev = if req.status == RequestStatus::Active {
            Some(tx.bump_grant(&req.id).await?)
        } else {
            None
        };
        tx.commit().await?;
        tracing::info!(request_id = %req.id, requester = %req.requester, status = req.status.as_str(), "request {} opened by {}", req.id, req.requester);
        if let Some(rev) = rev {
            self.apply_local(&[&req], rev.get()).await;
        }
        Ok(req)
    }

    /// Approves or denies. Exactly one approval activates the grant, however many race.
    ///
    /// On PostgreSQL a vote on a request this instance wrote starts from the request as it
    /// wrote it, not from a locked read (a round trip while every other writer of the
    /// instance waits for the batch); its write is guarded on the request being stored so
    /// still, and should it have changed since, the vote is made again from a locked read.
    pub async fn vote(
        &self,
        caller: &Caller,
        id: &str,
        approve: bool,
        comment: String,
    ) -> Result<(AccessRequest, Option<ApprovalProgress>), OpError> {
        let seen = self
            .store
            .seen_request(id)
            .filter(|s| s.request.extends.is_none());
        if seen.is_some() {
            match self
                .vote_from(caller, id, approve, comment.clone(), seen)
                .await
            {
                Err(OpError::Store(sluice_store::StoreError::Stale(_))) => {}
                done => return done,
            }
        }
        self.vote_from(caller, id, approve, comment, None).await
    }

    /// A vote from `seen`, or else from the request read and locked in the transaction.
    async fn vote_from(
        &self,
        caller: &Caller,
        id: &str,
        approve: bool,
        comment: String,
        seen: Option<sluice_store::SeenRequest>,
    ) -> Result<(AccessRequest, Option<ApprovalProgress>), OpError> {
        let policy = self.policy();
        let actor = caller.actor();
        let mut tx = self.store.begin().await?;
        let now = self.now();
        let mut req = match &seen {
            Some(s) => s.request.clone(),
            None => tx
                .lock_request(id)
                .await?
                .ok_or_else(|| Missing::Request(id.to_owned()))?,
        };
        let proof = access::authorize_vote(&policy, &req, &actor, now)?;
        let progress = if approve {
            let extends = match &req.extends {
                Some(e) => tx.lock_request(e).await?,
                None => None,
            };
            let p = access::approve(
                &policy,
                &mut req,
                proof,
                comment.clone(),
                extends.as_ref(),
                now,
            );
            record(
                &mut tx,
                now,
                &caller.name,
                "access.approved",
                &req,
                json!({"comment": comment, "approvals": p.approvals, "required": p.required}),
            )
            .await?;
            if p.activated {
                record(
                    &mut tx,
                    now,
                    "system:policy",
                    "access.granted",
                    &req,
                    json!({}),
                )
                .await?;
            }
            Some(p)
        } else {
            access::deny(&mut req, proof, comment.clone(), now);
            record(
                &mut tx,
                now,
                &caller.name,
                "access.denied",
                &req,
                json!({"comment": comment}),
            )
            .await?;
            None
        };
        match &seen {
            Some(s) => tx.vote_on_seen(s, &req).await?,
            None => {
                if let Some(v) = req.votes.last() {
                    tx.insert_vote(&req.id, v).await?;
                }
                tx.update_request(&req).await?;
            }
        }
        let rev = if req.status == RequestStatus::Active {
            Some(tx.bump_grant(&req.id).await?)
        } else {
            None
        };
        tx.commit().await?;
        tracing::info!(request_id = %req.id, approver = %caller.name, approve, "vote on {} by {}", req.id, caller.name);
        if let Some(rev) = rev {
            self.apply_local(&[&req], rev.get()).await;
        }
        Ok((req, progress))
    }

    /// Cancel, revoke, relinquish or review. Takes effect for the very next decision.
    pub async fn end_request(
        &self,
        caller: &Caller,
        id: &str,
        ending: Ending,
    ) -> Result<AccessRequest, OpError> {
        let policy = self.policy();
        let actor = caller.actor();
        let mut tx = self.store.begin().await?;
        let now = self.now();
        let mut req = tx
            .lock_request(id)
            .await?
            .ok_or_else(|| Missing::Request(id.to_owned()))?;
        let action = match &ending {
            Ending::Cancel => {
                access::cancel(&mut req, &actor, now)?;
                "access.cancelled"
            }
            Ending::Revoke { reason } => {
                access::revoke(&policy, &mut req, &actor, reason.clone(), now)?;
                "access.revoked"
            }
            Ending::Relinquish => {
                access::relinquish(&mut req, &actor, now)?;
                "access.relinquished"
            }
            Ending::Review => {
                access::review(&policy, &mut req, &actor)?;
                "access.reviewed"
            }
        };
        tx.update_request(&req).await?;
        record(
            &mut tx,
            now,
            &caller.name,
            action,
            &req,
            json!({"end_reason": req.end_reason}),
        )
        .await?;
        let rev = tx.bump_grant(&req.id).await?;
        tx.commit().await?;
        tracing::info!(request_id = %req.id, by = %caller.name, action, "{action} {} by {}", req.id, caller.name);
        self.apply_local(&[&req], rev.get()).await;
        Ok(req)
    }

    /// Records time-outs and expiries that are due, each exactly once. Decisions never wait
    /// for this: they compare with the clock themselves.
    pub async fn reap(&self) -> Result<usize, OpError> {
        let ids = self.store.lapsed_request_ids(self.now(), 500).await?;
        let mut done = 0;
        for id in ids {
            let mut tx = self.store.begin().await?;
            let now = self.now();
            let Some(mut req) = tx.lock_request(&id).await? else {
                continue;
            };
            // Re-checked under the lock: another reaper (or instance) may have recorded it.
            let Some(status) = access::lapse(&mut req, now) else {
                continue;
            };
            tx.update_request(&req).await?;
            let action = match status {
                RequestStatus::TimedOut => "access.timed-out",
                _ => "access.expired",
            };
            record(&mut tx, now, "system:reaper", action, &req, json!({})).await?;
            let rev = tx.bump_grant(&req.id).await?;
            tx.commit().await?;
            tracing::info!(request_id = %req.id, status = status.as_str(), "recorded {} as {}", req.id, status.as_str());
            self.apply_local(&[&req], rev.get()).await;
            done += 1;
        }
        Ok(done)
    }
}
