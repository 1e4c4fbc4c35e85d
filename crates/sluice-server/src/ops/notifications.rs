//! The notification outbox as administrators see it: list, inspect, retry (audited).

use crate::app::App;
use crate::caller::Caller;
use crate::ops::{Missing, OpError};
use serde_json::json;
use sluice_api::notifications::{
    AttemptView, NotificationList, NotificationState, NotificationView, Retried,
};
use sluice_audit::NewEntry;
use sluice_store::{OutboxRow, OutboxState};

fn state(s: OutboxState) -> NotificationState {
    match s {
        OutboxState::Pending => NotificationState::Pending,
        OutboxState::Delivered => NotificationState::Delivered,
        OutboxState::Dead => NotificationState::Dead,
    }
}

fn view(r: OutboxRow) -> NotificationView {
    NotificationView {
        id: r.id,
        sink: r.sink,
        event: r.event,
        state: state(r.state),
        attempts: r.attempts,
        audit_seq: r.audit_seq,
        created_at: r.created_at,
        next_at: r.next_at,
        delivered_at: r.delivered_at,
        last_error: r.last_error,
        history: Vec::new(),
    }
}

impl App {
    /// A page of the outbox by id, in one state or all (administrators).
    pub async fn notifications(
        &self,
        caller: &Caller,
        filter: Option<NotificationState>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<NotificationList, OpError> {
        caller.require_admin()?;
        let filter = filter.map(|s| match s {
            NotificationState::Pending => OutboxState::Pending,
            NotificationState::Delivered => OutboxState::Delivered,
            NotificationState::Dead => OutboxState::Dead,
        });
        let limit = limit.clamp(1, 1000);
        let rows = self.store.outbox(filter, after, limit).await?;
        let next_after = (rows.len() as i64 == limit)
            .then(|| rows.last().map(|r| r.id.clone()))
            .flatten();
        let counts = self.store.outbox_counts().await?;
        Ok(NotificationList {
            notifications: rows.into_iter().map(view).collect(),
            next_after,
            pending: counts.pending,
            delivered: counts.delivered,
            dead: counts.dead,
        })
    }

    /// One notification with every attempt made on it (administrators).
    pub async fn notification(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<NotificationView, OpError> {
        caller.require_admin()?;
        let row = self
            .store
            .outbox_row(id)
            .await?
            .ok_or_else(|| Missing::Notification(id.to_owned()))?;
        let mut v = view(row);
        v.history = self
            .store
            .outbox_attempts(id)
            .await?
            .into_iter()
            .map(|a| AttemptView {
                n: a.n,
                at: a.at,
                instance: a.instance,
                http_status: a.http_status,
                error: a.error,
                duration_ms: a.duration_ms,
            })
            .collect();
        Ok(v)
    }

    /// Makes a dead notification due again now (administrators; audited as
    /// `notification.retried`). A delivered one is left alone; a pending one is made due now.
    pub async fn retry_notification(&self, caller: &Caller, id: &str) -> Result<Retried, OpError> {
        caller.require_admin()?;
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let was = tx
            .retry_outbox(id, now)
            .await?
            .ok_or_else(|| Missing::Notification(id.to_owned()))?;
        let requeued = was != OutboxState::Delivered;
        tx.audit(
            now,
            NewEntry::new(&caller.name, "notification.retried")
                .subject_id(id)
                .details(json!({"was": state(was), "requeued": requeued})),
        )
        .await?;
        tx.commit().await?;
        Ok(Retried {
            id: id.to_owned(),
            was: state(was),
            requeued,
        })
    }
}
