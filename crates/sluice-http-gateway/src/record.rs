//! The audit trail of calls. Fail-closed (`audit: before`, the default): `http.call.admitted`
//! is committed before the call is forwarded, and `http.call.ended` with the outcome once the
//! response is over. `audit: after`: only `http.call.ended`, once the response is over, best effort
//! (a crash or a failing store loses it; the call has happened either way).
//!
//! Both go through the store's batched writer (`WriteTx`), so concurrent calls share commits.

use crate::config::AuditMode;
use chrono::{DateTime, Utc};
use serde_json::json;
use sluice_server::App;
use sluice_store::{NewEntry, StoreError};
use std::time::Instant;

/// One call, from admission to the end of its response.
pub struct Call {
    pub app: App,
    pub id: String,
    pub principal: String,
    pub grant_id: String,
    pub entitlement: String,
    pub resource: String,
    pub method: String,
    pub path: String,
    pub client: String,
    pub mode: AuditMode,
    pub started: Instant,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// How it ended: `completed`, `cut: grant expired`, `client went away`, …
    pub outcome: String,
    /// Set once the call is sent upstream: from then on its result is recorded.
    pub sent: bool,
}

impl Call {
    /// Commits `http.call.admitted`; the call may be forwarded only if this succeeds.
    pub async fn admit(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let entry = NewEntry::new(&self.principal, "http.call.admitted")
            .resource(&self.resource)
            .subject_id(&self.id)
            .details(json!({
                "call": self.id, "grant_id": self.grant_id, "entitlement": self.entitlement,
                "method": self.method, "path": self.path, "client": self.client,
            }));
        let mut tx = self.app.store.begin().await?;
        tx.audit(now, entry).await?;
        tx.commit().await.map(|_| ())
    }

    fn result_entry(&self) -> NewEntry {
        let duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        NewEntry::new(&self.principal, "http.call.ended")
            .resource(&self.resource)
            .subject_id(&self.id)
            .details(json!({
                "call": self.id, "grant_id": self.grant_id, "entitlement": self.entitlement,
                "method": self.method, "path": self.path, "client": self.client,
                "status": self.status, "duration_ms": duration_ms,
                "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
                "outcome": self.outcome, "audit": self.mode.as_str(),
            }))
    }
}

/// Writes the result when the call is dropped: once its response body ended, was cut, or the
/// caller went away. Off the response's path, in a task of its own.
impl Drop for Call {
    fn drop(&mut self) {
        if !self.sent {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::error!(call = %self.id, "the result of http call {} could not be recorded: no runtime", self.id);
            return;
        };
        let entry = self.result_entry();
        let (app, id) = (self.app.clone(), self.id.clone());
        let now = app.now();
        tracing::debug!(call = %id, status = self.status, outcome = %self.outcome, "http call {id} ended: {} {}", self.status, self.outcome);
        rt.spawn(async move {
            let written = async {
                let mut tx = app.store.begin().await?;
                tx.audit(now, entry).await?;
                tx.commit().await.map(|_| ())
            };
            if let Err(e) = written.await {
                tracing::error!(call = %id, error = %e, "the result of http call {id} could not be recorded: {e}");
            }
        });
    }
}
