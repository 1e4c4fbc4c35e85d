//! Sluice's store: SQLite (the zero-configuration default) or PostgreSQL, behind one SQL
//! dialect (see `migrations/`), through sqlx's `Any` driver.
//!
//! Every change goes through a [`WriteTx`]: its audit entries are chained under the audit
//! chain head's lock, and the change and its entries commit together or not at all ("no
//! audit, no action"). Audited writes go through one connection per store handle and share
//! batch transactions (see `batch`): on SQLite they are serialised in-process, never meet
//! `SQLITE_BUSY` among themselves, and share the commit and the fsync; on PostgreSQL each
//! batch takes the chain head's lock at its commit, so the instances' batches run side by
//! side and take turns only to commit.

mod audit;
mod batch;
mod change_requests;
mod copy;
mod declared;
mod durable;
mod error;
mod flags;
mod gateway;
mod http_calls;
mod http_services;
mod insight;
mod listen;
mod outbox;
mod prepared;
mod principals;
mod records;
mod requests;
mod schedule;
mod seen;
mod sign_ins;
mod state;
mod tx;

pub use audit::AuditQuery;
pub use change_requests::StoredChangeRequest;
pub use copy::CopyReport;
pub use error::StoreError;
pub use flags::{FlagConflict, FlagWrite, StoredFlag, StoredFlagSet};
pub use gateway::{DeclaredDatabase, GatewaySession, LoggedStatement, SessionEnd, StatementChunk};
pub use http_calls::{http_call_batch_hash, CallRow};
pub use http_services::DeclaredService;
pub use insight::{day_of, day_start, ClientEvaluations, EvaluationCount, EvaluationTotal};
pub use listen::LISTENER_APPLICATION;
pub use requests::LAPSED_REQUESTS_SQL;

pub use outbox::{
    AfterAttempt, Attempt, AttemptRow, OutboxCounts, OutboxMessage, OutboxRouter, OutboxRow,
    OutboxState,
};
pub use principals::{PrincipalRow, TokenRow};
pub use requests::{RequestFilter, Visibility};
pub use schedule::{ScheduledChange, ScheduledStatus};
pub use seen::SeenRequest;
pub use sign_ins::PendingSignIn;
pub use sluice_audit::{AuditEntry, ChainHead, Checkpoint, NewEntry};
pub use state::{AccessState, GrantChanges, StateRevs};
pub use tx::{Revision, WriteTx};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    read: AnyPool,
    write: AnyPool,
    backend: Backend,
    /// SQLite only: audited writes share transactions and fsyncs (see `batch`).
    batch: Option<std::sync::Arc<batch::Batcher>>,
    /// PostgreSQL: audited writes of this handle share transactions (see `batch`); other
    /// writes (checkpoints, outbox bookkeeping) keep transactions of their own.
    pg_batch: Option<std::sync::Arc<batch::Batcher>>,
    /// The highest audit `seq` this handle committed; see [`Store::committed_audit`].
    committed: std::sync::Arc<tokio::sync::watch::Sender<i64>>,
    /// SQLite only: the directory of the database file, where [`Store::writable`] probes.
    dir: Option<std::path::PathBuf>,
    /// Which notifications audit entries give rise to (see [`OutboxRouter`]).
    router: outbox::RouterSlot,
    /// Woken when this handle commits outbox rows.
    outbox_notify: std::sync::Arc<tokio::sync::Notify>,
    /// Other instances' commits, as heard through PostgreSQL `LISTEN` (see `listen`).
    changes: std::sync::Arc<listen::Changes>,
    /// PostgreSQL: the batch's commit signer and its newest checkpoint (see
    /// [`Store::sign_commits_with`]).
    signing: std::sync::Arc<batch::CommitSigning>,
    /// Audit-only writes waiting to be grouped (see `records`).
    recorder: std::sync::Arc<records::Recorder>,
    /// PostgreSQL: the active requests as last read (see `state::ActiveCache`).
    active_cache: std::sync::Arc<state::ActiveCache>,
    /// PostgreSQL batch: the pending requests this handle wrote last (see
    /// [`Store::seen_request`]).
    seen: std::sync::Arc<seen::SeenRequests>,
}

