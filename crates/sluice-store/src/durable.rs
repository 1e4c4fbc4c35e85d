//! Group commit for SQLite: many transactions, one fsync.
//!
//! SQLite runs with `synchronous = NORMAL` in WAL mode: a commit writes its frames to the WAL
//! file but does not wait for the disk. [`Flusher::durable`] then makes the commit durable
//! before anyone is answered: it fsyncs the WAL file, and one fsync covers every commit that
//! finished before it started. The batch committer (`batch.rs`) calls it once per batch, while
//! the next batch fills. Nothing is acknowledged before it is on disk.
//!
//! Written by hand because it is twenty lines on top of `fsync`; no crate offers it for sqlx.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct Flusher {
    wal: PathBuf,
    /// Tickets handed out; each is taken right after a commit.
    requested: AtomicU64,
    /// Every ticket up to this one is on disk.
    synced: AtomicU64,
    lock: tokio::sync::Mutex<()>,
}

impl Flusher {
    pub fn new(database: PathBuf) -> Self {
        let mut wal = database.into_os_string();
        wal.push("-wal");
        Flusher {
            wal: wal.into(),
            requested: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Returns once everything committed before this call is on disk.
    pub async fn durable(&self) -> std::io::Result<()> {
        let ticket = self.requested.fetch_add(1, Ordering::AcqRel) + 1;
        let _one_at_a_time = self.lock.lock().await;
        if self.synced.load(Ordering::Acquire) >= ticket {
            // An fsync that started after our commit already covered it.
            return Ok(());
        }
        // INVARIANT: every ticket up to `upto` was taken after its commit, and all of them
        // before this fsync starts, so this fsync covers all of them.
        let upto = self.requested.load(Ordering::Acquire);
        let wal = self.wal.clone();
        tokio::task::spawn_blocking(move || std::fs::File::open(wal)?.sync_data())
            .await
            .map_err(std::io::Error::other)??;
        self.synced.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }
}
