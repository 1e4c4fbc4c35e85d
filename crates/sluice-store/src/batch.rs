//! Batched commits: many audited writes, one transaction, one fsync.
//!
//! SQLite has one writer, so audited writes are serialised anyway; what they cost is the
//! per-transaction work (begin, lock and rewrite the chain head, commit, fsync) and, through
//! sqlx, a hand-off to the connection's thread and back for every statement. Here they share
//! the first and keep the second to a minimum. A writer takes the batch lock (a FIFO mutex)
//! and joins the open batch transaction, where the savepoint `op` is always open and empty
//! between writers; it does its change, then writes its audit entries, releases `op` and
//! opens the next one in a single call ([`KEEP`]), and waits. A committer task, woken by
//! every release, takes the lock *after* the writers already queued (the mutex is fair), so whatever queued while the previous batch was being
//! made durable joins this one. It writes the chain head once, commits, fsyncs (group commit,
//! see [`crate::durable`]) and only then answers every writer of the batch.
//!
//! INVARIANT: nobody is answered before the batch holding their change is on disk, and a
//! failed commit fails every writer of the batch ("no audit, no action" holds per writer).
//! A writer that fails or is dropped half-way is rolled back to its savepoint by the next
//! holder of the lock; the other writers of the batch are untouched. At low load a batch is
//! one writer, and the cost is one extra task wake-up.
//!
//! PostgreSQL (one batch per instance, see [`Batcher::start_pg`]): the same, on a connection
//! of the instance's own, except that the chain head is locked at the commit, not when the
//! batch opens, so that the instances' batches run side by side and take turns only for
//! their commits. A writer's audit entries are kept in memory with its answer; the commit
//! takes the head's row lock and reads the head and the access revision in one call
//! ([`HEAD_SQL`]), then chains every kept writer's entries on that head, gives out the access
//! revisions its writers took (in their order), and writes the entries, their notifications,
//! the new head, its signed checkpoint (when a signer is set, see `CommitSigning`) and the
//! revisions, and commits, in a second call. The lock is held for those
//! two calls and the commit's flush. When the instance has heard of no other instance's commit
//! since its own last one, the head and revision are those that commit left, and the commit is
//! one call ([`Batch::commit_on`]), which checks the head under the lock and fails if it is
//! another (a commit not heard of yet): then that part is undone and the two calls made. A
//! writer whose reads rely on nothing changing under them until the commit (any read but one
//! that locks the rows it reads, such as a request's lock) takes the head's lock at that read
//! (see `WriteTx::conn`): from there to the commit the batch is serialised with every other
//! instance's writes, as all batches used to be.
//! Statements that return nothing and the savepoint steps go to the server with their
//! parameters written in as literals, several in one simple-protocol call (see
//! `tx::inline`). A writer's commit sends nothing itself: its statements and the end of its
//! savepoint are *held* ([`Lease::hold`]) and go first in the next call on the connection,
//! whoever makes it (a writer's read, or the batch's commit), so a writer that reads nothing
//! costs no round trip of its own and one that reads costs one per read. A held writer whose
//! statements fail there is found by the statements the server reported complete before the
//! error, rolled back to its savepoint alone and told; those held after it (which the server
//! skipped) are sent again (see `Batch::send_with`). Since entries are chained only at the
//! commit, a writer that fails never moves the chain under another. The committer leaves the
//! batch open while writers wait for the lock (see [`flush`]). A lost connection is replaced
//! by a new one from the pool when the next batch opens.
//!
//! Written by hand: it is a lock, a savepoint and a loop around sqlx; no crate offers group
//! commit of independent transactions.

use crate::durable::Flusher;
use crate::listen::Changes;
use crate::prepared::{self, Arg};
use crate::{get, StoreError};
use sluice_audit::{AuditEntry, ChainHead};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex, OwnedMutexGuard};

/// PostgreSQL: the most writers a batch waits for before it commits even though more queue.
const MOST_WRITERS: usize = 512;

/// PostgreSQL: a batch of fewer writers yields once before it commits (see `flush`).
const FEW_WRITERS: usize = 8;

/// What a writer is answered once the batch holding its change is durable.
#[derive(Debug)]
pub(crate) struct Committed {
    /// Its audit entries as stored.
    pub(crate) entries: Vec<AuditEntry>,
    /// PostgreSQL: the first access revision it took, given out at the commit.
    pub(crate) first_rev: Option<i64>,
}

type Answer = oneshot::Sender<Result<Committed, StoreError>>;

/// PostgreSQL: chains a writer's audit entries on the head they follow, at the commit;
/// returns them and the statements that insert them and their notifications. Called again
/// when a commit on the head this instance expected finds another (see `Batch::commit_on`).
pub(crate) type Chain =
    Box<dyn Fn(&ChainHead) -> Result<(Vec<AuditEntry>, String), StoreError> + Send>;

/// PostgreSQL: signs the chain head a batch commits, inside the commit (see
/// [`crate::Store::sign_commits_with`]).
pub(crate) type SignHead = Arc<dyn Fn(&ChainHead) -> sluice_audit::Checkpoint + Send + Sync>;

