//! Four-eyes flag changes from the command line: `sluice flags disable … --propose` sends a
//! change request instead of a change; `sluice proposals …` lists, shows and decides them.

use crate::cli::{ChangeArgs, ProposalCommand, Remote};
use crate::client::{client, endpoint, Client};
use crate::output::{describe, emit, s, table, until, when};
use anyhow::anyhow;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{json, Value};

/// Who may approve change requests in `env`, from the policy in force (best effort).
async fn approvers(c: &Client, env: &str) -> String {
    let policy = c.call(Method::GET, "/v1/policy", None).await.ok();
    policy
        .as_ref()
        .and_then(|p| p["source"].as_str())
        .and_then(|src| sluice_core::policy::Policy::from_yaml(src).ok())
        .and_then(|p| {
            let rule = p.doc.environments.get(env)?.approval.clone()?;
            Some(rule.approvers.join(", "))
        })
        .unwrap_or_else(|| format!("the approvers of {env}"))
}

/// Sends `change` as a proposal (`--propose`) and says who must approve it.
pub async fn propose(
    r: &Remote,
    c: &Client,
    a: &ChangeArgs,
    change: Value,
    base: Option<i64>,
    at: Option<DateTime<Utc>>,
) -> anyhow::Result<()> {
    let body = json!({
        "change": change,
        "base_revision": base,
        "apply_at": at.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        "reason": a.reason.clone().unwrap_or_default(),
    });
    let path = endpoint(
        &["v1", "environments", &a.env, "flags", &a.key, "proposals"],
        &[],
    );
    let v = c.call(Method::POST, &path, Some(body)).await?;
    let who = approvers(c, &a.env).await;
    emit(r.output, &v, |v| {
        let id = s(&v["id"]);
        outln!(
            "proposed {id}: {} in {}",
            describe(&a.key, &v["change"]),
            a.env
        );
        outln!(
            "needs {} approval(s) from {who}; approve with: sluice proposals approve {id}",
            s(&v["required"])
        );
        if !v["apply_at"].is_null() {
            outln!(
                "once approved it applies at {} ({})",
                s(&v["apply_at"]),
                until(&v["apply_at"], "applies", "due now")
            );
        }
        outln!("times out {}", when(&v["pending_until"]));
    })
}

/// `times out in 23h` / `applies in 2h` / `ended 3m ago`.
fn time_left(v: &Value) -> String {
    match v["status"].as_str().unwrap_or_default() {
        "pending" => until(&v["pending_until"], "times out", "timing out now"),
        "approved" => until(&v["apply_at"], "applies", "due now"),
        _ => format!("ended {}", when(&v["ended_at"])),
    }
}

fn approvals(v: &Value) -> String {
    format!("{}/{}", s(&v["approvals"]), s(&v["required"]))
}

fn list_table(v: &Value) {
    let rows = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    vec![
                        s(&p["id"]),
                        s(&p["environment"]),
                        s(&p["key"]),
                        describe(&s(&p["key"]), &p["change"]),
                        s(&p["proposer"]),
                        s(&p["status"]),
                        approvals(p),
                        time_left(p),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
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

fn show(v: &Value) {
    let id = s(&v["id"]);
    let status = s(&v["status"]);
    outln!("proposal    {id}");
    outln!(
        "change      {} in {}",
        describe(&s(&v["key"]), &v["change"]),
        s(&v["environment"])
    );
    outln!("proposer    {}", s(&v["proposer"]));
    outln!("reason      {}", s(&v["reason"]));
    outln!("base        revision {}", s(&v["base_revision"]));
    outln!("status      {status} ({} approvals)", approvals(v));
    if !v["apply_at"].is_null() {
        let relative = match status.as_str() {
            "pending" | "approved" => until(&v["apply_at"], "applies", "due now"),
            _ => when(&v["apply_at"]),
        };
        outln!("apply at    {} ({relative})", s(&v["apply_at"]));
    }
    for vote in v["votes"].as_array().into_iter().flatten() {
        let verb = if vote["approve"] == Value::Bool(true) {
            "approved"
        } else {
            "denied"
        };
        let comment = vote["comment"].as_str().unwrap_or_default();
        let comment = if comment.is_empty() {
            String::new()
        } else {
            format!(": {comment}")
        };
        outln!(
            "{verb:<11} by {} {}{comment}",
            s(&vote["approver"]),
            when(&vote["at"])
        );
    }
    if !v["applied_revision"].is_null() {
        outln!("applied     as revision {}", s(&v["applied_revision"]));
    }
    if !v["result"].is_null() {
        outln!("result      {}", s(&v["result"]));
    }
    if !v["ended_by"].is_null() {
        outln!(
            "ended       by {} {}",
            s(&v["ended_by"]),
            when(&v["ended_at"])
        );
    }
    match status.as_str() {
        "pending" => outln!(
            "next        {}; approve with: sluice proposals approve {id}",
            time_left(v)
        ),
        "approved" => outln!("next        {}", time_left(v)),
        _ => {}
    }
}

/// After a vote: where the proposal stands now.
fn voted(v: &Value) {
    let id = s(&v["id"]);
    let what = format!(
        "{} in {}",
        describe(&s(&v["key"]), &v["change"]),
        s(&v["environment"])
    );
    match v["status"].as_str().unwrap_or_default() {
        "applied" => outln!(
            "{id} applied: {what} (revision {})",
            s(&v["applied_revision"])
        ),
        "approved" => outln!(
            "{id} approved: {what} applies at {} ({})",
            s(&v["apply_at"]),
            until(&v["apply_at"], "applies", "due now")
        ),
        "pending" => outln!("{id}: {} approvals so far; {}", approvals(v), time_left(v)),
        other => {
            let result = v["result"]
                .as_str()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            outln!("{id} {other}: {what}{result}");
        }
    }
}

fn action_path(id: &str, verb: &str) -> String {
    endpoint(&["v1", "proposals", id, verb], &[])
}

async fn vote(r: &Remote, c: &Client, id: &str, verb: &str, comment: String) -> anyhow::Result<()> {
    let v = c
        .call(
            Method::POST,
            &action_path(id, verb),
            Some(json!({"comment": comment})),
        )
        .await
        .map_err(|e| {
            if e.to_string().contains("self_approval") {
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
            let v = c
                .call(
                    Method::GET,
                    &endpoint(&["v1", "proposals"], &[("env", env), ("status", status)]),
                    None,
                )
                .await?;
            emit(r.output, &v, list_table)
        }
        ProposalCommand::Show { id } => {
            let v = c
                .call(Method::GET, &endpoint(&["v1", "proposals", &id], &[]), None)
                .await?;
            emit(r.output, &v, show)
        }
        ProposalCommand::Approve { id, comment } => vote(&r, &c, &id, "approve", comment).await,
        ProposalCommand::Deny { id, comment } => vote(&r, &c, &id, "deny", comment).await,
        ProposalCommand::Cancel { id } => {
            let v = c
                .call(Method::POST, &action_path(&id, "cancel"), None)
                .await?;
            emit(r.output, &v, |v| {
                outln!(
                    "cancelled {}: it would have done: {} in {}",
                    s(&v["id"]),
                    describe(&s(&v["key"]), &v["change"]),
                    s(&v["environment"])
                );
            })
        }
    }
}
