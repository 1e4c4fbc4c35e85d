//! The audit trail of calls. Each call leaves records in the call log (`http_calls`):
//! `admitted` before it is forwarded (fail-closed, `audit: before`, the default), `ended` with
//! the outcome once the response is over, or `refused`. One writer task writes them in batches;
//! each batch commits in one transaction with one chained audit entry, `http.calls.recorded`,
//! holding the batch's hash (`audit verify` recomputes it from the rows). The chain's cost is
//! then per batch, not per call.
//!
//! Fail-closed: an admission waits until the batch holding it is durable. The writer starts a
//! batch as soon as an admission is queued, and whatever queues while a batch commits goes into
//! the next one (group commit), so throughput grows with concurrency. `ended` and `refused`
//! records do not wait: they ride with the next admissions, or are written after at most
//! [`GATHER`]. With `audit: after` only `ended` is written, best effort: a crash or a failing
//! store loses it; the call has happened either way.

use crate::config::AuditMode;
use chrono::{DateTime, Utc};
use serde_json::json;
use sluice_server::App;
use sluice_store::{CallRow, NewEntry, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, Notify};

/// The actor of the entries sealing batches of call records.
const ACTOR: &str = "system:http-gateway";

/// Records per batch at most.
const BATCH: usize = 8192;

/// How long a record nobody waits for may wait for others before its batch is written.
const GATHER: std::time::Duration = std::time::Duration::from_millis(100);

/// Records queued at most; beyond, `ended` and `refused` records are dropped (and said so in
/// the log) rather than held in memory while the store is stuck. Admissions wait for room.
const QUEUE: usize = 65_536;

/// One record on its way to the writer.
pub(crate) struct Record {
    call_id: String,
    event: &'static str,
    at: DateTime<Utc>,
    principal: String,
    resource: String,
    /// JSON text (written as stored, without building a `serde_json::Value` first).
    details: String,
}

enum Msg {
    Record(Record),
    /// An admission: answered once its batch is durable (false if it failed).
    Admit(Record, oneshot::Sender<bool>),
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<bool>),
}

/// The handle calls send their records to.
#[derive(Clone)]
pub(crate) struct CallLog {
    tx: mpsc::Sender<Msg>,
    /// Cuts a gathering short: someone waits.
    wake: Arc<Notify>,
}

impl CallLog {
    /// Starts the writer task.
    pub(crate) fn start(app: App) -> CallLog {
        let (tx, mut rx) = mpsc::channel::<Msg>(QUEUE);
        let wake = Arc::new(Notify::new());
        let woken = wake.clone();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            let mut waiters = Vec::new();
            while let Some(first) = rx.recv().await {
                take(first, &mut batch, &mut waiters);
                drain(&mut batch, &mut waiters, &mut rx);
                if waiters.is_empty() && batch.len() < BATCH {
                    tokio::select! {
                        _ = tokio::time::sleep(GATHER) => {}
                        _ = woken.notified() => {}
                    }
                    drain(&mut batch, &mut waiters, &mut rx);
                }
                let rows = std::mem::take(&mut batch);
                let ok = match write(&app, rows).await {
                    Ok(()) => true,
                    Err((n, e)) => {
                        tracing::error!(error = %e, records = n, "{n} http call records could not be written: {e}");
                        false
                    }
                };
                for w in waiters.drain(..) {
                    let _ = w.send(ok);
                }
            }
        });
        CallLog { tx, wake }
    }

    /// Queues a record nobody waits for.
    pub(crate) fn record(&self, r: Record) {
        let call = r.call_id.clone();
        if let Err(e) = self.tx.try_send(Msg::Record(r)) {
            tracing::error!(call = %call, "the record of http call {call} was dropped: {e}");
        }
    }

    /// Queues an admission and waits until it is durable.
    pub(crate) async fn admit(&self, r: Record) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        let unavailable = || StoreError::Unavailable("the call log writer stopped".into());
        self.tx
            .send(Msg::Admit(r, tx))
            .await
            .map_err(|_| unavailable())?;
        self.wake.notify_one();
        match rx.await {
            Ok(true) => Ok(()),
            Ok(false) => Err(StoreError::Unavailable(
                "the batch holding the admission could not be written".into(),
            )),
            Err(_) => Err(unavailable()),
        }
    }

    /// Resolves once every record queued before it is written; false if a write failed.
    pub(crate) async fn flush(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_err() {
            return false;
        }
        self.wake.notify_one();
        rx.await.unwrap_or(false)
    }
}

fn take(m: Msg, batch: &mut Vec<Record>, waiters: &mut Vec<oneshot::Sender<bool>>) {
    match m {
        Msg::Record(r) => batch.push(r),
        Msg::Admit(r, w) => {
            batch.push(r);
            waiters.push(w);
        }
        Msg::Flush(w) => waiters.push(w),
    }
}

/// Takes what is queued, up to a batch.
fn drain(
    batch: &mut Vec<Record>,
    waiters: &mut Vec<oneshot::Sender<bool>>,
    rx: &mut mpsc::Receiver<Msg>,
) {
    while batch.len() < BATCH {
        match rx.try_recv() {
            Ok(m) => take(m, batch, waiters),
            Err(_) => break,
        }
    }
}

