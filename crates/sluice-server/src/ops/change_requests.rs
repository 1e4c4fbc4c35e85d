//! Change requests ("four-eyes" flag changes): load, ask the state machine in
//! [`sluice_core::change_request`] (which follows the one approvals model of
//! [`sluice_core::approvals`]), save with the audit entry. Applying an approved change goes
//! through the same path as a direct flag change, in the same transaction.

use crate::app::App;
use crate::caller::Caller;
use crate::ids::new_id;
use crate::ops::flag_changes::{Authority, FlagChange};
use crate::ops::readers::sees_change_request;
use crate::ops::{Missing, OpError};
use chrono::{DateTime, Utc};
use serde_json::json;
use sluice_audit::NewEntry;
use sluice_core::approvals::Vote;
use sluice_core::change_request::{self as rules, Next, Proposal, ACTOR};
use sluice_store::{StoredChangeRequest, WriteTx};

/// A change request as stored (the `body` column): the state machine's, over a flag change.
pub type ChangeRequest = rules::ChangeRequest<FlagChange>;

pub use sluice_api::flags::{ChangeRequestStatus, ChangeRequestView, ChangeVote};

/// The wire form of a change request's status; a status added to the core fails to compile here.
fn wire_status(s: rules::ChangeRequestStatus) -> ChangeRequestStatus {
    use rules::ChangeRequestStatus as S;
    match s {
        S::Pending => ChangeRequestStatus::Pending,
        S::Approved => ChangeRequestStatus::Approved,
        S::Applied => ChangeRequestStatus::Applied,
        S::Denied => ChangeRequestStatus::Denied,
        S::Cancelled => ChangeRequestStatus::Cancelled,
        S::Stale => ChangeRequestStatus::Stale,
        S::TimedOut => ChangeRequestStatus::TimedOut,
        S::Refused => ChangeRequestStatus::Refused,
    }
}

fn wire_vote(v: Vote) -> ChangeVote {
    ChangeVote {
        approver: v.approver,
        approve: v.approve,
        comment: v.comment,
        at: v.at,
    }
}

fn to_stored(cr: &ChangeRequest) -> Result<StoredChangeRequest, OpError> {
    Ok(StoredChangeRequest {
        id: cr.id.clone(),
        environment: cr.environment.clone(),
        key: cr.key.clone(),
        proposer: cr.proposer.clone(),
        status: cr.status,
        created_at: cr.created_at,
        pending_until: cr.pending_until,
        apply_at: cr.apply_at,
        body: serde_json::to_value(cr)
            .map_err(|e| OpError::Internal(format!("change request to JSON: {e}")))?,
    })
}

fn from_stored(s: StoredChangeRequest) -> Result<ChangeRequest, OpError> {
    serde_json::from_value(s.body)
        .map_err(|e| OpError::Internal(format!("stored change request {}: {e}", s.id)))
}

/// What moves a change request along.
#[derive(Debug, Clone)]
enum Step<'a> {
    Vote {
        approver: &'a str,
        approve: bool,
        comment: &'a str,
    },
    /// Background work: time-outs and due scheduled applies.
    Tick,
}

enum Attempt {
    /// Committed (or nothing to do: `None`); `true` when the flag changed.
    Done(Option<Box<ChangeRequest>>, bool),
    /// Applying was refused; the transaction was dropped (rolled back).
    Refused(OpError),
}

