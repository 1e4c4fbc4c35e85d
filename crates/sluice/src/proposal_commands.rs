//! Four-eyes flag changes from the command line: `sluice flags disable … --propose` sends a
//! change request instead of a change; `sluice proposals …` lists, shows and decides them.

use crate::cli::{ChangeArgs, ProposalCommand, Remote};
use crate::client::{client, endpoint, Client, Refused, NO_BODY};
use crate::output::{describe_change, emit, stamp, table, until_at, when_at};
use anyhow::anyhow;
use chrono::{DateTime, Utc};
use reqwest::Method;
use sluice_api::flags::{
    ChangeRequestStatus, ChangeRequestView, FlagChange, NewProposal, VoteComment,
};

/// Who may approve `v`, as the server says (the policy source is for administrators and
/// auditors only).
fn approvers(v: &ChangeRequestView, env: &str) -> String {
    if v.approvers.is_empty() {
        format!("the approvers of {env}")
    } else {
        v.approvers.join(", ")
    }
}

/// Sends `change` as a proposal (`--propose`) and says who must approve it.
pub async fn propose(
    r: &Remote,
    c: &Client,
    a: &ChangeArgs,
    change: FlagChange,
    base: Option<i64>,
    at: Option<DateTime<Utc>>,
) -> anyhow::Result<()> {
    let body = NewProposal {
        change,
        base_revision: base,
        // To the millisecond already, as the time is shown back.
        apply_at: at,
        reason: a.reason.clone().unwrap_or_default(),
    };
    let path = endpoint(
        &["v1", "environments", &a.env, "flags", &a.key, "proposals"],
        &[],
    );
    let v: ChangeRequestView = c.send(Method::POST, &path, Some(&body)).await?;
    let who = approvers(&v, &a.env);
    emit(r.output, &v, |v| {
        let id = &v.id;
        outln!(
            "proposed {id}: {} in {}",
            describe_change(&a.key, &v.change),
            a.env
        );
        outln!(
            "needs {} approval(s) from {who}; approve with: sluice proposals approve {id}",
            v.required.map_or_else(|| "-".to_owned(), |n| n.to_string())
        );
        if let Some(at) = v.apply_at {
            outln!(
                "once approved it applies at {} ({})",
                stamp(Some(at)),
                until_at(Some(at), "applies", "due now")
            );
        }
        outln!("times out {}", when_at(Some(v.pending_until)));
    })
}

/// `times out in 23h` / `applies in 2h` / `ended 3m ago`.
fn time_left(v: &ChangeRequestView) -> String {
    match v.status {
        ChangeRequestStatus::Pending => {
            until_at(Some(v.pending_until), "times out", "timing out now")
        }
        ChangeRequestStatus::Approved => until_at(v.apply_at, "applies", "due now"),
        _ => format!("ended {}", when_at(v.ended_at)),
    }
}

fn approvals(v: &ChangeRequestView) -> String {
    format!(
        "{}/{}",
        v.approvals,
        v.required.map_or_else(|| "-".to_owned(), |n| n.to_string())
    )
}

fn list_table(v: &[ChangeRequestView]) {
    let rows = v
        .iter()
        .map(|p| {
            vec![
                p.id.clone(),
                p.environment.clone(),
                p.key.clone(),
                describe_change(&p.key, &p.change),
                p.proposer.clone(),
                p.status.as_str().to_owned(),
                approvals(p),
                time_left(p),
            ]
        })
        .collect();
    table(
        &[
            "id",
            "env",
            "flag",
            "change",
            "proposer",
            "status",
            "approvals",
            "when",
        ],
        rows,
    );
}