/// PostgreSQL: the signer, set once, and the newest checkpoint a batch committed.
#[derive(Default)]
pub(crate) struct CommitSigning {
    pub(crate) signer: std::sync::OnceLock<SignHead>,
    pub(crate) signed: tokio::sync::watch::Sender<Option<sluice_audit::Checkpoint>>,
}

impl std::fmt::Debug for CommitSigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitSigning")
    }
}

/// A writer whose change is in the open transaction, waiting for the commit.
struct Waiter {
    answer: Answer,
    /// What it is told it stored (PostgreSQL: once chained at the commit).
    entries: Vec<AuditEntry>,
    /// PostgreSQL: its entries, to be chained; the access revisions it took (the request
    /// each names, if any), and the first of them once given out.
    chain: Option<Chain>,
    bumps: Vec<Option<String>>,
    first_rev: Option<i64>,
}

/// A PostgreSQL writer's change, left to be sent with the next call on the batch's
/// connection (see [`Lease::hold`]).
pub(crate) struct Held {
    /// Its statements, `;`-separated, without the end of its savepoint.
    pub(crate) sql: String,
    /// How many statements `sql` holds.
    pub(crate) statements: usize,
    /// Its audit entries, chained at the batch's commit.
    pub(crate) chain: Chain,
    /// Access revisions it took (given out at the commit), each with the request whose
    /// grant it moved, if that is all it moved (see `WriteTx::bump_grant`).
    pub(crate) bumps: Vec<Option<String>>,
    /// It took the chain head's lock for a read (see `Batch::locked`).
    pub(crate) locked: bool,
    /// It moved grants, principals or policy (`.0`) or flags (`.1`): counted, and told to
    /// the other instances, only if it is kept.
    pub(crate) moved: (bool, bool),
}

/// What one call of held writers and a statement after them did (see `Batch::send_once`).
enum Sent {
    /// All went through; the rows of the statement after them.
    Rows(Vec<AnyRow>),
    /// A held writer failed: it was undone and told, and the statement after it not run.
    WriterFailed,
    /// Every held writer went through; the statement after them failed.
    ThenFailed(StoreError),
}

/// A held writer and whom to answer.
struct Holding {
    held: Held,
    answer: Answer,
}

impl std::fmt::Debug for Holding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Holding")
    }
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waiter")
    }
}

/// PostgreSQL: the commit's first call, after the held writers: the chain head's lock, the
/// head, and the access revision (every writer of the revision holds the head's lock, so it
/// cannot move until this transaction ends).
const HEAD_SQL: &str = prepared::READ_HEAD_AND_ACCESS_REV;

/// PostgreSQL: the checkpoint a commit signs, stored only if the newest checkpoint is signed
/// by the same key (or there is none): an instance started with another key (at the same
/// moment as the first, before anything was signed) stores nothing here, and its checkpoint
/// round refuses and says why. Returns `signed_seq` when stored. Values are written in as
/// literals (the statement rides in a simple-protocol call).
fn sign_in_commit_sql(cp: &sluice_audit::Checkpoint) -> String {
    prepared::SIGN_HEAD.with(&[
        Arg::Int(cp.seq),
        Arg::Text(cp.hash.clone()),
        Arg::Int(sluice_core::clock::to_ms(cp.at)),
        Arg::Text(cp.key_id.clone()),
        Arg::Text(cp.signature.clone()),
    ])
}

/// PostgreSQL: begins a batch and opens its first writer's savepoint (two statements), at
/// the front of the batch's first call.
const BEGIN_PG: &str = "BEGIN; SAVEPOINT op";

/// Ends a writer's savepoint, keeping its change, and opens the next writer's.
pub(crate) const KEEP: &str = "RELEASE SAVEPOINT op; SAVEPOINT op";

/// The shared write path of one SQLite store, or of one PostgreSQL store handle.
#[derive(Debug)]
pub(crate) struct Batcher {
    state: Arc<Mutex<Batch>>,
    kick: mpsc::Sender<()>,
    /// Writers waiting for the lock (see [`committer`]).
    queued: Arc<AtomicUsize>,
    /// SQLite: makes commits durable (PostgreSQL's commit is durable itself).
    flusher: Option<Arc<Flusher>>,
}

/// What differs on PostgreSQL.
#[derive(Debug)]
struct Pg {
    /// Where a new connection comes from when the batch's is lost.
    pool: sqlx::AnyPool,
    /// The connection failed: take a new one before the next batch.
    broken: bool,
    /// The connection has the statements of [`crate::prepared`].
    prepared: bool,
    /// How the commit is announced to the other instances (see [`crate::listen`]).
    changes: Arc<Changes>,
    /// Grants, principals or policy (`.0`) and flags (`.1`) moved in the open batch.
    moved: (bool, bool),
    /// Signs the head each commit writes, when set.
    signing: Arc<CommitSigning>,
    /// The checkpoint the commit in progress writes.
    signing_now: Option<sluice_audit::Checkpoint>,
    /// The chain head and access revision this instance's last commit left (see
    /// `Batch::commit_on`).
    expected: Option<(ChainHead, i64)>,
    /// How many other instances' commits it had heard of at its last commit, and how many of
    /// its commits in a row heard of none.
    heard: u64,
    quiet: u32,
    /// How many quiet commits in a row it takes to commit on the expected head: doubled
    /// whenever that head was not the real one (a commit not heard of, or not heard of yet),
    /// halved (down to [`QUIET_COMMITS`]) whenever it was.
    needed: u32,
}

