//! `sluice notifications list|show|retry`: the notification outbox, over the API.

use crate::cli::{NotificationCommand, Remote};
use crate::client::{client, endpoint, NO_BODY};
use crate::output::{emit, stamp, table};
use reqwest::Method;
use sluice_api::notifications::{NotificationList, NotificationState, NotificationView, Retried};

fn state(s: NotificationState) -> &'static str {
    match s {
        NotificationState::Pending => "pending",
        NotificationState::Delivered => "delivered",
        NotificationState::Dead => "dead",
    }
}

fn list_table(l: &NotificationList) {
    let rows = l
        .notifications
        .iter()
        .map(|n| {
            vec![
                n.id.clone(),
                n.sink.clone(),
                n.event.clone(),
                state(n.state).to_owned(),
                n.attempts.to_string(),
                match n.state {
                    NotificationState::Delivered => stamp(n.delivered_at),
                    NotificationState::Pending => format!("next {}", stamp(Some(n.next_at))),
                    NotificationState::Dead => n.last_error.clone().unwrap_or_default(),
                },
            ]
        })
        .collect();
    table(
        &["id", "sink", "event", "state", "attempts", "when / why"],
        rows,
    );
    outln!(
        "{} pending, {} delivered, {} dead",
        l.pending,
        l.delivered,
        l.dead
    );
}

fn show(n: &NotificationView) {
    outln!("notification {}", n.id);
    outln!("sink         {}", n.sink);
    outln!("event        {}", n.event);
    outln!(
        "state        {} after {} attempt(s)",
        state(n.state),
        n.attempts
    );
    if let Some(seq) = n.audit_seq {
        outln!("audit entry  {seq}");
    }
    outln!("created      {}", stamp(Some(n.created_at)));
    for a in &n.history {
        let answer = a
            .http_status
            .map_or_else(|| "no answer".to_owned(), |s| format!("HTTP {s}"));
        let error = a
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        outln!(
            "attempt {:<4} {} {answer} in {} ms by {}{error}",
            a.n,
            stamp(Some(a.at)),
            a.duration_ms,
            a.instance
        );
    }
    if n.state == NotificationState::Dead {
        outln!("retry with: sluice notifications retry {}", n.id);
    }
}

pub async fn notifications(cmd: NotificationCommand, r: Remote) -> anyhow::Result<()> {
    let c = client(&r);
    match cmd {
        NotificationCommand::List {
            state,
            limit,
            after,
        } => {
            let path = endpoint(
                &["v1", "notifications"],
                &[
                    ("state", state),
                    ("limit", limit.map(|l| l.to_string())),
                    ("after", after),
                ],
            );
            let l: NotificationList = c.send(Method::GET, &path, NO_BODY).await?;
            emit(r.output, &l, list_table)
        }
        NotificationCommand::Show { id } => {
            let n: NotificationView = c
                .send(
                    Method::GET,
                    &endpoint(&["v1", "notifications", &id], &[]),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &n, show)
        }
        NotificationCommand::Retry { id } => {
            let v: Retried = c
                .send(
                    Method::POST,
                    &endpoint(&["v1", "notifications", &id, "retry"], &[]),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &v, |v| {
                if v.requeued {
                    outln!("{}: was {}, due again now", v.id, state(v.was));
                } else {
                    outln!("{}: already delivered; nothing to do", v.id);
                }
            })
        }
    }
}
