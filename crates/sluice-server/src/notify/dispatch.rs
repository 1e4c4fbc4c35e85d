//! The dispatcher: a background task of every instance that claims due outbox rows (with a
//! lease, so instances share the work and a dead instance's claims lapse), delivers them,
//! records each attempt, and schedules a retry with exponential backoff (capped) or gives up
//! after the attempt limit (`dead`, retried by hand with `sluice notifications retry`).
//! Delivery is at least once: a row is marked only after its delivery was answered, so a
//! crash in between sends it again, with the same `webhook-id`.

use super::config::{NotifyConfig, Sink, SinkKind};
use super::events::Router;
use crate::app::App;
use sluice_store::{AfterAttempt, Attempt, OutboxRow, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// Rows claimed per pass.
const BATCH: i64 = 64;
/// How often the dispatcher looks for rows it was not woken for: other instances' rows, and
/// retries falling due.
const POLL: Duration = Duration::from_millis(250);

/// What a running server needs to notify.
pub struct Notifier {
    pub config: NotifyConfig,
    pub sinks: Arc<Vec<Sink>>,
    client: reqwest::Client,
    /// This instance, as recorded on claims and attempts.
    pub instance: String,
}

impl Notifier {
    pub fn new(config: NotifyConfig) -> Result<Notifier, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Notifier {
            sinks: Arc::new(config.sinks.clone()),
            config,
            client,
            instance: crate::ids::new_id("inst"),
        })
    }

    /// The router the store calls for every committed audit entry.
    pub fn router(&self, app: &App) -> Router {
        Router {
            sinks: self.sinks.clone(),
            public_url: app.public_url().to_owned(),
            policy: app.policy_reader(),
            chat_users: Arc::new(self.config.chat_users.clone()),
        }
    }
}