/// PostgreSQL: commits in a row that heard of no other instance's before a batch commits on
/// the head it expects (see `Batch::commit_on`), at least.
const QUIET_COMMITS: u32 = 4;

/// … and at most.
const QUIET_COMMITS_MOST: u32 = 1024;

#[derive(Debug)]
struct Batch {
    /// The one connection that writes audited changes.
    conn: AnyConnection,
    /// A batch transaction is open on `conn`.
    open: bool,
    /// PostgreSQL: the server has begun it (the begin rides in the batch's first call).
    begun: bool,
    /// SQLite (PostgreSQL chains at the commit): the chain head inside the open transaction,
    /// as left by the last released writer.
    head: ChainHead,
    /// SQLite: the access revision inside the open transaction, likewise.
    access_rev: i64,
    /// Writers whose change is in the open transaction, waiting for it to be durable.
    waiting: Vec<Waiter>,
    /// PostgreSQL: writers whose statements wait for the next call, in order.
    held: Vec<Holding>,
    /// PostgreSQL: a kept writer took the chain head's lock in the open transaction (for a
    /// read whose rows it does not lock itself), so every later writer of the batch is
    /// serialised with the other instances too, and need not take it again.
    locked: bool,
    /// The last holder of the lock left without releasing its savepoint.
    abandoned: bool,
    /// PostgreSQL only.
    pg: Option<Pg>,
}

impl Batcher {
    /// Takes over `conn` for audited writes and starts the committer task.
    pub(crate) fn start(conn: AnyConnection, flusher: Arc<Flusher>) -> Batcher {
        Self::start_with(conn, Some(flusher), None)
    }

    /// Takes over `conn` (from `pool`) for the audited writes of one PostgreSQL store handle.
    pub(crate) fn start_pg(
        conn: AnyConnection,
        pool: sqlx::AnyPool,
        changes: Arc<Changes>,
        signing: Arc<CommitSigning>,
    ) -> Batcher {
        let pg = Pg {
            pool,
            broken: false,
            prepared: false,
            changes,
            moved: (false, false),
            signing,
            signing_now: None,
            expected: None,
            heard: 0,
            quiet: 0,
            needed: QUIET_COMMITS,
        };
        Self::start_with(conn, None, Some(pg))
    }

    fn start_with(conn: AnyConnection, flusher: Option<Arc<Flusher>>, pg: Option<Pg>) -> Batcher {
        let state = Arc::new(Mutex::new(Batch {
            conn,
            open: false,
            begun: false,
            head: ChainHead::genesis(),
            access_rev: 0,
            waiting: Vec::new(),
            held: Vec::new(),
            locked: false,
            abandoned: false,
            pg,
        }));
        // One pending kick is enough: the committer takes everything queued when it runs.
        let (kick, kicks) = mpsc::channel(1);
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(committer(
            state.clone(),
            flusher.clone(),
            kicks,
            queued.clone(),
        ));
        Batcher {
            state,
            kick,
            queued,
            flusher,
        }
    }

    /// Joins (or opens) the batch transaction; returns the lease, the chain head to extend
    /// and the access revision.
    ///
    /// Spawned, so it runs to the end even if the caller goes away: undoing an abandoned
    /// writer or opening the transaction must not stop half-way (`open` would then lie). A
    /// lease nobody receives is dropped, which counts as an abandoned writer.
    pub(crate) async fn begin(&self) -> Result<(Lease, ChainHead, i64), StoreError> {
        let state = self.state.clone();
        let kick = self.kick.clone();
        let queued = self.queued.clone();
        tokio::spawn(async move {
            queued.fetch_add(1, Ordering::SeqCst);
            let mut guard = state.lock_owned().await;
            queued.fetch_sub(1, Ordering::SeqCst);
            guard.settle().await;
            if !guard.open {
                guard.open_transaction().await?;
            }
            let head = guard.head.clone();
            let access_rev = guard.access_rev;
            Ok((
                Lease {
                    guard,
                    kick,
                    released: false,
                },
                head,
                access_rev,
            ))
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("the write task failed: {e}")))?
    }

    /// Commits whatever is waiting, now (used when the store closes).
    pub(crate) async fn flush(&self) {
        flush(&self.state, self.flusher.as_deref(), None).await;
    }
}

