//! Change requests ("four-eyes" flag changes): instead of holding a grant, a user proposes a
//! change to a flag; it applies when the environment's approval rule is met — at once, or at
//! the time it names. The rules are those of access approvals: nobody approves their own
//! proposal (administrators included), an approver must be eligible at approval time, each
//! approver counts once, and one deny ends it. A proposal whose flag changed underneath it
//! is refused as `stale`; one that waits longer than the environment allows times out.
//!
//! ```text
//! pending ──(enough approvals, due)──▶ applied | stale | refused
//!    │   └─(enough approvals, apply_at later)──▶ approved ──(apply_at)──▶ applied | stale | refused
//!    └──▶ denied | cancelled | timed-out          approved ──▶ denied | cancelled
//! ```

use crate::app::{new_id, App};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::ops::flag_changes::{Authority, FlagChange};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sluice_audit::NewEntry;
use sluice_core::access::AccessError;
use sluice_core::policy::{ApprovalRule, Policy};
use sluice_store::{StoredChangeRequest, WriteTx};

/// The actor that applies, times out and refuses change requests.
pub const ACTOR: &str = "system:change-request";

const MAX_REASON: usize = 2000;
const MAX_COMMENT: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeRequestStatus {
    /// Waiting for approvals.
    Pending,
    /// Approved; waiting for its `apply_at`.
    Approved,
    Applied,
    Denied,
    Cancelled,
    /// The flag changed underneath it: its base revision no longer matched.
    Stale,
    TimedOut,
    /// Could not be applied for another reason (e.g. the change is no longer valid, or the
    /// approvals no longer meet the rule when its time came).
    Refused,
}

impl ChangeRequestStatus {
    pub const ALL: [Self; 8] = [
        Self::Pending,
        Self::Approved,
        Self::Applied,
        Self::Denied,
        Self::Cancelled,
        Self::Stale,
        Self::TimedOut,
        Self::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Applied => "applied",
            Self::Denied => "denied",
            Self::Cancelled => "cancelled",
            Self::Stale => "stale",
            Self::TimedOut => "timed-out",
            Self::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// One approver's vote on a change request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeVote {
    pub approver: String,
    pub approve: bool,
    pub comment: String,
    pub at: DateTime<Utc>,
}

/// A change request as stored (the `body` column).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRequest {
    pub id: String,
    pub environment: String,
    pub key: String,
    pub change: FlagChange,
    pub base_revision: Option<i64>,
    pub apply_at: Option<DateTime<Utc>>,
    pub reason: String,
    pub proposer: String,
    /// As recorded; see [`status_at`](Self::status_at) for what it is now.
    pub status: ChangeRequestStatus,
    pub created_at: DateTime<Utc>,
    /// A pending change request times out at this moment.
    pub pending_until: DateTime<Utc>,
    pub votes: Vec<ChangeVote>,
    pub applied_revision: Option<i64>,
    pub result: Option<String>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<String>,
}

impl ChangeRequest {
    /// The status at `now`: a pending request past `pending_until` has timed out, whether or
    /// not background work has recorded it yet.
    pub fn status_at(&self, now: DateTime<Utc>) -> ChangeRequestStatus {
        if self.status == ChangeRequestStatus::Pending && now >= self.pending_until {
            ChangeRequestStatus::TimedOut
        } else {
            self.status
        }
    }

    fn resource(&self) -> String {
        format!("flag:{}/{}", self.environment, self.key)
    }

