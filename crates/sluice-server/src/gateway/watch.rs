//! What both gateways hold under a grant — a PostgreSQL session, a streaming HTTP response —
//! and the watch that ends it when the grant does: at expiry (from the App's clock),
//! revocation or relinquishment (the grant leaves the snapshot), or a kill.

use crate::app::App;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How often a watch re-reads its grant from the snapshot (revocations, extensions, and
/// expiry under a clock that is not the wall clock).
pub const TICK: Duration = Duration::from_millis(100);

/// Something running under one grant of one principal.
#[derive(Debug)]
pub struct Hold {
    pub id: String,
    pub principal: String,
    pub grant_id: String,
    /// The grant's end, in milliseconds (an extension moves it).
    pub expires_at_ms: AtomicI64,
    kill: tokio::sync::Notify,
    killed_by: Mutex<Option<String>>,
}

impl Hold {
    pub fn new(id: String, principal: String, grant_id: String, expires_at: DateTime<Utc>) -> Self {
        Hold {
            id,
            principal,
            grant_id,
            expires_at_ms: AtomicI64::new(expires_at.timestamp_millis()),
            kill: tokio::sync::Notify::new(),
            killed_by: Mutex::new(None),
        }
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        sluice_core::clock::from_ms(self.expires_at_ms.load(Ordering::Relaxed))
    }

    /// Asks the holder to end; it closes and records who ended it.
    pub fn kill(&self, by: &str) {
        *self.killed_by.lock().unwrap_or_else(|e| e.into_inner()) = Some(by.to_owned());
        self.kill.notify_one();
    }

    /// Resolves once [`Hold::kill`] was called; returns who killed it.
    pub async fn killed(&self) -> String {
        loop {
            if let Some(by) = self
                .killed_by
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
            {
                return by;
            }
            self.kill.notified().await;
        }
    }
}

/// Resolves when `hold` must end: its grant expired or was withdrawn, or it was killed.
/// Returns why (for the record) and what the client is told. Costs a timer and a snapshot
/// read per [`TICK`], nothing per byte relayed.
pub async fn watch(app: &App, hold: &Hold, resource: &str) -> (String, String) {
    let killed = hold.killed();
    tokio::pin!(killed);
    loop {
        // One timer at a time: the next tick, or the expiry if sooner. The first read comes
        // a tick after the start (the holder was just admitted from the same snapshot), or at
        // once when the grant has already ended; a call that ends sooner never reads it.
        let left = hold.expires_at() - app.now();
        let wait = left.to_std().unwrap_or(Duration::ZERO).min(TICK);
        tokio::select! {
            by = &mut killed => {
                let at = app.now();
                return (
                    format!("killed by {by}"),
                    format!("access to {resource} ended at {}: session {} was ended by {by}", stamp(at), hold.id),
                );
            }
            _ = tokio::time::sleep(wait) => {}
        }
        if let Some(end) = grant_over(app, hold, resource).await {
            return end;
        }
    }
}

/// Has the hold's grant ended (expired, or gone from the snapshot)?
async fn grant_over(app: &App, hold: &Hold, resource: &str) -> Option<(String, String)> {
    let now = app.now();
    let expires_at = {
        let snap = app.access.load();
        snap.grant(&hold.principal, &hold.grant_id)
            .map(|g| g.expires_at)
    };
    match expires_at {
        Some(e) if now < e => {
            hold.expires_at_ms
                .store(e.timestamp_millis(), Ordering::Relaxed);
            None
        }
        Some(e) => Some((
            "grant expired".into(),
            format!(
                "access to {resource} ended at {}: grant {} expired",
                stamp(e),
                hold.grant_id
            ),
        )),
        None => {
            // Revoked or relinquished (or recorded as expired): say which.
            let status = match app.store.request(&hold.grant_id).await {
                Ok(Some(r))
                    if r.expires_at.is_some_and(|e| e <= now) && r.status.as_str() == "expired" =>
                {
                    "expired".to_owned()
                }
                Ok(Some(r)) => r.status.as_str().to_owned(),
                _ => "withdrawn".to_owned(),
            };
            let at = if status == "expired" {
                hold.expires_at()
            } else {
                now
            };
            Some((
                format!("grant {status}"),
                format!(
                    "access to {resource} ended at {}: grant {} {}",
                    stamp(at),
                    hold.grant_id,
                    if status == "expired" {
                        "expired".to_owned()
                    } else {
                        format!("was {status}")
                    }
                ),
            ))
        }
    }
}

/// A moment as the gateways say it to clients: RFC 3339, whole seconds, `Z`.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