/// Delivers until aborted.
pub async fn run(app: App, n: Arc<Notifier>) {
    let written = app.store.outbox_written();
    let router = n.router(&app);
    let mut last_remind: Option<tokio::time::Instant> = None;
    let mut last_count: Option<tokio::time::Instant> = None;
    loop {
        let wake = written.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let claimed = match pass(&app, &n).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "delivering notifications failed: {e}");
                0
            }
        };
        if last_remind.is_none_or(|t| t.elapsed() >= n.config.remind_every) {
            last_remind = Some(tokio::time::Instant::now());
            if let Err(e) = remind(&app, &n, &router).await {
                tracing::warn!(error = %e, "writing reminders failed: {e}");
            }
        }
        if last_count.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            last_count = Some(tokio::time::Instant::now());
            if let Ok(c) = app.store.outbox_counts().await {
                crate::metrics::notifications_pending(c.pending, c.dead);
            }
        }
        if claimed < BATCH as usize {
            tokio::select! {
                () = &mut wake => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// One pass: claims what is due and delivers it. Returns how many rows were claimed.
pub async fn pass(app: &App, n: &Notifier) -> Result<usize, StoreError> {
    let now = app.now();
    let lease = chrono::Duration::from_std(n.config.lease).unwrap_or(chrono::Duration::MAX);
    let rows = app
        .store
        .claim_outbox(&n.instance, now, now + lease, BATCH)
        .await?;
    let claimed = rows.len();
    let attempts = futures_util::future::join_all(rows.iter().map(|r| deliver(app, n, r))).await;
    let done: Vec<(String, Attempt)> = rows
        .iter()
        .map(|r| r.id.clone())
        .zip(attempts.iter().cloned())
        .collect();
    let recorded = app
        .store
        .record_attempts(&n.instance, &n.instance, &done)
        .await?;
    for ((row, attempt), recorded) in rows.iter().zip(&attempts).zip(recorded) {
        if recorded {
            report(row, attempt);
        } else {
            tracing::warn!(id = %row.id, "notification {}: the lease lapsed during delivery; another instance has it", row.id);
        }
    }
    Ok(claimed)
}

/// Delivers one claimed row; returns the attempt, to be recorded.
async fn deliver(app: &App, n: &Notifier, row: &OutboxRow) -> Attempt {
    let at = app.now();
    let started = tokio::time::Instant::now();
    let outcome = match n.sinks.iter().find(|s| s.name == row.sink) {
        Some(sink) => send(n, sink, row, at).await,
        None => Err((None, format!("no sink named `{}` is configured", row.sink))),
    };
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let attempts = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
    let (http_status, error, then) = match outcome {
        Ok(status) => (Some(status), None, AfterAttempt::Delivered),
        Err((status, error)) if attempts >= n.config.max_attempts => {
            (status, Some(error), AfterAttempt::Dead)
        }
        Err((status, error)) => {
            let wait = chrono::Duration::from_std(n.config.backoff_after(attempts))
                .unwrap_or(chrono::Duration::MAX);
            (status, Some(error), AfterAttempt::RetryAt(at + wait))
        }
    };
    Attempt {
        at,
        http_status,
        error,
        duration_ms,
        then,
    }
}

/// Metrics and logs of a recorded attempt.
fn report(row: &OutboxRow, a: &Attempt) {
    let attempts = row.attempts + 1;
    let error = &a.error;
    match a.then {
        AfterAttempt::Delivered => {
            let lag = (a.at - row.created_at).num_milliseconds().max(0) as f64 / 1000.0;
            crate::metrics::notification_delivered(lag);
        }
        AfterAttempt::RetryAt(next) => {
            crate::metrics::notification_failed();
            tracing::info!(id = %row.id, sink = %row.sink, attempts, "notification {} to {} failed ({}); retrying at {next}", row.id, row.sink, error.as_deref().unwrap_or_default());
        }
        AfterAttempt::Dead => {
            crate::metrics::notification_failed();
            crate::metrics::notification_dead();
            tracing::warn!(id = %row.id, sink = %row.sink, attempts, "notification {} to {} dead after {attempts} attempts: {}", row.id, row.sink, error.as_deref().unwrap_or_default());
        }
    }
}

/// Sends one row to its sink: `Ok(status)` on a 2xx answer, else the status (if any) and why.
async fn send(
    n: &Notifier,
    sink: &Sink,
    row: &OutboxRow,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<i64, (Option<i64>, String)> {
    let request = match sink.kind {
        SinkKind::Webhook => {
            let ts = at.timestamp();
            let sig = super::sign::signature(
                sink.key.as_deref().unwrap_or_default(),
                &row.id,
                ts,
                &row.payload,
            );
            n.client
                .post(&sink.url)
                .header("content-type", "application/json")
                .header("webhook-id", &row.id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(row.payload.clone())
        }
        SinkKind::Slack => {
            let payload: serde_json::Value = serde_json::from_str(&row.payload)
                .map_err(|e| (None, format!("the stored payload is not JSON: {e}")))?;
            n.client
                .post(&sink.url)
                .json(&super::slack::message(&payload))
        }
    };
    match request.send().await {
        Ok(r) if r.status().is_success() => Ok(i64::from(r.status().as_u16())),
        Ok(r) => Err((
            Some(i64::from(r.status().as_u16())),
            format!("the sink answered {}", r.status()),
        )),
        Err(e) => Err((None, format!("no answer: {e}"))),
    }
}

/// Writes the reminders due now (each once: their ids come from what they remind of).
async fn remind(app: &App, n: &Notifier, router: &Router) -> Result<(), StoreError> {
    let r = n.config.reminders;
    if r == super::config::Reminders::default() || n.sinks.is_empty() {
        return Ok(());
    }
    use sluice_core::access::RequestStatus;
    use sluice_store::RequestFilter;
    let now = app.now();
    // By id: a request may be both active and unreviewed.
    let mut requests = std::collections::BTreeMap::new();
    let mut found = Vec::new();
    if r.expiring_before.is_some() {
        found.extend(app.store.active_requests().await?);
    }
    if r.pending_after.is_some() {
        found.extend(
            app.store
                .requests(&RequestFilter {
                    status: Some(RequestStatus::Pending),
                    ..RequestFilter::default()
                })
                .await?,
        );
    }
    if r.unreviewed_after.is_some() {
        found.extend(
            app.store
                .requests(&RequestFilter {
                    needs_review: Some(true),
                    ..RequestFilter::default()
                })
                .await?,
        );
    }
    for q in found {
        requests.insert(q.id.clone(), q);
    }
    let requests: Vec<_> = requests.into_values().collect();
    let mut messages = Vec::new();
    for due in super::remind::due(&requests, &r, now) {
        messages.extend(router.messages(
            due.event,
            now,
            Some(&due.resource),
            due.data,
            Some(&due.key),
        ));
    }
    for chunk in messages.chunks(100) {
        app.store.enqueue(now, chunk).await?;
    }
    Ok(())
}