/// How long the store lets the database make it wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// The longest a statement waits for a lock held elsewhere (PostgreSQL `lock_timeout`,
    /// SQLite `busy_timeout`); then it fails with [`StoreError::Busy`].
    pub lock_timeout: Duration,
    /// The longest one statement may run (PostgreSQL `statement_timeout`); then it fails with
    /// [`StoreError::Busy`].
    pub statement_timeout: Duration,
    /// PostgreSQL: concurrent audited writes of this handle share transactions (see `batch`);
    /// off, each takes the chain head's lock in a transaction of its own (only to measure
    /// what batching brings). SQLite always batches.
    pub pg_batch: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            pg_batch: true,
        }
    }
}

/// How long `/readyz` waits for SQLite's write lock before it says the database is locked.
const READY_LOCK_WAIT: Duration = Duration::from_secs(1);

impl Store {
    /// Connects, creating the SQLite file if needed, and runs the embedded migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Self::open_with(url, StoreOptions::default()).await
    }

    /// [`Store::open`] with timeouts other than the defaults.
    pub async fn open_with(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let lock_ms = options.lock_timeout.as_millis().max(1);
        let statement_ms = options.statement_timeout.as_millis().max(1);
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::BadUrl(url.to_owned()));
        };
        let store = match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') {
                    url.to_owned()
                } else {
                    format!("{url}?mode=rwc")
                };
                let opts = || {
                    AnyPoolOptions::new().after_connect(move |conn, _| {
                        Box::pin(async move {
                            conn.execute(format!("PRAGMA busy_timeout = {lock_ms}").as_str())
                                .await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            // Commits reach the WAL at once; the Flusher fsyncs it before any
                            // caller is answered (group commit), so acknowledged means durable.
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            // Statement journals (every multi-row INSERT in a transaction
                            // keeps one) and sorts stay in memory: on disk they were a write
                            // per page per statement, the most of what a busy session log cost.
                            conn.execute("PRAGMA temp_store = MEMORY").await?;
                            Ok(())
                        })
                    })
                };
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:");
                let path = path.split('?').next().unwrap_or(path);
                create_private(std::path::Path::new(path))?;
                let write = opts().max_connections(1).connect(&url).await?;
                write.execute("PRAGMA journal_mode = WAL").await?;
                let read = opts().max_connections(8).connect(&url).await?;
                let dir = std::path::Path::new(path).parent().map(|d| {
                    if d.as_os_str().is_empty() {
                        ".".into()
                    } else {
                        d.to_path_buf()
                    }
                });
                let flusher = std::sync::Arc::new(durable::Flusher::new(path.into()));
                let conn = write.acquire().await?.detach();
                let batch = Some(std::sync::Arc::new(batch::Batcher::start(conn, flusher)));
                Store {
                    read,
                    write,
                    backend,
                    batch,
                    pg_batch: None,
                    committed: Default::default(),
                    dir,
                    router: Default::default(),
                    outbox_notify: Default::default(),
                    changes: std::sync::Arc::new(listen::Changes::new(None)),
                    signing: Default::default(),
                    recorder: Default::default(),
                    active_cache: Default::default(),
                    seen: Default::default(),
                }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(2))
                    // A lock held elsewhere (another instance's transaction, an operator's
                    // session) or a runaway statement fails the one request, 503, instead of
                    // stalling every write behind the chain head for as long as it lasts.
                    .after_connect(move |conn, _| {
                        Box::pin(async move {
                            // Literal text written into batched statements relies on
                            // `standard_conforming_strings` (see `tx::inline`).
                            conn.execute(
                                format!(
                                    "SET lock_timeout = {lock_ms}; SET statement_timeout = {statement_ms}; \
                                     SET standard_conforming_strings = on"
                                )
                                .as_str(),
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?;
                let changes = std::sync::Arc::new(listen::Changes::new(Some(url.to_owned())));
                let signing = std::sync::Arc::new(batch::CommitSigning::default());
                let pg_batch = if options.pg_batch {
                    let conn = pool.acquire().await?.detach();
                    Some(std::sync::Arc::new(batch::Batcher::start_pg(
                        conn,
                        pool.clone(),
                        changes.clone(),
                        signing.clone(),
                    )))
                } else {
                    None
                };
                Store {
                    read: pool.clone(),
                    write: pool,
                    backend,
                    batch: None,
                    pg_batch,
                    committed: Default::default(),
                    dir: None,
                    router: Default::default(),
                    outbox_notify: Default::default(),
                    changes,
                    signing,
                    recorder: Default::default(),
                    active_cache: Default::default(),
                    seen: Default::default(),
                }
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Runs the embedded migrations (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.write).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts an audited write transaction (locks the chain head).
    pub async fn begin(&self) -> Result<WriteTx, StoreError> {
        let tx = match self.batch.as_ref().or(self.pg_batch.as_ref()) {
            Some(batch) => WriteTx::join(batch).await,
            None => WriteTx::begin(&self.write, self.changes.clone()).await,
        }?;
        Ok(tx
            .announcing_to(self.committed.clone())
            .remembering_in(self.seen.clone())
            .routing_to(self.router.get().cloned(), self.outbox_notify.clone()))
    }

    /// Changes whenever a write through this handle (or a clone) commits audit entries: holds
    /// the highest `seq` committed. Writes by other processes are not seen here; read the
    /// table for those.
    pub fn committed_audit(&self) -> tokio::sync::watch::Receiver<i64> {
        self.committed.subscribe()
    }

    /// PostgreSQL with batched writes: every batch commit also stores a checkpoint of the head
    /// it writes, signed by `sign` while the commit holds the head's lock, so a batch leaves
    /// no unsigned tail and needs no checkpoint transaction after it. Returns false (and
    /// keeps nothing) elsewhere: SQLite's checkpoints already share the batch, and unbatched
    /// PostgreSQL writes are signed after their commit. Set once; later calls change nothing.
    pub fn sign_commits_with(
        &self,
        sign: impl Fn(&sluice_audit::ChainHead) -> sluice_audit::Checkpoint + Send + Sync + 'static,
    ) -> bool {
        self.pg_batch.is_some() && self.signing.signer.set(std::sync::Arc::new(sign)).is_ok()
    }

    /// The newest checkpoint a batch commit of this handle stored (see
    /// [`Store::sign_commits_with`]); `None` until one did. It changes before the writers of
    /// that batch are answered, so before [`Store::committed_audit`] does.
    pub fn signed_in_commit(
        &self,
    ) -> tokio::sync::watch::Receiver<Option<sluice_audit::Checkpoint>> {
        self.signing.signed.subscribe()
    }

    /// Is the database reachable?
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.read).await.is_ok()
    }

    /// Can anything be written now? `Err` says why not. On PostgreSQL: the chain-head lock,
    /// which every audited write takes to commit, is obtained within a second (and released); on
    /// SQLite: a page written and synced beside the database file (a full disk or a read-only
    /// volume fail it), then the write lock (another process holding it fails it). Cheap enough for a readiness probe.
    pub async fn writable(&self) -> Result<(), StoreError> {
        match &self.dir {
            None => {
                let mut tx = self.write.begin().await?;
                sqlx::query("SET LOCAL lock_timeout = 1000")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
                    .execute(&mut *tx)
                    .await?;
                tx.rollback().await?;
                Ok(())
            }
            Some(dir) => {
                sqlx::query("SELECT 1").execute(&self.read).await?;
                let probe = dir.join(".sluice-write-probe");
                tokio::task::spawn_blocking(move || {
                    use std::io::Write as _;
                    let written = std::fs::File::create(&probe).and_then(|mut f| {
                        f.write_all(&[0u8; 4096])?;
                        f.sync_data()
                    });
                    let _ = std::fs::remove_file(&probe);
                    written
                })
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?
                .map_err(|e| match e.raw_os_error() {
                    // ENOSPC, EDQUOT
                    Some(28 | 122) => StoreError::Full(e.to_string()),
                    _ => StoreError::Unavailable(e.to_string()),
                })?;
                // The write lock: joining the batch opens its transaction (`BEGIN IMMEDIATE`)
                // unless one is open, so another process holding the database locked fails
                // this as it fails every write. Dropped unused: an abandoned writer, undone.
                if let Some(batch) = &self.batch {
                    match tokio::time::timeout(READY_LOCK_WAIT, WriteTx::join(batch)).await {
                        Ok(tx) => drop(tx?),
                        Err(_) => {
                            return Err(StoreError::Busy(format!(
                                "the database is locked: no write transaction within {} ms",
                                READY_LOCK_WAIT.as_millis()
                            )))
                        }
                    }
                }
                Ok(())
            }
        }
    }

    pub(crate) fn reader(&self) -> &AnyPool {
        &self.read
    }

    pub(crate) fn writer(&self) -> &AnyPool {
        &self.write
    }

    /// Closes all connections.
    pub async fn close(&self) {
        if let Some(batch) = self.batch.as_ref().or(self.pg_batch.as_ref()) {
            batch.flush().await;
        }
        self.write.close().await;
        self.read.close().await;
    }
}

/// Creates an empty SQLite file readable by its owner only (0600), unless it exists: SQLite
/// would create it 0644 (under the usual umask), and its `-wal` and `-shm` files take the
/// database file's mode, so the trail and the token hashes stay private to the server's user.
fn create_private(path: &std::path::Path) -> Result<(), StoreError> {
    if path.as_os_str().is_empty() || path.to_str().is_some_and(|p| p.starts_with(':')) {
        return Ok(()); // `:memory:` and the like
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Unavailable(format!(
            "cannot create {}: {e}",
            path.display()
        ))),
    }
}

/// `text` as a PostgreSQL string literal, for statements sent with their values written in:
/// between single quotes, every quote doubled. Taken as it is because every connection runs
/// with `standard_conforming_strings = on` (set on connect), where a backslash is an
/// ordinary character.
pub(crate) fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    push_literal(&mut out, text);
    out
}

