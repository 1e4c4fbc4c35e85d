//! Refused attempts in the audit trail: who tried what, and why it was refused.
//!
//! A refusal is recorded by [`record`], a middleware on the administrative API: the error
//! response carries a [`Refused`] mark (set where errors become responses, `error.rs`), the
//! authenticated caller fills a [`CallerSlot`], and the middleware writes one `refused` entry
//! before the answer leaves. A flood cannot fill the disk: per principal, the first
//! [`PER_MINUTE`] refusals of a minute are recorded one by one, the rest only counted, and the
//! count is written as one `refused.suppressed` entry when the minute is over.
//!
//! Recording a refusal is best effort: if it cannot be written, the caller still gets the
//! refusal (nothing changed, so nothing is unaudited), and the failure is logged.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;
use sluice_audit::NewEntry;
use sluice_core::Clock;
use sluice_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// How many refusals of one principal are recorded individually per minute.
pub const PER_MINUTE: u32 = 20;

/// Marks an error response as a refusal by policy (set in `error.rs`).
#[derive(Debug, Clone)]
pub struct Refused {
    pub code: &'static str,
    pub message: String,
}

/// Filled by the authentication extractor with the caller's name.
#[derive(Debug, Clone, Default)]
pub struct CallerSlot(pub Arc<OnceLock<String>>);

#[derive(Debug, Default)]
struct Window {
    minute: i64,
    recorded: u32,
    suppressed: u32,
}

/// Where refusals are written, and the per-principal counts of the current minute. Cheap to
/// clone: clones share the counts.
#[derive(Clone)]
pub struct RefusalLog {
    store: Store,
    clock: Arc<dyn Clock>,
    windows: Arc<Mutex<HashMap<String, Window>>>,
}

enum Verdict {
    Record,
    /// Counted; the first suppressed one of a window schedules the summary.
    Suppress {
        first: bool,
    },
}

impl RefusalLog {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        RefusalLog {
            store,
            clock,
            windows: Arc::default(),
        }
    }

    fn admit(&self, who: &str, minute: i64) -> Verdict {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = windows.entry(who.to_owned()).or_default();
        if w.minute != minute {
            // A summary of the old window is written by the task its first suppression
            // scheduled; here the window starts again.
            *w = Window {
                minute,
                ..Window::default()
            };
        }
        if w.recorded < PER_MINUTE {
            w.recorded += 1;
            Verdict::Record
        } else {
            w.suppressed += 1;
            Verdict::Suppress {
                first: w.suppressed == 1,
            }
        }
    }

    /// Takes the count suppressed for `who` in `minute` (once).
    fn take_suppressed(&self, who: &str, minute: i64) -> u32 {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        match windows.get_mut(who) {
            Some(w) if w.minute == minute => std::mem::take(&mut w.suppressed),
            _ => 0,
        }
    }
}

/// Middleware: records the refusal an administrative request ended in, if any.
pub async fn record(State(log): State<RefusalLog>, mut req: Request, next: Next) -> Response {
    let slot = CallerSlot::default();
    req.extensions_mut().insert(slot.clone());
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let resp = next.run(req).await;
    if let (Some(refused), Some(who)) = (resp.extensions().get::<Refused>(), slot.0.get()) {
        log.record_refusal(who, &format!("{method} {path}"), None, refused)
            .await;
    }
    resp
}

impl RefusalLog {
    /// Records that `who` was refused `what` (`METHOD path`), under the per-minute limit.
    /// `resource` names what it was about; without it, it is read from an API path. The HTTP
    /// gateway records its refusals here too, so a flood of them is bounded the same way.
    pub async fn record_refusal(
        &self,
        who: &str,
        what: &str,
        resource: Option<&str>,
        refused: &Refused,
    ) {
        let now = self.clock.now();
        let minute = now.timestamp().div_euclid(60);
        crate::metrics::refused();
        match self.admit(who, minute) {
            Verdict::Record => {
                let mut entry = NewEntry::new(who, "refused").details(
                    json!({"request": what, "code": refused.code, "message": refused.message}),
                );
                if let Some(r) = resource.map(str::to_owned).or_else(|| resource_of(what)) {
                    entry = entry.resource(r);
                }
                if let Err(e) = self.write_refusal(now, entry).await {
                    tracing::warn!(principal = who, error = %e, "recording a refusal of {who} failed: {e}");
                }
            }
            Verdict::Suppress { first: true } => {
                let (log, who) = (self.clone(), who.to_owned());
                tokio::spawn(async move {
                    let end_ms = (minute + 1) * 60_000;
                    let wait = (end_ms - log.clock.now().timestamp_millis()).max(0);
                    tokio::time::sleep(std::time::Duration::from_millis(
                        u64::try_from(wait).unwrap_or(0),
                    ))
                    .await;
                    log.write_suppressed(&who, minute).await;
                });
            }
            Verdict::Suppress { first: false } => {}
        }
    }

    async fn write_suppressed(&self, who: &str, minute: i64) {
        let count = self.take_suppressed(who, minute);
        if count == 0 {
            return;
        }
        let from = chrono::DateTime::from_timestamp(minute * 60, 0).map(|t| t.to_rfc3339());
        let entry = NewEntry::new(who, "refused.suppressed").details(json!({
            "count": count,
            "minute_from": from,
            "note": format!("{count} more refusals of {who} in this minute were counted, not recorded one by one"),
        }));
        if let Err(e) = self.write_refusal(self.clock.now(), entry).await {
            tracing::warn!(principal = who, error = %e, "recording suppressed refusals of {who} failed: {e}");
        }
    }

    async fn write_refusal(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        entry: NewEntry,
    ) -> Result<(), sluice_store::StoreError> {
        let mut tx = self.store.begin().await?;
        tx.audit(now, entry).await?;
        tx.commit().await.map(|_| ())
    }
}

/// The resource a refused request was about, when its path names one (a flag, a request).
fn resource_of(what: &str) -> Option<String> {
    let path = what.split_once(' ').map_or(what, |(_, p)| p);
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["v1", "environments", env, "flags", key, ..] => Some(format!("flag:{env}/{key}")),
        ["v1", "environments", env, ..] => Some(format!("flag:{env}/*")),
        _ => None,
    }
}