fn show(v: &ChangeRequestView) {
    let id = &v.id;
    let status = v.status;
    outln!("proposal    {id}");
    outln!(
        "change      {} in {}",
        describe_change(&v.key, &v.change),
        v.environment
    );
    outln!("proposer    {}", v.proposer);
    outln!("reason      {}", v.reason);
    outln!(
        "base        revision {}",
        v.base_revision
            .map_or_else(|| "-".to_owned(), |n| n.to_string())
    );
    outln!(
        "status      {} ({} approvals)",
        status.as_str(),
        approvals(v)
    );
    if let Some(at) = v.apply_at {
        let relative = match status {
            ChangeRequestStatus::Pending | ChangeRequestStatus::Approved => {
                until_at(Some(at), "applies", "due now")
            }
            _ => when_at(Some(at)),
        };
        outln!("apply at    {} ({relative})", stamp(Some(at)));
    }
    for vote in &v.votes {
        let verb = if vote.approve { "approved" } else { "denied" };
        let comment = if vote.comment.is_empty() {
            String::new()
        } else {
            format!(": {}", vote.comment)
        };
        outln!(
            "{verb:<11} by {} {}{comment}",
            vote.approver,
            when_at(Some(vote.at))
        );
    }
    if let Some(rev) = v.applied_revision {
        outln!("applied     as revision {rev}");
    }
    if let Some(result) = &v.result {
        outln!("result      {result}");
    }
    if let Some(by) = &v.ended_by {
        outln!("ended       by {by} {}", when_at(v.ended_at));
    }
    match status {
        ChangeRequestStatus::Pending => outln!(
            "next        {}; approve with: sluice proposals approve {id}",
            time_left(v)
        ),
        ChangeRequestStatus::Approved => outln!("next        {}", time_left(v)),
        _ => {}
    }
}

/// After a vote: where the proposal stands now.
fn voted(v: &ChangeRequestView) {
    let id = &v.id;
    let what = format!(
        "{} in {}",
        describe_change(&v.key, &v.change),
        v.environment
    );
    match v.status {
        ChangeRequestStatus::Applied => outln!(
            "{id} applied: {what} (revision {})",
            v.applied_revision
                .map_or_else(|| "-".to_owned(), |n| n.to_string())
        ),
        ChangeRequestStatus::Approved => outln!(
            "{id} approved: {what} applies at {} ({})",
            stamp(v.apply_at),
            until_at(v.apply_at, "applies", "due now")
        ),
        ChangeRequestStatus::Pending => {
            outln!("{id}: {} approvals so far; {}", approvals(v), time_left(v))
        }
        other => {
            let result = v
                .result
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            outln!("{id} {}: {what}{result}", other.as_str());
        }
    }
}

fn action_path(id: &str, verb: &str) -> String {
    endpoint(&["v1", "proposals", id, verb], &[])
}

async fn vote(r: &Remote, c: &Client, id: &str, verb: &str, comment: String) -> anyhow::Result<()> {
    let v: ChangeRequestView = c
        .send(
            Method::POST,
            &action_path(id, verb),
            Some(&VoteComment { comment }),
        )
        .await
        .map_err(|e| {
            if e
                .downcast_ref::<Refused>()
                .is_some_and(|r| r.code == "self_approval")
            {
                anyhow!(
                    "{e:#}\nFour eyes: someone else approves; send them the id ({id}) and \
                     `sluice proposals approve {id}`, or withdraw it with `sluice proposals cancel {id}`."
                )
            } else {
                e
            }
        })?;
    emit(r.output, &v, voted)
}

pub async fn proposals(cmd: ProposalCommand, r: Remote) -> anyhow::Result<()> {
    let c = client(&r);
    match cmd {
        ProposalCommand::List { env, status } => {
            let v: Vec<ChangeRequestView> = c
                .send(
                    Method::GET,
                    &endpoint(&["v1", "proposals"], &[("env", env), ("status", status)]),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &v, |v| list_table(v))
        }
        ProposalCommand::Show { id } => {
            let v: ChangeRequestView = c
                .send(
                    Method::GET,
                    &endpoint(&["v1", "proposals", &id], &[]),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &v, show)
        }
        ProposalCommand::Approve { id, comment } => vote(&r, &c, &id, "approve", comment).await,
        ProposalCommand::Deny { id, comment } => vote(&r, &c, &id, "deny", comment).await,
        ProposalCommand::Cancel { id } => {
            let v: ChangeRequestView = c
                .send(Method::POST, &action_path(&id, "cancel"), NO_BODY)
                .await?;
            emit(r.output, &v, |v| {
                outln!(
                    "cancelled {}: it would have done: {} in {}",
                    v.id,
                    describe_change(&v.key, &v.change),
                    v.environment
                );
            })
        }
    }
}