async fn record(
    tx: &mut WriteTx,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    cr: &ChangeRequest,
    extra: serde_json::Value,
) -> Result<(), OpError> {
    let mut details = json!({
        "environment": cr.environment,
        "key": cr.key,
        "proposer": cr.proposer,
        "change": cr.change,
        "base_revision": cr.base_revision,
        "apply_at": cr.apply_at,
        "reason": cr.reason,
        "status": cr.status.as_str(),
    });
    if let (Some(d), Some(e)) = (details.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    tx.audit(
        at,
        NewEntry::new(actor, action)
            .resource(cr.resource())
            .subject_id(&cr.id)
            .details(details),
    )
    .await?;
    Ok(())
}

impl App {
    /// Proposes a change to one flag. It is checked against the flag's revision now (a stale
    /// base is refused at once) and again when it applies.
    #[allow(clippy::too_many_arguments)]
    pub async fn propose_change(
        &self,
        caller: &Caller,
        env: &str,
        key: &str,
        change: FlagChange,
        base_revision: Option<i64>,
        apply_at: Option<DateTime<Utc>>,
        reason: &str,
    ) -> Result<ChangeRequestView, OpError> {
        let now = self.now();
        let proposal = Proposal {
            environment: env.to_owned(),
            key: key.to_owned(),
            change,
            base_revision,
            apply_at,
            reason: reason.to_owned(),
        };
        let cr = rules::propose(&self.policy(), &caller.name, proposal, new_id("cr"), now)?;
        let mut tx = self.store.begin().await?;
        // INVARIANT: `begin` serialises every audited write (every flag write is one), and the
        // read goes through the transaction, so it sees every earlier write (on SQLite, also
        // those earlier in the same batch) and the revision cannot move before this commits.
        let current = tx
            .flag_set(env)
            .await?
            .and_then(|s| s.flags.into_iter().find(|f| f.key == key))
            .map(|f| f.revision);
        if current != base_revision {
            return Err(OpError::StaleRevision {
                environment: env.to_owned(),
                key: key.to_owned(),
                current,
                base: base_revision,
                proposal: true,
            });
        }
        tx.insert_change_request(&to_stored(&cr)?).await?;
        record(
            &mut tx,
            now,
            &caller.name,
            "flag.change-proposed",
            &cr,
            json!({"pending_until": cr.pending_until}),
        )
        .await?;
        tx.commit().await?;
        self.due.note(cr.pending_until.timestamp_millis());
        Ok(self.change_request_view(cr))
    }

    /// Approves (`approve`) or denies a change request. The approval that meets the rule
    /// applies the change in the same transaction, unless it waits for its `apply_at`.
    pub async fn vote_change(
        &self,
        caller: &Caller,
        id: &str,
        approve: bool,
        comment: &str,
    ) -> Result<ChangeRequestView, OpError> {
        rules::check_comment(comment)?;
        let step = Step::Vote {
            approver: &caller.name,
            approve,
            comment: comment.trim(),
        };
        let cr = self
            .advance(id, &step)
            .await?
            .ok_or_else(|| OpError::Internal(format!("vote on {id} recorded nothing")))?;
        Ok(self.change_request_view(cr))
    }

    /// The proposer withdraws a change request that has not applied yet.
    pub async fn cancel_change(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<ChangeRequestView, OpError> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let mut cr = from_stored(
            tx.lock_change_request(id)
                .await?
                .ok_or_else(|| not_found(id))?,
        )?;
        cr.cancel(&caller.name, now)?;
        tx.update_change_request(&to_stored(&cr)?).await?;
        record(
            &mut tx,
            now,
            &caller.name,
            "flag.change-cancelled",
            &cr,
            json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(self.change_request_view(cr))
    }

    /// Background work: records time-outs once, and applies approved change requests whose
    /// time has come, exactly once. Returns how many change requests it settled.
    pub async fn tick_change_requests(&self) -> Result<usize, OpError> {
        let ids = self.store.due_change_requests(self.now(), 100).await?;
        let mut settled = 0;
        for id in ids {
            if self.advance(&id, &Step::Tick).await?.is_some() {
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// One change request, if `caller` may see it (see [`crate::ops::readers`]); otherwise
    /// the same 404 as one that does not exist.
    pub async fn change_request(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<ChangeRequestView, OpError> {
        let s = self
            .store
            .change_request(id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let cr = from_stored(s)?;
        if !sees_change_request(&self.policy(), caller, &cr.environment, &cr.proposer) {
            return Err(not_found(id).into());
        }
        Ok(self.change_request_view(cr))
    }

    /// Change requests, newest first; `status` is the status now (so `timed-out` includes
    /// ones not yet recorded as such).
    pub async fn change_requests(
        &self,
        caller: &Caller,
        env: Option<&str>,
        status: Option<&str>,
    ) -> Result<Vec<ChangeRequestView>, OpError> {
        let want = status
            .map(rules::ChangeRequestStatus::parse_filter)
            .transpose()?;
        let recorded = want.map(|w| w.recorded_as()).unwrap_or_default();
        let now = self.now();
        let policy = self.policy();
        let mut out = Vec::new();
        for s in self.store.change_requests(env, &recorded, 1000).await? {
            let cr = from_stored(s)?;
            if want.is_none_or(|w| cr.status_at(now) == w)
                && sees_change_request(&policy, caller, &cr.environment, &cr.proposer)
            {
                out.push(self.change_request_view(cr));
            }
        }
        Ok(out)
    }

    /// Pending change requests on which `who` may approve now — the check the vote itself
    /// makes (`ChangeRequest::authorize_vote`) — oldest first: an approver's inbox.
    pub async fn change_requests_awaiting(
        &self,
        who: &str,
    ) -> Result<Vec<ChangeRequestView>, OpError> {
        let recorded = rules::ChangeRequestStatus::Pending.recorded_as();
        let now = self.now();
        let policy = self.policy();
        let mut out = Vec::new();
        for s in self.store.change_requests(None, &recorded, 1000).await? {
            let cr = from_stored(s)?;
            if cr.authorize_vote(&policy, who, true, now).is_ok() {
                out.push(self.change_request_view(cr));
            }
        }
        out.reverse();
        Ok(out)
    }

    fn change_request_view(&self, cr: ChangeRequest) -> ChangeRequestView {
        let policy = self.policy();
        let tally = cr.tally(&policy);
        ChangeRequestView {
            status: wire_status(cr.status_at(self.now())),
            approvals: tally.as_ref().map_or(0, |t| t.approvals()),
            required: rules::rule_of(&policy, &cr.environment).map(|r| r.required),
            approvers: rules::rule_of(&policy, &cr.environment)
                .map(|r| r.approvers.clone())
                .unwrap_or_default(),
            id: cr.id,
            environment: cr.environment,
            key: cr.key,
            change: cr.change,
            base_revision: cr.base_revision,
            apply_at: cr.apply_at,
            reason: cr.reason,
            proposer: cr.proposer,
            created_at: cr.created_at,
            pending_until: cr.pending_until,
            votes: cr.votes.into_iter().map(wire_vote).collect(),
            applied_revision: cr.applied_revision,
            result: cr.result,
            ended_at: cr.ended_at,
            ended_by: cr.ended_by,
        }
    }

    /// Takes one step; when applying is refused, the failed transaction is rolled back and
    /// the same step is recorded with the refusal in a fresh one.
    async fn advance(&self, id: &str, step: &Step<'_>) -> Result<Option<ChangeRequest>, OpError> {
        let (cr, applied) = match self.advance_once(id, step, None).await? {
            Attempt::Done(cr, applied) => (cr.map(|c| *c), applied),
            Attempt::Refused(e) => match self.advance_once(id, step, Some(&e)).await? {
                Attempt::Done(cr, applied) => (cr.map(|c| *c), applied),
                Attempt::Refused(e) => {
                    return Err(OpError::Internal(format!(
                        "change request {id}: refusal could not be recorded: {e}"
                    )))
                }
            },
        };
        if applied {
            self.refresh_flags().await?;
        }
        // An approval that waits for its time: the background loop wakes then.
        if let Some(c) = &cr {
            if c.status == rules::ChangeRequestStatus::Approved {
                if let Some(at) = c.apply_at {
                    self.due.note(at.timestamp_millis());
                }
            }
        }
        Ok(cr)
    }

    async fn advance_once(
        &self,
        id: &str,
        step: &Step<'_>,
        refusal: Option<&OpError>,
    ) -> Result<Attempt, OpError> {
        let now = self.now();
        let policy = self.policy();
        let mut tx = self.store.begin().await?;
        let Some(stored) = tx.lock_change_request(id).await? else {
            return match step {
                Step::Tick => Ok(Attempt::Done(None, false)),
                Step::Vote { .. } => Err(not_found(id).into()),
            };
        };
        let mut cr = from_stored(stored)?;
        let mut changed = false;
        if let Step::Vote {
            approver,
            approve,
            comment,
        } = step
        {
            let proof = cr.authorize_vote(&policy, approver, *approve, now)?;
            tx.insert_change_request_vote(&cr.id, proof.approver(), *approve, now)
                .await?;
            cr.vote(proof, *approve, comment, now);
            let action = if *approve {
                "flag.change-approved"
            } else {
                "flag.change-denied"
            };
            let tally = cr.tally(&policy);
            record(
                &mut tx,
                now,
                approver,
                action,
                &cr,
                json!({
                    "comment": comment,
                    "approvals": tally.as_ref().map_or(0, |t| t.approvals()),
                    "required": tally.map(|t| t.required),
                }),
            )
            .await?;
            changed = true;
        }
        if cr.time_out(now) {
            record(&mut tx, now, ACTOR, "flag.change-timed-out", &cr, json!({})).await?;
            changed = true;
        }
        let mut applied = false;
        let outcome = match (cr.next(&policy, now), refusal) {
            (Next::Wait, _) => None,
            (Next::Scheduled, _) => {
                changed = true;
                None
            }
            (Next::Lapsed, None) => Some(Err(cr.lapsed_reason())),
            (Next::Apply { .. } | Next::Lapsed, Some(e)) => Some(Err(e.to_string())),
            (Next::Apply { approvers }, None) => {
                let authority = Authority::ChangeRequest {
                    id: cr.id.clone(),
                    approvers,
                };
                let done = self
                    .change_flag_in(
                        &mut tx,
                        ACTOR,
                        false,
                        Some(&cr.proposer),
                        &cr.environment,
                        &cr.key,
                        &cr.change,
                        cr.base_revision,
                        Some(authority),
                    )
                    .await;
                match done {
                    Ok(d) => Some(Ok(d.revision)),
                    Err(e) if e.is_failure() => return Err(e),
                    // The transaction may hold part of the change: drop it and record the
                    // refusal in a fresh one.
                    Err(e) => return Ok(Attempt::Refused(e)),
                }
            }
        };
        match outcome {
            None => {}
            Some(Ok(revision)) => {
                cr.applied(revision, now);
                applied = true;
                changed = true;
            }
            Some(Err(reason)) => {
                let stale = matches!(refusal, Some(OpError::StaleRevision { .. }));
                cr.refused(stale, reason.clone(), now);
                let action = if stale {
                    "flag.change-stale"
                } else {
                    "flag.change-refused"
                };
                record(
                    &mut tx,
                    now,
                    ACTOR,
                    action,
                    &cr,
                    json!({"code": refusal.map_or("approval_lapsed", |e| e.code()), "result": reason}),
                )
                .await?;
                changed = true;
            }
        }
        if !changed {
            // Nothing to record (another instance settled it first): roll back.
            return Ok(Attempt::Done(None, false));
        }
        tx.update_change_request(&to_stored(&cr)?).await?;
        tx.commit().await?;
        Ok(Attempt::Done(Some(Box::new(cr)), applied))
    }
}

fn not_found(id: &str) -> Missing {
    Missing::ChangeRequest(id.to_owned())
}