impl Batch {
    async fn open_transaction(&mut self) -> Result<(), StoreError> {
        if self.pg.is_some() {
            return self.open_pg().await;
        }
        let rows = sqlx::query(
            "BEGIN IMMEDIATE; SAVEPOINT op; \
             SELECT h.seq, h.hash, s.access_rev FROM audit_head h, sluice_state s WHERE h.id = 1 AND s.id = 1",
        )
        .fetch_all(&mut self.conn)
        .await;
        let head = rows.map_err(StoreError::from).and_then(|rows| {
            let row = rows.first().ok_or_else(|| {
                StoreError::Corrupt("the chain head or state row is missing".into())
            })?;
            let head = ChainHead {
                seq: get(row, "seq")?,
                hash: get(row, "hash")?,
            };
            Ok((head, get(row, "access_rev")?))
        });
        match head {
            Ok((head, access_rev)) => {
                self.head = head;
                self.access_rev = access_rev;
                self.open = true;
                Ok(())
            }
            Err(e) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
                Err(e)
            }
        }
    }

    /// PostgreSQL: opens the batch without a call of its own: the begin and the first
    /// writer's savepoint ([`BEGIN_PG`]) go first in the batch's first call (see
    /// `send_with`). The chain head is locked at the commit (or at a read that needs it).
    async fn open_pg(&mut self) -> Result<(), StoreError> {
        let Some(pg) = &mut self.pg else {
            return Err(StoreError::Database("not a PostgreSQL batch".into()));
        };
        if pg.broken {
            self.conn = pg.pool.acquire().await?.detach();
            pg.broken = false;
            pg.prepared = false;
        }
        if !pg.prepared {
            // Once per connection, before its first batch (outside any transaction).
            sqlx::Executor::execute(&mut self.conn, prepared::prepare_all().as_str()).await?;
            pg.prepared = true;
        }
        pg.moved = (false, false);
        self.locked = false;
        self.begun = false;
        self.open = true;
        Ok(())
    }

    /// Rolls the whole transaction back; on PostgreSQL a connection that cannot even do that
    /// is replaced before the next batch.
    async fn abort(&mut self) {
        let rolled_back = sqlx::Executor::execute(&mut self.conn, "ROLLBACK").await;
        if let (Err(_), Some(pg)) = (rolled_back, &mut self.pg) {
            pg.broken = true;
        }
        self.open = false;
        self.begun = false;
    }

    /// Undoes the change of a writer that left half-way. If even that fails, the whole batch
    /// is rolled back and its writers are told.
    async fn settle(&mut self) {
        if !self.abandoned {
            return;
        }
        self.abandoned = false;
        if !self.held.is_empty() {
            // INVARIANT: whoever sends anything sends the held writers first, and does so
            // from a spawned task (it runs to the end); so a writer left while writers are
            // still held sent nothing, and there is nothing of it to undo.
            return;
        }
        if self.pg.is_some() && !self.begun {
            // Nothing was sent in this batch yet, so nothing of it to undo either.
            return;
        }
        // Rolling back to `op` leaves it open, empty, for the next writer. Then the chain head
        // and revision are read back from the transaction itself: were a writer ever dropped
        // after its last call ran (its change released but not recorded here), the batch goes
        // on from what is really in it, and the chain stays linear.
        let undone = match sqlx::query("ROLLBACK TO SAVEPOINT op")
            .execute(&mut self.conn)
            .await
        {
            // PostgreSQL chains at the commit and gives revisions out there: nothing to read.
            Ok(_) if self.pg.is_some() => return,
            Ok(_) => read_truth(&mut self.conn).await,
            Err(e) => Err(e.into()),
        };
        match undone {
            Ok((head, access_rev)) => {
                self.head = head;
                self.access_rev = access_rev;
            }
            Err(e) => self.fail_all(e).await,
        }
    }

    /// Rolls the whole batch back and tells every writer in it.
    async fn fail_all(&mut self, e: StoreError) {
        self.abort().await;
        let e = match e {
            // An outage stays one, so that the writers hear 503, not 500.
            e @ (StoreError::Unavailable(_) | StoreError::Busy(_) | StoreError::Full(_)) => e,
            e => StoreError::Database(format!("the write batch was rolled back: {e}")),
        };
        for w in self.waiting.drain(..) {
            let _ = w.answer.send(Err(e.clone()));
        }
        for h in self.held.drain(..) {
            let _ = h.answer.send(Err(e.clone()));
        }
        self.locked = false;
    }

    /// Sends the held writers' statements, each ending its savepoint, then `then`, in one
    /// simple-protocol call (PostgreSQL); returns the rows that call returned (only `then`
    /// returns any).
    ///
    /// A held writer whose statements fail is rolled back to its savepoint, alone, and told;
    /// the writers held after it (skipped by the server when the first one failed) are sent
    /// again. Which statement failed is known from the statements the server reported complete
    /// before the error. If `then` fails, every held writer's change is in (their savepoints
    /// were released before it ran) and the error is the holder's.
    ///
    /// Called from spawned tasks only, so it runs to the end: the held writers' outcome is
    /// never left undecided.
    async fn send_with(&mut self, then: &str) -> Result<Vec<AnyRow>, StoreError> {
        loop {
            match self.send_once(then).await? {
                Sent::Rows(rows) => return Ok(rows),
                Sent::ThenFailed(e) => return Err(e),
                Sent::WriterFailed => {}
            }
        }
    }

    /// [`Batch::send_with`], once: a held writer that fails is undone and told, and the
    /// writers held after it stay held, unsent, with `then`.
    async fn send_once(&mut self, then: &str) -> Result<Sent, StoreError> {
        use futures_util::StreamExt as _;
        let mut sql = String::new();
        let mut ends = Vec::with_capacity(self.held.len());
        let mut statements = 0;
        let begins = !self.begun;
        if begins {
            sql.push_str(BEGIN_PG);
            statements += 2;
        }
        for h in &self.held {
            push_statements(&mut sql, &h.held.sql);
            push_statements(&mut sql, KEEP);
            statements += h.held.statements + 2;
            ends.push(statements);
        }
        push_statements(&mut sql, then);
        let mut done = 0;
        let mut rows = Vec::new();
        let mut failed = None;
        {
            let mut results = sqlx::Executor::fetch_many(&mut self.conn, sql.as_str());
            while let Some(r) = results.next().await {
                match r {
                    Ok(sqlx::Either::Left(_)) => done += 1,
                    Ok(sqlx::Either::Right(row)) => rows.push(row),
                    Err(e) => {
                        failed = Some(StoreError::from(e));
                        break;
                    }
                }
            }
        }
        if begins {
            if done < 2 {
                // The begin itself failed: the connection is gone (or the transaction
                // could not open). Roll back whatever opened, mark the connection for
                // replacement if even that fails, and fail the batch.
                let e = failed
                    .unwrap_or_else(|| StoreError::Unavailable("the batch could not begin".into()));
                self.fail_all(e.clone()).await;
                return Err(e);
            }
            self.begun = true;
        }
        // The held writers that completed (all of them, unless one failed).
        let kept = ends.iter().take_while(|&&end| end <= done).count();
        for h in self.held.drain(..kept) {
            self.locked |= h.held.locked;
            if let Some(pg) = &mut self.pg {
                pg.moved.0 |= h.held.moved.0;
                pg.moved.1 |= h.held.moved.1;
            }
            self.waiting.push(Waiter {
                answer: h.answer,
                entries: Vec::new(),
                chain: Some(h.held.chain),
                bumps: h.held.bumps,
                first_rev: None,
            });
        }
        let Some(e) = failed else {
            return Ok(Sent::Rows(rows));
        };
        if self.held.is_empty() {
            // `then` failed: the holder's.
            return Ok(Sent::ThenFailed(e));
        }
        // The first writer still held failed: undo it alone.
        if let Err(undo) = sqlx::Executor::execute(&mut self.conn, "ROLLBACK TO SAVEPOINT op").await
        {
            self.fail_all(undo.into()).await;
            return Err(e);
        }
        let h = self.held.remove(0);
        let _ = h.answer.send(Err(e));
        Ok(Sent::WriterFailed)
    }

    /// PostgreSQL: commits in one call on the chain head and access revision this instance's
    /// last commit left, if no other instance's commit has been heard of since, nor during
    /// the last few commits (`Pg::needed`: two busy instances commit on each other's heels,
    /// faster than their notifications arrive, and would mostly expect wrong). The call
    /// sends the held writers, takes the head's lock, checks that the head is the expected
    /// one ([`expect_head_sql`]: an error otherwise), and writes the entries chained on it,
    /// the revisions, the new head and its checkpoint, and commits: the round trip that
    /// reads the head ([`HEAD_SQL`]) is saved. Returns false, with nothing of it kept but the
    /// held writers' changes, when the head was not the expected one or a held writer failed
    /// (it is undone and told): then the commit is made the long way ([`Batch::commit_pg`]).
    async fn commit_on(&mut self) -> Result<bool, StoreError> {
        let Some(pg) = &mut self.pg else {
            return Ok(false);
        };
        let heard = pg.changes.others_heard();
        let quiet = heard == pg.heard && pg.quiet >= pg.needed;
        let Some((from_head, before)) = pg.expected.take().filter(|_| quiet) else {
            return Ok(false);
        };
        let (moved, changes, signer) = (
            pg.moved,
            pg.changes.clone(),
            pg.signing.signer.get().cloned(),
        );
        let moved = self
            .held
            .iter()
            .fold(moved, |m, h| (m.0 | h.held.moved.0, m.1 | h.held.moved.1));
        let payload = changes.payload(moved.0, moved.1);
        let bumps = self
            .waiting
            .iter()
            .map(|w| (w.chain.as_ref(), w.bumps.as_slice()))
            .chain(
                self.held
                    .iter()
                    .map(|h| (Some(&h.held.chain), h.held.bumps.as_slice())),
            );
        let mut sql = String::new();
        prepared::LOCK_HEAD.execute(&[], &mut sql);
        push_statements(&mut sql, &expect_head_sql(&from_head));
        let (head, rev, planned) = plan(&from_head, before, bumps, &mut sql)?;
        let signed = finish_sql(
            &mut sql, &from_head, &head, before, rev, moved.1, signer, &payload,
        );
        match self.send_once(&sql).await? {
            Sent::Rows(rows) => {
                for (w, (entries, first_rev)) in self.waiting.iter_mut().zip(planned) {
                    w.entries = entries;
                    w.first_rev = first_rev;
                }
                self.committed_at(&rows, signed, head, rev, heard);
                if let Some(pg) = &mut self.pg {
                    pg.needed = (pg.needed / 2).max(QUIET_COMMITS);
                }
                Ok(true)
            }
            Sent::WriterFailed => Ok(false),
            Sent::ThenFailed(e) => {
                // Another head (or a failure of the commit's own statements): undo them,
                // keep the held writers, and commit the long way, which fails as it would
                // have if the failure was not the head.
                if let Err(undo) =
                    sqlx::Executor::execute(&mut self.conn, "ROLLBACK TO SAVEPOINT op").await
                {
                    tracing::debug!(error = %undo, "undoing a commit on the expected head failed");
                    return Err(e);
                }
                if let Some(pg) = &mut self.pg {
                    pg.needed = (pg.needed * 2).min(QUIET_COMMITS_MOST);
                }
                Ok(false)
            }
        }
    }

    /// PostgreSQL: what a commit that wrote `head` at revision `rev` leaves: the checkpoint
    /// it stored, if any, and the head the next commit expects.
    fn committed_at(
        &mut self,
        rows: &[AnyRow],
        signed: Option<sluice_audit::Checkpoint>,
        head: ChainHead,
        rev: i64,
        heard: u64,
    ) {
        let stored = rows
            .iter()
            .any(|r| sqlx::Row::try_get::<i64, _>(r, "signed_seq").is_ok());
        if let Some(pg) = &mut self.pg {
            pg.signing_now = signed.filter(|_| stored);
            pg.expected = Some((head, rev));
            pg.quiet = if heard == pg.heard {
                pg.quiet.saturating_add(1)
            } else {
                0
            };
            pg.heard = heard;
        }
    }

    /// PostgreSQL: sends the held writers and locks and reads the chain head ([`HEAD_SQL`]);
    /// then chains every kept writer's entries on it, gives out the access revisions they
    /// took, and writes entries, notifications, head and revisions, and commits. When no other
    /// instance's commit was heard of since this one's last, the head is known and all of it
    /// goes in one call instead ([`Batch::commit_on`]).
    async fn commit_pg(&mut self) -> Result<(), StoreError> {
        if self.commit_on().await? {
            return Ok(());
        }
        let heard = self.pg.as_ref().map_or(0, |pg| pg.changes.others_heard());
        let rows = match self.send_with(HEAD_SQL).await {
            // Waiting for the head, this batch can close a cycle with another instance's
            // batch: that one holds the head (a writer of it read under the lock) and one of
            // its writers waits for a row this batch changed. If PostgreSQL breaks the cycle
            // here (or the lock wait times out), the held writers are in, and only the lock
            // statement failed, inside the open savepoint: undo it and wait once more, by
            // when the other side's writer has been failed (it waited first) and its batch
            // can commit. Failing here would fail every writer of this batch.
            Err(StoreError::Busy(_)) if self.open && self.held.is_empty() => {
                sqlx::Executor::execute(&mut self.conn, "ROLLBACK TO SAVEPOINT op").await?;
                self.send_with(HEAD_SQL).await?
            }
            rows => rows?,
        };
        let (Some(h), Some(s)) = (rows.first(), rows.get(1)) else {
            return Err(StoreError::Corrupt(
                "the chain head or state row is missing".into(),
            ));
        };
        let from = ChainHead {
            seq: get(h, "seq")?,
            hash: get(h, "hash")?,
        };
        let before: i64 = get(s, "access_rev")?;
        // What the kept writers moved (known once the held ones are sent).
        let Some(pg) = &self.pg else {
            return Err(StoreError::Database("not a PostgreSQL batch".into()));
        };
        let (payload, flags) = (pg.changes.payload(pg.moved.0, pg.moved.1), pg.moved.1);
        let signer = pg.signing.signer.get().cloned();
        let mut sql = String::new();
        let bumps = self
            .waiting
            .iter()
            .map(|w| (w.chain.as_ref(), w.bumps.as_slice()));
        let (head, rev, planned) = plan(&from, before, bumps, &mut sql)?;
        for (w, (entries, first_rev)) in self.waiting.iter_mut().zip(planned) {
            w.entries = entries;
            w.first_rev = first_rev;
        }
        let signed = finish_sql(&mut sql, &from, &head, before, rev, flags, signer, &payload);
        let rows = sqlx::Executor::fetch_all(&mut self.conn, sql.as_str()).await?;
        self.committed_at(&rows, signed, head, rev, heard);
        Ok(())
    }

    /// Writes the chain head and commits. Returns the writers to answer and the outcome.
    async fn commit(&mut self) -> Option<(Vec<Waiter>, Result<(), StoreError>)> {
        if !self.open {
            return None;
        }
        if self.waiting.is_empty() && self.held.is_empty() {
            // Only abandoned writers: nothing to keep.
            self.abort().await;
            return None;
        }
        let committed = match &self.pg {
            Some(_) => self.commit_pg().await,
            None => sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1; COMMIT")
                .bind(self.head.seq)
                .bind(&self.head.hash)
                .execute(&mut self.conn)
                .await
                .map(|_| ())
                .map_err(StoreError::from),
        };
        // The held writers are all answered or waiting by now.
        self.open = false;
        self.locked = false;
        let waiting = std::mem::take(&mut self.waiting);
        if committed.is_err() {
            self.abort().await;
        }
        // Told before the writers are answered, so whoever learns of their commit finds it
        // signed.
        if let Some(pg) = &mut self.pg {
            if let Some(cp) = pg.signing_now.take().filter(|_| committed.is_ok()) {
                pg.signing.signed.send_replace(Some(cp));
            }
        }
        Some((waiting, committed))
    }
}

