//! Propagation on PostgreSQL: every audited commit sends one `NOTIFY` from inside its
//! transaction ([`HEAD_NOTIFY`], with the chain-head update), so it is delivered at commit and
//! never for a write that rolled back. Each instance listens on a connection of its own
//! ([`Store::listen`]) and wakes at once whoever follows the store: the sync of grants,
//! policy, tokens and flags ([`Store::moved_elsewhere`]) and the audit followers
//! ([`Store::audited_elsewhere`]).
//!
//! The periodic sync stays as the backstop. Notifications sent while the listening connection
//! is down are lost (PostgreSQL keeps none for a listener that is not there): the listener
//! connects again (backing off up to 2 s), and once it listens again it wakes both followers,
//! which read the counters and catch up on whatever it missed.
//!
//! The channel is named after the schema (`search_path`), so installations sharing one
//! database in different schemas do not wake each other. The payload says which instance
//! wrote and what moved: `<instance>:<a|-><f|->` (access, flags); an instance ignores its
//! own, which it applied when it wrote.

use crate::prepared::{Arg, HEAD_NOTIFY};
use crate::StoreError;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use std::str::FromStr as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// The channel of the connection's schema, computed by PostgreSQL on both sides.
const CHANNEL_SQL: &str = "'sluice_' || left(md5(current_schema()), 16)";

/// [`HEAD_NOTIFY`] (prepared on a batch's connection), then `COMMIT`: the end of a batch,
/// in one simple-protocol call.
pub(crate) fn commit_sql(seq: i64, hash: &str, payload: &str) -> String {
    let mut sql = HEAD_NOTIFY.with(&[
        Arg::Int(seq),
        Arg::Text(hash.to_owned()),
        Arg::Text(payload.to_owned()),
    ]);
    sql.push_str("; COMMIT");
    sql
}

/// The `application_name` of listening connections (they show so in `pg_stat_activity`).
pub const LISTENER_APPLICATION: &str = "sluice-listener";

/// One store handle's view of the other instances' commits.
#[derive(Debug)]
pub(crate) struct Changes {
    /// This process's name in payloads: random per store handle.
    pub(crate) me: String,
    /// PostgreSQL: the URL the listener connects with.
    url: Option<String>,
    /// Bumped when another instance moved grants, principals, policy or flags (or the
    /// listener came back and may have missed some).
    state: watch::Sender<u64>,
    /// Bumped when another instance committed audit entries (likewise).
    audit: watch::Sender<u64>,
    /// Times the listener started listening (the first time included).
    connects: AtomicU64,
}

impl Changes {
    pub(crate) fn new(url: Option<String>) -> Changes {
        use std::hash::{BuildHasher as _, Hasher as _};
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Changes {
            me: format!("{random:016x}"),
            url,
            state: watch::Sender::new(0),
            audit: watch::Sender::new(0),
            connects: AtomicU64::new(0),
        }
    }

    /// The payload of a commit that moved access (`a`) and/or flags (`f`).
    pub(crate) fn payload(&self, access: bool, flags: bool) -> String {
        format!(
            "{}:{}{}",
            self.me,
            if access { 'a' } else { '-' },
            if flags { 'f' } else { '-' }
        )
    }

    fn heard(&self, payload: &str) {
        let Some((from, moved)) = payload.split_once(':') else {
            return;
        };
        if from == self.me {
            return;
        }
        if moved.contains(['a', 'f']) {
            self.state.send_modify(|n| *n += 1);
        }
        self.audit.send_modify(|n| *n += 1);
    }

    /// How many commits of other instances were heard of (and listener restarts, after which
    /// some may have been missed).
    pub(crate) fn others_heard(&self) -> u64 {
        *self.audit.borrow()
    }

    fn listening(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
        self.state.send_modify(|n| *n += 1);
        self.audit.send_modify(|n| *n += 1);
    }
}

impl crate::Store {
    /// Wakes (its `changed()` resolves) when another instance changed grants, principals,
    /// tokens, policy or flags, as soon as its commit is heard; also when the listener comes
    /// back after losing its connection. Never wakes on SQLite, or before [`Store::listen`].
    pub fn moved_elsewhere(&self) -> watch::Receiver<u64> {
        self.changes.state.subscribe()
    }

    /// Like [`Store::moved_elsewhere`], for audit entries committed by another instance.
    pub fn audited_elsewhere(&self) -> watch::Receiver<u64> {
        self.changes.audit.subscribe()
    }

    /// How many times the listener started listening (0: not started, or never connected).
    pub fn listener_connects(&self) -> u64 {
        self.changes.connects.load(Ordering::Relaxed)
    }

    /// PostgreSQL: starts listening for other instances' commits, in a task that runs until
    /// the returned handle is aborted; `None` on SQLite (one process writes).
    pub fn listen(&self) -> Option<tokio::task::JoinHandle<()>> {
        let url = self.changes.url.clone()?;
        let changes = self.changes.clone();
        Some(tokio::spawn(async move {
            let mut backoff = Duration::from_millis(50);
            loop {
                match listen_once(&url, &changes).await {
                    Ok(()) => backoff = Duration::from_millis(50),
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for other instances' changes failed: {e}");
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }))
    }
}

/// Connects, listens and passes on what it hears until the connection is lost.
async fn listen_once(url: &str, changes: &Changes) -> Result<(), StoreError> {
    let options = PgConnectOptions::from_str(url)?.application_name(LISTENER_APPLICATION);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with(options)
        .await?;
    let result = async {
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.eager_reconnect(false);
        let channel: String = sqlx::query_scalar(&format!("SELECT {CHANNEL_SQL}"))
            .fetch_one(&mut listener)
            .await?;
        listener.listen(&channel).await?;
        // INVARIANT: told only once listening, so whatever was committed before (while no
        // connection listened) is caught by the sync this wakes.
        changes.listening();
        tracing::debug!(channel, "listening for other instances' changes");
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => changes.heard(n.payload()),
                Ok(None) => {
                    tracing::warn!("the connection listening for other instances' changes was lost; connecting again");
                    return Ok(());
                }
                Err(e) => return Err(StoreError::from(e)),
            }
        }
    }
    .await;
    pool.close().await;
    result
}