    /// Approvers whose approval counts under `rule` now: distinct, not the proposer, and
    /// still eligible.
    fn valid_approvers(&self, policy: &Policy, rule: &ApprovalRule) -> Vec<String> {
        let mut out: Vec<String> = self
            .votes
            .iter()
            .filter(|v| v.approve && v.approver != self.proposer)
            .filter(|v| policy.is_in(&v.approver, &rule.approvers))
            .map(|v| v.approver.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn end(
        &mut self,
        status: ChangeRequestStatus,
        by: &str,
        result: Option<String>,
        at: DateTime<Utc>,
    ) {
        self.status = status;
        self.ended_at = Some(at);
        self.ended_by = Some(by.to_owned());
        self.result = result.filter(|r| !r.is_empty());
    }

    fn to_stored(&self) -> Result<StoredChangeRequest, ApiError> {
        Ok(StoredChangeRequest {
            id: self.id.clone(),
            environment: self.environment.clone(),
            key: self.key.clone(),
            proposer: self.proposer.clone(),
            status: self.status.as_str().to_owned(),
            created_at: self.created_at,
            pending_until: self.pending_until,
            apply_at: self.apply_at,
            body: serde_json::to_value(self)
                .map_err(|e| ApiError::Internal(format!("change request to JSON: {e}")))?,
        })
    }

    fn from_stored(s: StoredChangeRequest) -> Result<Self, ApiError> {
        serde_json::from_value(s.body)
            .map_err(|e| ApiError::Internal(format!("stored change request {}: {e}", s.id)))
    }
}

/// A change request as shown: its status is the one at the time of asking.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChangeRequestView {
    pub id: String,
    pub environment: String,
    pub key: String,
    pub change: FlagChange,
    pub base_revision: Option<i64>,
    pub apply_at: Option<DateTime<Utc>>,
    pub reason: String,
    pub proposer: String,
    /// `pending`, `approved` (waiting for `apply_at`), `applied`, `denied`, `cancelled`,
    /// `stale`, `timed-out` or `refused`.
    pub status: ChangeRequestStatus,
    pub created_at: DateTime<Utc>,
    pub pending_until: DateTime<Utc>,
    pub votes: Vec<ChangeVote>,
    /// Approvals that count under the environment's current rule.
    pub approvals: usize,
    /// How many the current rule requires (`None`: the environment has no rule any more).
    pub required: Option<u32>,
    pub applied_revision: Option<i64>,
    pub result: Option<String>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<String>,
}

fn rule_of<'p>(policy: &'p Policy, env: &str) -> Option<&'p ApprovalRule> {
    policy
        .doc
        .environments
        .get(env)
        .and_then(|e| e.approval.as_ref())
}

fn list(subjects: &[String]) -> String {
    if subjects.is_empty() {
        "nobody".into()
    } else {
        subjects.join(", ")
    }
}

/// Proof that an approver may vote on a change request right now. Only [`authorize_vote`]
/// makes one, so a vote that skipped the checks does not compile.
#[derive(Debug)]
pub struct Authorized<'a> {
    approver: &'a str,
}

/// Checks, at vote time, that `approver` may vote on `cr`: the request is still open (a deny
/// may also stop an approved one before its time), the approver is not the proposer
/// (administrators included), is a current approver of the environment, and has not voted.
pub fn authorize_vote<'a>(
    policy: &Policy,
    cr: &ChangeRequest,
    approver: &'a str,
    approve: bool,
    now: DateTime<Utc>,
) -> Result<Authorized<'a>, ApiError> {
    let status = cr.status_at(now);
    let open = status == ChangeRequestStatus::Pending
        || (!approve && status == ChangeRequestStatus::Approved);
    if !open {
        return Err(AccessError::WrongStatus {
            id: cr.id.clone(),
            status: status.as_str(),
            expected: "pending",
        }
        .into());
    }
    let rule = rule_of(policy, &cr.environment).ok_or_else(|| no_rule(&cr.environment))?;
    if approver == cr.proposer {
        return Err(AccessError::SelfApproval {
            approvers: list(&rule.approvers),
        }
        .into());
    }
    if !policy.is_in(approver, &rule.approvers) {
        return Err(AccessError::NotAnApprover {
            entitlement: format!("change requests in {}", cr.environment),
            approvers: list(&rule.approvers),
        }
        .into());
    }
    if cr.votes.iter().any(|v| v.approver == approver) {
        return Err(AccessError::AlreadyVoted(cr.id.clone()).into());
    }
    Ok(Authorized { approver })
}