/// Appends statements to a `;`-separated list.
fn push_statements(sql: &mut String, more: &str) {
    if more.is_empty() {
        return;
    }
    if !sql.is_empty() {
        sql.push_str("; ");
    }
    sql.push_str(more);
}

/// PostgreSQL: an error unless the chain head is `head` (its lock held): the head's row is
/// inserted again, and its key refuses it, unless it is found as expected. Written so, in
/// plain SQL, because it rides in a simple-protocol call before the commit, which it must
/// stop.
fn expect_head_sql(head: &ChainHead) -> String {
    prepared::EXPECT_HEAD.with(&[Arg::Int(head.seq), Arg::Text(head.hash.clone())])
}

/// Each writer's entries as chained and the first access revision it took, in order.
type Planned = Vec<(Vec<AuditEntry>, Option<i64>)>;

/// PostgreSQL: chains the writers' entries (`chain`, in the order they were kept) on
/// `from`, appending their inserts to `sql`, and gives out the access revisions they took
/// (`bumps`) after `before`, recording what each moved. Returns the new head and revision,
/// and what each writer got.
fn plan<'a>(
    from: &ChainHead,
    before: i64,
    writers: impl Iterator<Item = (Option<&'a Chain>, &'a [Option<String>])>,
    sql: &mut String,
) -> Result<(ChainHead, i64, Planned), StoreError> {
    let mut head = from.clone();
    let mut rev = before;
    let mut planned = Vec::new();
    let mut changes = Vec::new();
    for (chain, bumps) in writers {
        let mut entries = Vec::new();
        if let Some(chain) = chain {
            let (chained, inserts) = chain(&head)?;
            if let Some(last) = chained.last() {
                head = last.head();
            }
            entries = chained;
            push_statements(sql, &inserts);
        }
        let first_rev = (!bumps.is_empty()).then(|| rev + 1);
        for request in bumps {
            rev += 1;
            let request = request.as_deref().map_or("NULL".into(), crate::literal);
            changes.push(format!("({rev}, {request})"));
        }
        planned.push((entries, first_rev));
    }
    if !changes.is_empty() {
        push_statements(
            sql,
            &format!(
                "INSERT INTO access_changes (rev, request_id) VALUES {}",
                changes.join(", ")
            ),
        );
    }
    Ok((head, rev, planned))
}