/// Writes one batch and the entry sealing it, in one transaction.
async fn write(app: &App, records: Vec<Record>) -> Result<(), (usize, StoreError)> {
    let n = records.len();
    if n == 0 {
        return Ok(());
    }
    let mut rows = Vec::with_capacity(n);
    let (mut admitted, mut ended, mut refused) = (0u64, 0u64, 0u64);
    for (pos, r) in records.into_iter().enumerate() {
        match r.event {
            "admitted" => admitted += 1,
            "ended" => ended += 1,
            _ => refused += 1,
        }
        rows.push(CallRow {
            batch_seq: 0,
            pos: i64::try_from(pos).unwrap_or(i64::MAX),
            call_id: r.call_id,
            event: r.event.to_owned(),
            at: r.at.timestamp_millis(),
            principal: r.principal,
            resource: r.resource,
            details: r.details,
        });
    }
    let hash = sluice_store::http_call_batch_hash(&rows);
    let written = async {
        let mut tx = app.store.begin().await?;
        tx.audit(
            app.now(),
            NewEntry::new(ACTOR, "http.calls.recorded").details(json!({
                "records": n, "hash": hash,
                "admitted": admitted, "ended": ended, "refused": refused,
            })),
        )
        .await?;
        // Sealed by that entry: the store gives the rows its `seq` once it is certain.
        tx.insert_http_calls(&rows).await?;
        tx.commit().await.map(|_| ())
    };
    written.await.map_err(|e| (n, e))
}

/// One call, from admission to the end of its response.
pub struct Call {
    pub(crate) app: App,
    pub(crate) log: CallLog,
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
    /// Request body bytes read from the caller (and sent upstream), counted as they pass.
    pub bytes_in: Arc<AtomicU64>,
    pub bytes_out: u64,
    /// How it ended: `completed`, `cut: grant expired`, `client went away`, …
    pub outcome: String,
    /// Set once the call is sent upstream: from then on its result is recorded.
    pub sent: bool,
    /// Its entry in the registry of calls in progress, left when the call is dropped.
    pub live: Option<std::sync::Arc<sluice_server::gateway::http_live::LiveCall>>,
}

impl Call {
    fn record(&self, event: &'static str, details: String) -> Record {
        Record {
            call_id: self.id.clone(),
            event,
            at: self.app.now(),
            principal: self.principal.clone(),
            resource: self.resource.clone(),
            details,
        }
    }

    /// Says how the call ended (recorded when it is dropped).
    pub(crate) fn ends(&mut self, outcome: String) {
        self.outcome = outcome;
    }

    /// Records the admission durably; the call may be forwarded only if this succeeds.
    pub async fn admit(&self) -> Result<(), StoreError> {
        let details = json_text(&self.admission());
        self.log.admit(self.record("admitted", details)).await
    }

    /// Response bytes relayed (for an upgraded connection, counted by the splice).
    fn bytes_out(&self) -> u64 {
        self.live.as_ref().map_or(self.bytes_out, |l| {
            self.bytes_out.max(l.bytes_out.load(Ordering::Relaxed))
        })
    }

    fn admission(&self) -> Admission<'_> {
        Admission {
            grant_id: &self.grant_id,
            entitlement: &self.entitlement,
            method: &self.method,
            path: &self.path,
            client: &self.client,
        }
    }

    fn result_details(&self) -> String {
        let duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        json_text(&Ending {
            admission: self.admission(),
            status: self.status,
            duration_ms,
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out(),
            outcome: &self.outcome,
            audit: self.mode.as_str(),
        })
    }
}

/// An admission's details (and the first fields of an end's), in this order.
#[derive(serde::Serialize)]
struct Admission<'a> {
    grant_id: &'a str,
    entitlement: &'a str,
    method: &'a str,
    path: &'a str,
    client: &'a str,
}

/// A call's end: what it was admitted as, and how it went.
#[derive(serde::Serialize)]
struct Ending<'a> {
    #[serde(flatten)]
    admission: Admission<'a>,
    status: u16,
    duration_ms: u64,
    bytes_in: u64,
    bytes_out: u64,
    outcome: &'a str,
    audit: &'a str,
}

/// A refusal's details.
#[derive(serde::Serialize)]
struct RefusalDetails<'a> {
    method: &'a str,
    path: &'a str,
    client: &'a str,
    status: u16,
    code: &'a str,
    outcome: String,
}

/// `details` as JSON text (a struct of strings and numbers always serialises).
fn json_text(details: &impl serde::Serialize) -> String {
    serde_json::to_string(details).unwrap_or_else(|_| "{}".to_owned())
}

/// A call refused by the gateway itself (no grant, an ambiguous path, a body over the limit…),
/// recorded beside the calls of the service it named.
pub(crate) struct Refused<'a> {
    pub principal: &'a str,
    pub resource: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub client: String,
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl CallLog {
    pub(crate) fn refused(&self, app: &App, r: Refused<'_>) {
        self.record(Record {
            call_id: sluice_server::ids::new_id("htc"),
            event: "refused",
            at: app.now(),
            principal: r.principal.to_owned(),
            resource: r.resource.to_owned(),
            details: json_text(&RefusalDetails {
                method: r.method,
                path: r.path,
                client: &r.client,
                status: r.status,
                code: r.code,
                outcome: format!("refused: {}", r.message),
            }),
        });
    }
}

/// Records the result when the call is dropped: once its response body ended, was cut, or the
/// caller went away. Queued for the writer, off the response's path.
impl Drop for Call {
    fn drop(&mut self) {
        if let Some(live) = &self.live {
            self.app.http_gateway.calls.remove(&live.id);
        }
        if !self.sent {
            return;
        }
        tracing::debug!(call = %self.id, status = self.status, outcome = %self.outcome, "http call {} ended: {} {}", self.id, self.status, self.outcome);
        let r = self.record("ended", self.result_details());
        self.log.record(r);
    }
}