fn no_rule(env: &str) -> ApiError {
    ApiError::bad_request(
        "no_approval_rule",
        format!(
            "`{env}` takes no change requests: the policy gives it no approval rule; add \
             `approval: {{ required: 1, approvers: [group:…] }}` under environments.{env}, \
             or change the flag with a grant"
        ),
    )
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
    Refused(ApiError),
}

async fn record(
    tx: &mut WriteTx,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    cr: &ChangeRequest,
    extra: serde_json::Value,
) -> Result<(), ApiError> {
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
    ) -> Result<ChangeRequestView, ApiError> {
        let now = self.now();
        let policy = self.policy();
        let ttl = match policy.doc.environments.get(env) {
            Some(e) if e.approval.is_some() => e.change_request_ttl(),
            _ => return Err(no_rule(env)),
        };
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(ApiError::bad_request(
                "reason_required",
                "a change request needs a reason for its approvers",
            ));
        }
        if reason.len() > MAX_REASON {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("reason is longer than {MAX_REASON} bytes"),
            ));
        }
        if apply_at.is_some_and(|t| t <= now) {
            return Err(ApiError::bad_request(
                "invalid_time",
                "`apply_at` must be in the future; leave it out to apply on approval",
            ));
        }
        let cr = ChangeRequest {
            id: new_id("cr"),
            environment: env.to_owned(),
            key: key.to_owned(),
            change,
            base_revision,
            apply_at,
            reason: reason.to_owned(),
            proposer: caller.name.clone(),
            status: ChangeRequestStatus::Pending,
            created_at: now,
            pending_until: now + ttl.delta(),
            votes: Vec::new(),
            applied_revision: None,
            result: None,
            ended_at: None,
            ended_by: None,
        };
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
            let message = match (current, base_revision) {
                (Some(c), Some(b)) => format!(
                    "flag `{key}` is at revision {c}, not {b}: someone changed it; reload and propose again"
                ),
                (Some(c), None) => format!(
                    "flag `{key}` already exists (revision {c}); pass its base revision to change it"
                ),
                (None, _) => format!("flag `{key}` does not exist in `{env}`"),
            };
            return Err(ApiError::Conflict {
                code: "stale_revision",
                message,
            });
        }
        tx.insert_change_request(&cr.to_stored()?).await?;
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
    ) -> Result<ChangeRequestView, ApiError> {
        if comment.len() > MAX_COMMENT {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("comment is longer than {MAX_COMMENT} bytes"),
            ));
        }
        let step = Step::Vote {
            approver: &caller.name,
            approve,
            comment: comment.trim(),
        };
        let cr = self
            .advance(id, &step)
            .await?
            .ok_or_else(|| ApiError::Internal(format!("vote on {id} recorded nothing")))?;
        Ok(self.change_request_view(cr))
    }

    /// The proposer withdraws a change request that has not applied yet.
    pub async fn cancel_change(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<ChangeRequestView, ApiError> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let mut cr = ChangeRequest::from_stored(
            tx.lock_change_request(id)
                .await?
                .ok_or_else(|| not_found(id))?,
        )?;
        if cr.proposer != caller.name {
            return Err(AccessError::NotAllowed {
                id: cr.id.clone(),
                who: "the proposer",
                what: "cancel",
            }
            .into());
        }
        let status = cr.status_at(now);
        if !matches!(
            status,
            ChangeRequestStatus::Pending | ChangeRequestStatus::Approved
        ) {
            return Err(AccessError::WrongStatus {
                id: cr.id.clone(),
                status: status.as_str(),
                expected: "pending or approved",
            }
            .into());
        }
        cr.end(ChangeRequestStatus::Cancelled, &caller.name, None, now);
        tx.update_change_request(&cr.to_stored()?).await?;
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
    pub async fn tick_change_requests(&self) -> Result<usize, ApiError> {
        let ids = self.store.due_change_requests(self.now(), 100).await?;
        let mut settled = 0;
        for id in ids {
            if self.advance(&id, &Step::Tick).await?.is_some() {
                settled += 1;
            }
        }
        Ok(settled)
    }

    pub async fn change_request(&self, id: &str) -> Result<ChangeRequestView, ApiError> {
        let s = self
            .store
            .change_request(id)
            .await?
            .ok_or_else(|| not_found(id))?;
        Ok(self.change_request_view(ChangeRequest::from_stored(s)?))
    }

    /// Change requests, newest first; `status` is the status now (so `timed-out` includes
    /// ones not yet recorded as such).
    pub async fn change_requests(
        &self,
        env: Option<&str>,
        status: Option<&str>,
    ) -> Result<Vec<ChangeRequestView>, ApiError> {
        let want = match status {
            None => None,
            Some(s) => Some(ChangeRequestStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_status",
                    format!(
                        "unknown status `{s}`; use one of: {}",
                        ChangeRequestStatus::ALL.map(|x| x.as_str()).join(", ")
                    ),
                )
            })?),
        };
        let recorded: Vec<&str> = match want {
            None => Vec::new(),
            Some(ChangeRequestStatus::TimedOut) => vec!["pending", "timed-out"],
            Some(w) => vec![w.as_str()],
        };
        let now = self.now();
        let mut out = Vec::new();
        for s in self.store.change_requests(env, &recorded, 1000).await? {
            let cr = ChangeRequest::from_stored(s)?;
            if want.is_none_or(|w| cr.status_at(now) == w) {
                out.push(self.change_request_view(cr));
            }
        }
        Ok(out)
    }

    fn change_request_view(&self, cr: ChangeRequest) -> ChangeRequestView {
        let policy = self.policy();
        let rule = rule_of(&policy, &cr.environment);
        ChangeRequestView {
            status: cr.status_at(self.now()),
            approvals: rule.map_or(0, |r| cr.valid_approvers(&policy, r).len()),
            required: rule.map(|r| r.required),
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
            votes: cr.votes,
            applied_revision: cr.applied_revision,
            result: cr.result,
            ended_at: cr.ended_at,
            ended_by: cr.ended_by,
        }
    }

    /// Takes one step; when applying is refused, the failed transaction is rolled back and
    /// the same step is recorded with the refusal in a fresh one.
    async fn advance(&self, id: &str, step: &Step<'_>) -> Result<Option<ChangeRequest>, ApiError> {
        let (cr, applied) = match self.advance_once(id, step, None).await? {
            Attempt::Done(cr, applied) => (cr.map(|c| *c), applied),
            Attempt::Refused(e) => match self.advance_once(id, step, Some(&e)).await? {
                Attempt::Done(cr, applied) => (cr.map(|c| *c), applied),
                Attempt::Refused(e) => {
                    return Err(ApiError::Internal(format!(
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
            if c.status == ChangeRequestStatus::Approved {
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
        refusal: Option<&ApiError>,
    ) -> Result<Attempt, ApiError> {
        let now = self.now();
        let policy = self.policy();
        let mut tx = self.store.begin().await?;
        let Some(stored) = tx.lock_change_request(id).await? else {
            return match step {
                Step::Tick => Ok(Attempt::Done(None, false)),
                Step::Vote { .. } => Err(not_found(id)),
            };
        };
        let mut cr = ChangeRequest::from_stored(stored)?;
        let mut changed = false;
        if let Step::Vote {
            approver,
            approve,
            comment,
        } = step
        {
            let proof = authorize_vote(&policy, &cr, approver, *approve, now)?;
            tx.insert_change_request_vote(&cr.id, proof.approver, *approve, now)
                .await?;
            cr.votes.push(ChangeVote {
                approver: proof.approver.to_owned(),
                approve: *approve,
                comment: (*comment).to_owned(),
                at: now,
            });
            if !*approve {
                // Deny wins: one deny ends the change request.
                cr.end(
                    ChangeRequestStatus::Denied,
                    proof.approver,
                    Some((*comment).to_owned()),
                    now,
                );
            }
            let rule = rule_of(&policy, &cr.environment);
            let action = if *approve {
                "flag.change-approved"
            } else {
                "flag.change-denied"
            };
            record(
                &mut tx,
                now,
                proof.approver,
                action,
                &cr,
                json!({
                    "comment": comment,
                    "approvals": rule.map_or(0, |r| cr.valid_approvers(&policy, r).len()),
                    "required": rule.map(|r| r.required),
                }),
            )
            .await?;
            changed = true;
        }
        if cr.status == ChangeRequestStatus::Pending && now >= cr.pending_until {
            let at = cr.pending_until;
            cr.end(ChangeRequestStatus::TimedOut, ACTOR, None, at);
            record(&mut tx, now, ACTOR, "flag.change-timed-out", &cr, json!({})).await?;
            changed = true;
        }
        let mut applied = false;
        if matches!(
            cr.status,
            ChangeRequestStatus::Pending | ChangeRequestStatus::Approved
        ) {
            // Approvals are counted under the rule as it is now: an approver who has left the
            // approvers since no longer counts when a scheduled change comes due.
            let rule = rule_of(&policy, &cr.environment);
            let approvers = rule
                .map(|r| cr.valid_approvers(&policy, r))
                .unwrap_or_default();
            let met = rule.is_some_and(|r| approvers.len() >= r.required as usize);
            let due = cr.apply_at.is_none_or(|t| t <= now);
            if met && !due {
                if cr.status == ChangeRequestStatus::Pending {
                    cr.status = ChangeRequestStatus::Approved;
                    changed = true;
                }
            } else if met || cr.status == ChangeRequestStatus::Approved {
                // `met`, or an approved change request came due without its approvals.
                let outcome = match (refusal, met) {
                    (Some(e), _) => Err(e.to_string()),
                    (None, false) => Err(format!(
                        "its approvals no longer meet the approval rule of `{}`",
                        cr.environment
                    )),
                    (None, true) => {
                        let authority = Authority::ChangeRequest {
                            id: cr.id.clone(),
                            approvers: approvers.clone(),
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
                            Ok(d) => Ok(d.revision),
                            Err(e @ (ApiError::Internal(_) | ApiError::Unavailable(_))) => {
                                return Err(e)
                            }
                            // The transaction may hold part of the change: drop it and
                            // record the refusal in a fresh one.
                            Err(e) => return Ok(Attempt::Refused(e)),
                        }
                    }
                };
                match outcome {
                    Ok(revision) => {
                        cr.applied_revision = Some(revision);
                        cr.end(
                            ChangeRequestStatus::Applied,
                            ACTOR,
                            Some(format!("revision {revision}")),
                            now,
                        );
                        applied = true;
                    }
                    Err(reason) => {
                        let stale = refusal.is_some_and(|e| e.code() == "stale_revision");
                        let (status, action) = if stale {
                            (ChangeRequestStatus::Stale, "flag.change-stale")
                        } else {
                            (ChangeRequestStatus::Refused, "flag.change-refused")
                        };
                        cr.end(status, ACTOR, Some(reason.clone()), now);
                        record(
                            &mut tx,
                            now,
                            ACTOR,
                            action,
                            &cr,
                            json!({"code": refusal.map_or("approval_lapsed", |e| e.code()), "result": reason}),
                        )
                        .await?;
                    }
                }
                changed = true;
            }
        }
        if !changed {
            // Nothing to record (another instance settled it first): roll back.
            return Ok(Attempt::Done(None, false));
        }
        tx.update_change_request(&cr.to_stored()?).await?;
        tx.commit().await?;
        Ok(Attempt::Done(Some(Box::new(cr)), applied))
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no change request {id}; `GET /v1/proposals` lists them"
    ))
}