/// PostgreSQL: the end of a commit, appended to `sql`: the revisions, the new head signed in
/// its own commit (when a signer is set), the head and the notification, and `COMMIT`.
/// Returns the checkpoint it stores.
#[allow(clippy::too_many_arguments)]
fn finish_sql(
    sql: &mut String,
    from: &ChainHead,
    head: &ChainHead,
    before: i64,
    rev: i64,
    flags: bool,
    signer: Option<SignHead>,
    payload: &str,
) -> Option<sluice_audit::Checkpoint> {
    if rev != before || flags {
        let update = if flags {
            prepared::ACCESS_AND_FLAGS_REV
        } else {
            prepared::ACCESS_REV
        };
        push_statements(sql, &update.with(&[Arg::Int(rev)]));
    }
    // The new head signed in its own commit: no unsigned tail, and no checkpoint
    // transaction of its own after it. Checkpoints stay in `seq` order across instances,
    // since every commit holds the head's lock here.
    let signed = match signer {
        Some(sign) if head.seq > from.seq => {
            let cp = sign(head);
            push_statements(sql, &sign_in_commit_sql(&cp));
            Some(cp)
        }
        _ => None,
    };
    // INVARIANT: the other instances are told in the transaction, so they hear of it at
    // commit and never of a batch that rolled back.
    push_statements(
        sql,
        &crate::listen::commit_sql(head.seq, &head.hash, payload),
    );
    signed
}

