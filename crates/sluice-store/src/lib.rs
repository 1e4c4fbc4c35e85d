//! Sluice's store: SQLite (the zero-configuration default) or PostgreSQL, behind one SQL
//! dialect (see `migrations/`), through sqlx's `Any` driver.
//!
//! Every change goes through a [`WriteTx`]: it locks the audit chain head first, and the
//! change and its audit entry commit together or not at all ("no audit, no action").
//! On SQLite, audited writes go through one connection and share batch transactions (see
//! `batch`): they are serialised in-process, never meet `SQLITE_BUSY` among themselves, and
//! share the commit and the fsync.

mod audit;
mod batch;
mod change_requests;
mod copy;
mod durable;
mod error;
mod flags;
mod gateway;
mod principals;
mod requests;
mod schedule;
mod state;
mod tx;

pub use audit::AuditQuery;
pub use change_requests::StoredChangeRequest;
pub use copy::CopyReport;
pub use error::StoreError;
pub use flags::{FlagConflict, FlagWrite, StoredFlag, StoredFlagSet};
pub use gateway::{DeclaredDatabase, GatewaySession, LoggedStatement, SessionEnd, StatementChunk};
pub use principals::{PrincipalRow, TokenRow};
pub use requests::RequestFilter;
pub use schedule::{ScheduledChange, ScheduledStatus};
pub use sluice_audit::{AuditEntry, ChainHead, Checkpoint, NewEntry};
pub use state::{AccessState, StateRevs};
pub use tx::WriteTx;

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
    /// The highest audit `seq` this handle committed; see [`Store::committed_audit`].
    committed: std::sync::Arc<tokio::sync::watch::Sender<i64>>,
}

impl Store {
    /// Connects, creating the SQLite file if needed, and runs the embedded migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
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
                    AnyPoolOptions::new().after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
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
                let write = opts().max_connections(1).connect(&url).await?;
                write.execute("PRAGMA journal_mode = WAL").await?;
                let read = opts().max_connections(8).connect(&url).await?;
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:");
                let path = path.split('?').next().unwrap_or(path);
                let flusher = std::sync::Arc::new(durable::Flusher::new(path.into()));
                let conn = write.acquire().await?.detach();
                let batch = Some(std::sync::Arc::new(batch::Batcher::start(conn, flusher)));
                Store {
                    read,
                    write,
                    backend,
                    batch,
                    committed: Default::default(),
                }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(2))
                    .connect(url)
                    .await?;
                Store {
                    read: pool.clone(),
                    write: pool,
                    backend,
                    batch: None,
                    committed: Default::default(),
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
        let tx = match &self.batch {
            Some(batch) => WriteTx::join(batch).await,
            None => WriteTx::begin(&self.write).await,
        }?;
        Ok(tx.announcing_to(self.committed.clone()))
    }

    /// Changes whenever a write through this handle (or a clone) commits audit entries: holds
    /// the highest `seq` committed. Writes by other processes are not seen here; read the
    /// table for those.
    pub fn committed_audit(&self) -> tokio::sync::watch::Receiver<i64> {
        self.committed.subscribe()
    }

    /// Is the database reachable?
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.read).await.is_ok()
    }

    pub(crate) fn reader(&self) -> &AnyPool {
        &self.read
    }

    pub(crate) fn writer(&self) -> &AnyPool {
        &self.write
    }

    /// Closes all connections.
    pub async fn close(&self) {
        if let Some(batch) = &self.batch {
            batch.flush().await;
        }
        self.write.close().await;
        self.read.close().await;
    }
}

pub(crate) fn get<'r, T>(row: &'r AnyRow, col: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    row.try_get(col).map_err(StoreError::from)
}