/// Appends `text` to `out` as an SQL string literal (quotes doubled), without a copy of its
/// own: a batch inlines every request body and audit entry it writes this way.
pub(crate) fn push_literal(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('\'');
    let mut rest = text;
    while let Some(i) = rest.find('\'') {
        out.push_str(&rest[..=i]);
        out.push('\'');
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out.push('\'');
}

pub(crate) fn get<'r, T>(row: &'r AnyRow, col: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    row.try_get(col).map_err(StoreError::from)
}

#[cfg(test)]
mod literal_tests {
    use super::literal;
    use proptest::prelude::*;

    #[test]
    fn quotes_are_doubled_and_the_text_enclosed() {
        assert_eq!(literal(""), "''");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("''"), "''''''");
        assert_eq!(literal("é'\\n"), "'é''\\n'");
    }

    proptest! {
        /// Read back as SQL reads a literal, it is the text: no quote in it ends it early.
        #[test]
        fn a_literal_reads_back_as_its_text(text in ".*") {
            let lit = literal(&text);
            let inner = &lit[1..lit.len() - 1];
            prop_assert!(lit.starts_with('\'') && lit.ends_with('\''));
            prop_assert!(!inner.replace("''", "").contains('\''));
            prop_assert_eq!(inner.replace("''", "'"), text);
        }
    }
}