/// The chain head (the last entry, or the empty chain) and the access revision, as the
/// connection sees them inside its transaction.
async fn read_truth(conn: &mut AnyConnection) -> Result<(ChainHead, i64), StoreError> {
    let last = sqlx::query("SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    let head = match last {
        Some(row) => ChainHead {
            seq: get(&row, "seq")?,
            hash: get(&row, "hash")?,
        },
        None => ChainHead::genesis(),
    };
    let row = sqlx::query("SELECT access_rev FROM sluice_state WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?;
    Ok((head, get(&row, "access_rev")?))
}

/// Commits the open batch, makes it durable, then answers its writers.
///
/// With `queued` (PostgreSQL's committer): while writers wait for the lock and the batch is
/// not full, it leaves the batch open for them; each kicks again when it leaves. A batch of
/// fewer than [`FEW_WRITERS`] first yields once, for writers about to queue. There a
/// writer's commit costs no round trip, so without this every writer would find the
/// committer ahead of it and each batch would hold one writer. Writers wait for their
/// answer before they write again, so the queue runs dry and the batch commits.
async fn flush(state: &Mutex<Batch>, flusher: Option<&Flusher>, queued: Option<&AtomicUsize>) {
    let mut guard = state.lock().await;
    guard.settle().await;
    let joining = queued.is_some_and(|q| q.load(Ordering::SeqCst) > 0);
    if joining && guard.pg.is_some() && guard.waiting.len() + guard.held.len() < MOST_WRITERS {
        return;
    }
    // A small batch lets the writers that are about to queue (their requests already being
    // handled) run first, once: a commit's lock, signature and flush are shared by more.
    if let Some(q) = queued {
        if guard.pg.is_some() && guard.open && guard.waiting.len() + guard.held.len() < FEW_WRITERS
        {
            drop(guard);
            tokio::task::yield_now().await;
            guard = state.lock().await;
            guard.settle().await;
            if q.load(Ordering::SeqCst) > 0 {
                return;
            }
        }
    }
    let Some((waiting, result)) = guard.commit().await else {
        return;
    };
    drop(guard);
    // The next batch fills while this one reaches the disk.
    let result = match (result, flusher) {
        (Ok(()), Some(flusher)) => flusher
            .durable()
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot make the commit durable: {e}"))),
        (result, _) => result,
    };
    for w in waiting {
        let _ = w.answer.send(result.clone().map(|()| Committed {
            entries: w.entries,
            first_rev: w.first_rev,
        }));
    }
}

async fn committer(
    state: Arc<Mutex<Batch>>,
    flusher: Option<Arc<Flusher>>,
    mut kicks: mpsc::Receiver<()>,
    queued: Arc<AtomicUsize>,
) {
    // Ends when the store (every sender) is gone.
    while kicks.recv().await.is_some() {
        flush(&state, flusher.as_deref(), Some(&queued)).await;
    }
}

/// One writer's place in the batch: holds the write lock until released or dropped.
pub(crate) struct Lease {
    guard: OwnedMutexGuard<Batch>,
    kick: mpsc::Sender<()>,
    released: bool,
}

impl Lease {
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        &mut self.guard.conn
    }

    /// A PostgreSQL batch (where writers may be held, see [`Lease::hold`]).
    pub(crate) fn is_pg(&self) -> bool {
        self.guard.pg.is_some()
    }

    /// Writers before this one hold statements not yet sent.
    pub(crate) fn holds_others(&self) -> bool {
        !self.guard.held.is_empty()
    }

    /// PostgreSQL: a writer kept in the open transaction took the chain head's lock.
    pub(crate) fn head_locked(&self) -> bool {
        self.guard.locked
    }

    /// Keeps this writer's change in the batch (its savepoint was just released with
    /// [`KEEP`]) and waits until the batch is durable; answers with `entries`.
    pub(crate) async fn kept(
        mut self,
        head: ChainHead,
        access_rev: i64,
        entries: Vec<AuditEntry>,
    ) -> Result<Committed, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.guard.head = head;
        self.guard.access_rev = access_rev;
        self.guard.waiting.push(Waiter {
            answer,
            entries,
            chain: None,
            bumps: Vec::new(),
            first_rev: None,
        });
        self.released = true;
        let kick = self.kick.clone();
        drop(self);
        let _ = kick.try_send(());
        answered
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the store was closed".into())))
    }

    /// PostgreSQL: leaves this writer's statements to be sent with the next call on the
    /// connection (another writer's, or the commit) and waits until the batch is durable;
    /// answers with the entries as stored and the revisions given out.
    pub(crate) async fn hold(mut self, held: Held) -> Result<Committed, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.guard.held.push(Holding { held, answer });
        self.released = true;
        let kick = self.kick.clone();
        drop(self);
        let _ = kick.try_send(());
        answered
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the store was closed".into())))
    }

    /// PostgreSQL: sends the held writers, then `then`, in one call (see
    /// `Batch::send_with`); returns the rows. Call it from a spawned task.
    pub(crate) async fn send(&mut self, then: &str) -> Result<Vec<AnyRow>, StoreError> {
        self.guard.send_with(then).await
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.released {
            // INVARIANT: the next holder of the lock rolls this writer back before anything else.
            self.guard.abandoned = true;
            let _ = self.kick.try_send(());
        }
    }
}
