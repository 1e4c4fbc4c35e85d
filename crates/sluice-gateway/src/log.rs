//! The session log: statements are hashed into the session's running hash at once and
//! written to the store in batches by one writer task, off the relay's path. A session's end
//! waits for its rows to be written before its session-end entry records the hash.

use crate::config::LogMode;
use crate::scan::Statement;
use chrono::{DateTime, Utc};
use serde_json::json;
use sluice_audit::session_log::{LogHasher, LogRecord, LOG_GENESIS};
use sluice_server::App;
use sluice_store::{NewEntry, StatementChunk};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// One statement on its way to the writer.
struct Row {
    session: Arc<str>,
    seq: i64,
    at: DateTime<Utc>,
    kind: &'static str,
    text: String,
    params: Option<String>,
}

enum Msg {
    Row(Row),
    Flush(oneshot::Sender<bool>),
}

/// A batch's statements, one chunk per session, in arrival (and so `seq`) order.
#[derive(Default)]
struct Batch {
    chunks: Vec<StatementChunk>,
    rows: usize,
    /// A statement that could not be encoded (its session's log is then incomplete).
    failed: Option<sluice_store::StoreError>,
}

impl Batch {
    fn add(&mut self, r: Row) {
        if let Err(e) = self.push(r) {
            self.failed.get_or_insert(e);
        }
    }

    fn push(&mut self, r: Row) -> Result<(), sluice_store::StoreError> {
        self.rows += 1;
        // A batch holds few sessions; the last one written to is the likeliest.
        let i = match self
            .chunks
            .iter()
            .rposition(|c| *c.session_id == *r.session)
        {
            Some(i) => i,
            None => {
                self.chunks.push(StatementChunk::new(&r.session));
                self.chunks.len() - 1
            }
        };
        self.chunks[i].push(r.seq, r.at, r.kind, &r.text, r.params.as_deref())
    }
}

/// The handle sessions write their statements to.
#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<Msg>,
    /// Cuts a gathering short: a session is waiting for its rows.
    flush: std::sync::Arc<tokio::sync::Notify>,
}

/// Statements written per store call at most.
const BATCH: usize = 8192;

/// How long the first row of a batch waits for others before the batch is written (a flush
/// cuts it short). Each store commit rewrites the log's last pages, so fewer, larger commits
/// cost far less per statement: at 20 ms a busy gateway spent a sixth of its CPU here.
const GATHER: std::time::Duration = std::time::Duration::from_millis(200);

/// Takes what is queued, up to a batch.
fn drain(rows: &mut Batch, waiters: &mut Vec<oneshot::Sender<bool>>, rx: &mut mpsc::Receiver<Msg>) {
    while rows.rows < BATCH {
        match rx.try_recv() {
            Ok(Msg::Row(r)) => rows.add(r),
            Ok(Msg::Flush(w)) => waiters.push(w),
            Err(_) => break,
        }
    }
}

impl LogSink {
    /// Starts the writer task.
    pub fn start(app: App) -> LogSink {
        let (tx, mut rx) = mpsc::channel::<Msg>(16_384);
        let flush = std::sync::Arc::new(tokio::sync::Notify::new());
        let flushing = flush.clone();
        tokio::spawn(async move {
            let mut rows = Batch::default();
            let mut waiters = Vec::new();
            while let Some(first) = rx.recv().await {
                match first {
                    Msg::Row(r) => rows.add(r),
                    Msg::Flush(w) => waiters.push(w),
                }
                drain(&mut rows, &mut waiters, &mut rx);
                // Rows arrive one statement at a time; a store transaction for a few rows
                // costs more than the relaying. Unless a batch is full already (then the
                // writer keeps up by writing whole batches) or a session waits for its rows,
                // let a moment's rows gather first.
                if rows.rows < BATCH && waiters.is_empty() {
                    tokio::select! {
                        _ = tokio::time::sleep(GATHER) => {}
                        _ = flushing.notified() => {}
                    }
                    drain(&mut rows, &mut waiters, &mut rx);
                }
                let batch = std::mem::take(&mut rows);
                // What could be encoded is written even when a statement could not be.
                let written = app.store.insert_statement_chunks(&batch.chunks).await;
                let written = match batch.failed {
                    Some(e) => written.and(Err(e)),
                    None => written,
                };
                let ok = match written {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!(error = %e, rows = batch.rows, "writing the session log failed: {e}");
                        false
                    }
                };
                for w in waiters.drain(..) {
                    let _ = w.send(ok);
                }
            }
        });
        LogSink { tx, flush }
    }

    /// Resolves once every row sent before it is written; false if a write failed.
    pub async fn flush(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_err() {
            return false;
        }
        self.flush.notify_one();
        rx.await.unwrap_or(false)
    }
}

/// Records one session's statements: sequence numbers, the running hash, and in strict
/// mode an audit entry per statement before it may be forwarded.
pub struct Recorder {
    pub session_id: Arc<str>,
    pub principal: String,
    pub resource: String,
    pub mode: LogMode,
    pub seq: i64,
    pub hash: String,
    hasher: LogHasher,
    /// False once a row could not be handed to the writer.
    pub complete: bool,
    sink: LogSink,
}

#[derive(Debug, thiserror::Error)]
#[error("the statement could not be recorded in the audit trail: {0}")]
pub struct RecordError(String);

impl Recorder {
    pub fn new(
        sink: LogSink,
        session_id: String,
        principal: String,
        resource: String,
        mode: LogMode,
    ) -> Self {
        Recorder {
            session_id: session_id.into(),
            principal,
            resource,
            mode,
            seq: 0,
            hash: LOG_GENESIS.to_owned(),
            hasher: LogHasher::default(),
            complete: true,
            sink,
        }
    }

    /// Records `statements`; in strict mode returns only once they are in the audit chain.
    pub async fn record(
        &mut self,
        app: &App,
        statements: Vec<Statement>,
    ) -> Result<(), RecordError> {
        if statements.is_empty() {
            return Ok(());
        }
        let now = app.now();
        let mut strict = match self.mode {
            LogMode::Strict => Some(
                app.store
                    .begin()
                    .await
                    .map_err(|e| RecordError(e.to_string()))?,
            ),
            LogMode::SessionLog => None,
        };
        for st in statements {
            self.seq += 1;
            let params = st
                .params
                .as_ref()
                .map(|p| serde_json::Value::from(p.clone()).to_string());
            self.hasher.advance(
                &mut self.hash,
                &LogRecord {
                    seq: self.seq,
                    at: now,
                    kind: st.kind,
                    text: &st.text,
                    params: params.as_deref(),
                },
            );
            if let Some(tx) = strict.as_mut() {
                let entry = NewEntry::new(&self.principal, "gateway.statement")
                    .resource(&self.resource)
                    .subject_id(&*self.session_id)
                    .details(json!({
                        "session": &*self.session_id, "seq": self.seq, "kind": st.kind,
                        "text": st.text, "params": st.params, "truncated": st.truncated,
                    }));
                tx.audit(now, entry)
                    .await
                    .map_err(|e| RecordError(e.to_string()))?;
            }
            let row = Row {
                session: self.session_id.clone(),
                seq: self.seq,
                at: now,
                kind: st.kind,
                text: st.text,
                params,
            };
            if self.sink.tx.send(Msg::Row(row)).await.is_err() {
                self.complete = false;
            }
        }
        if let Some(tx) = strict {
            tx.commit().await.map_err(|e| RecordError(e.to_string()))?;
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> bool {
        let ok = self.sink.flush().await;
        self.complete &= ok;
        self.complete
    }
}
