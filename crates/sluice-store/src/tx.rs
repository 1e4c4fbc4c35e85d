use crate::{get, StoreError};
use chrono::{DateTime, Utc};
use sluice_audit::{AuditEntry, ChainHead, NewEntry};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool, Transaction};
use std::borrow::Cow;

/// An audited write transaction.
///
/// `begin` joins the batch of this store handle (see [`crate::batch`]), under a savepoint of
/// its own. On SQLite the batch holds the one writer's lock; on PostgreSQL the batch takes the
/// audit chain head's row lock at its commit, where its entries are chained, or earlier at a
/// read that needs nothing to change under it until then ([`WriteTx::conn`]); so the chain
/// stays linear and gap-free whatever instance writes. Without a batch (PostgreSQL `pg_batch`
/// off) it takes the head lock in a transaction of its own.
/// `commit` refuses a transaction that recorded nothing: no audit, no action; and it returns
/// only once the change is durable.
///
/// In a batch, statements that return nothing ([`WriteTx::exec`]) and the audit entries are
/// held back and sent together with the next statement that reads, or with the commit: every
/// statement sent costs a hand-off to SQLite's connection thread, or a round trip to
/// PostgreSQL, and that is what limits a single writer. Their errors surface there, inside the
/// same transaction. On PostgreSQL the commit goes further: it is held for the next call on
/// the batch's connection, another writer's read or the batch's commit (see [`crate::batch`]).
pub struct WriteTx {
    lease: Lease,
    head: ChainHead,
    /// SQLite: the access revision inside the batch (see [`WriteTx::bump_access`]).
    access_rev: Option<i64>,
    /// PostgreSQL batch: the access revisions taken, told their value at its commit, and the
    /// request each names (see [`WriteTx::bump_grant`]).
    revisions: Vec<(Revision, Option<String>)>,
    /// PostgreSQL batch: this writer took the chain head's lock for a read.
    locked: bool,
    entries: Vec<AuditEntry>,
    deferred: Vec<Deferred>,
    /// PostgreSQL batch: statements that name one of this writer's entries by `seq`, sent
    /// once the entries are chained (see [`WriteTx::exec_sealed`]).
    sealed: Vec<Sealed>,
    /// Grants, principals or policy (`.0`) and flags (`.1`) changed: the commit says so to
    /// the other instances.
    moved: (bool, bool),
    /// Told the new head's `seq` after a successful commit.
    committed: Option<std::sync::Arc<tokio::sync::watch::Sender<i64>>>,
    /// Which notifications the entries give rise to (written with them), and whom to wake.
    outbox: Option<(
        std::sync::Arc<dyn crate::OutboxRouter>,
        std::sync::Arc<tokio::sync::Notify>,
    )>,
    /// PostgreSQL batch: where the requests it wrote are remembered once it commits (see
    /// `crate::seen::SeenRequests`), and what it wrote.
    seen: Option<std::sync::Arc<crate::seen::SeenRequests>>,
    wrote: Vec<(String, Option<crate::SeenRequest>)>,
}

enum Lease {
    /// PostgreSQL: a transaction of its own, and how its commit is announced to the other
    /// instances (see [`crate::listen`]).
    Own(
        Transaction<'static, Any>,
        std::sync::Arc<crate::listen::Changes>,
    ),
    /// A savepoint in the shared batch transaction.
    Batch(crate::batch::Lease),
    /// The batch lease is with a spawned task (or was lost with it).
    Away,
}

use crate::prepared::push_arg;
pub(crate) use crate::prepared::Arg;

/// A statement that returns nothing, with its parameters numbered from `$1`.
struct Deferred {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
}

/// A statement whose `$1` is the `seq` of this writer's entry number `entry`, and `args`
/// the rest from `$2`.
struct Sealed {
    entry: usize,
    sql: &'static str,
    args: Vec<Arg>,
}

/// Records what an access revision moved (`$1` the revision, `$2` the request whose grant
/// moved, or NULL for anything else), in the transaction that takes it (migration 0019; read
/// by `Store::access_changes_since`).
const RECORD_CHANGE_SQL: &str = "INSERT INTO access_changes (rev, request_id) VALUES ($1, $2)";

/// Parameters per call: SQLite allows 32,766, PostgreSQL 65,535; stay far below both.
const ARGS_PER_CALL: usize = 900;

impl WriteTx {
    pub(crate) async fn begin(
        pool: &AnyPool,
        changes: std::sync::Arc<crate::listen::Changes>,
    ) -> Result<WriteTx, StoreError> {
        let mut tx = pool.begin().await?;
        let row = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut *tx)
            .await?;
        let head = ChainHead {
            seq: get(&row, "seq")?,
            hash: get(&row, "hash")?,
        };
        Ok(WriteTx {
            lease: Lease::Own(tx, changes),
            head,
            access_rev: None,
            revisions: Vec::new(),
            locked: true,
            entries: Vec::new(),
            deferred: Vec::new(),
            sealed: Vec::new(),
            moved: (false, false),
            committed: None,
            outbox: None,
            seen: None,
            wrote: Vec::new(),
        })
    }

    pub(crate) async fn join(batch: &crate::batch::Batcher) -> Result<WriteTx, StoreError> {
        let (lease, head, access_rev) = batch.begin().await?;
        Ok(WriteTx {
            lease: Lease::Batch(lease),
            head,
            access_rev: Some(access_rev),
            revisions: Vec::new(),
            locked: false,
            entries: Vec::new(),
            deferred: Vec::new(),
            sealed: Vec::new(),
            moved: (false, false),
            committed: None,
            outbox: None,
            seen: None,
            wrote: Vec::new(),
        })
    }

    pub(crate) fn announcing_to(
        mut self,
        committed: std::sync::Arc<tokio::sync::watch::Sender<i64>>,
    ) -> Self {
        self.committed = Some(committed);
        self
    }

    pub(crate) fn remembering_in(
        mut self,
        seen: std::sync::Arc<crate::seen::SeenRequests>,
    ) -> Self {
        if self.pg_batch() {
            self.seen = Some(seen);
        }
        self
    }

    /// PostgreSQL batch: notes a request this writer wrote, for [`crate::Store::seen_request`]
    /// once it commits.
    pub(crate) fn remember(
        &mut self,
        wrote: impl FnOnce() -> (String, Option<crate::SeenRequest>),
    ) {
        if self.seen.is_some() {
            self.wrote.push(wrote());
        }
    }

    pub(crate) fn routing_to(
        mut self,
        router: Option<std::sync::Arc<dyn crate::OutboxRouter>>,
        notify: std::sync::Arc<tokio::sync::Notify>,
    ) -> Self {
        self.outbox = router.map(|r| (r, notify));
        self
    }

    fn raw_conn(&mut self) -> Result<&mut AnyConnection, StoreError> {
        match &mut self.lease {
            Lease::Own(tx, _) => Ok(tx),
            Lease::Batch(lease) => Ok(lease.conn()),
            Lease::Away => Err(lost()),
        }
    }

    /// On PostgreSQL (a transaction of its own, or a batch)?
    pub(crate) fn is_pg(&self) -> bool {
        match &self.lease {
            Lease::Own(..) => true,
            Lease::Batch(lease) => lease.is_pg(),
            Lease::Away => false,
        }
    }

    /// In a PostgreSQL batch: other writers' statements may be held for the next call.
    fn pg_batch(&self) -> bool {
        matches!(&self.lease, Lease::Batch(lease) if lease.is_pg())
    }

    /// The connection, for a statement that reads: everything held back is sent first. In a
    /// PostgreSQL batch it also takes the chain head's lock: what this writer decides from
    /// what it reads must not change under it until the commit, and the head's lock is what
    /// every other instance's commit waits for (see [`crate::batch`]).
    pub(crate) async fn conn(&mut self) -> Result<&mut AnyConnection, StoreError> {
        if self.pg_batch() {
            let lock = self.lock_head();
            self.send_pg(lock).await?;
            self.locked = true;
        } else if !self.deferred.is_empty() {
            let deferred = std::mem::take(&mut self.deferred);
            send(self.raw_conn()?, deferred, "").await?;
        }
        self.raw_conn()
    }

    /// PostgreSQL batch: the statement that takes the chain head's lock, unless this writer
    /// or one kept before it in the batch holds it already. Prepared on the batch's
    /// connection, as the commit sends it.
    fn lock_head(&self) -> Option<String> {
        match &self.lease {
            Lease::Batch(lease) if !self.locked && !lease.head_locked() => {
                Some(crate::prepared::LOCK_HEAD.with(&[]))
            }
            _ => None,
        }
    }

    /// Runs a statement that returns rows and locks every row it returns (`UPDATE …
    /// RETURNING`, `SELECT … FOR UPDATE`). In a PostgreSQL batch it goes in the same call as
    /// everything held back (this writer's and other writers'), parameters written in, and
    /// does not take the chain head's lock: the rows it read cannot change under this writer
    /// until the commit whatever another instance does, so that instance's batch may run
    /// beside this one. Any other read goes through [`WriteTx::conn`], which takes the lock.
    pub(crate) async fn fetch_locked(
        &mut self,
        sql: &'static str,
        args: Vec<Arg>,
    ) -> Result<Vec<AnyRow>, StoreError> {
        if self.pg_batch() {
            let mut read = String::new();
            inline(sql, &args, &mut read);
            return self.send_pg(Some(read)).await;
        }
        Ok(bind(sqlx::query(sql), args)
            .fetch_all(self.conn().await?)
            .await?)
    }

    /// PostgreSQL batch: sends other writers' held statements, this writer's held-back ones
    /// and `read`, in one call from a spawned task (it runs to the end even if the caller goes
    /// away; the lease then comes back to nobody and this writer is undone).
    async fn send_pg(&mut self, read: Option<String>) -> Result<Vec<AnyRow>, StoreError> {
        let mut sql = inline_all(&std::mem::take(&mut self.deferred));
        if let Some(read) = read {
            push_statement(&mut sql, &read);
        }
        let Lease::Batch(mut lease) = std::mem::replace(&mut self.lease, Lease::Away) else {
            return Err(lost());
        };
        if sql.is_empty() && !lease.holds_others() {
            self.lease = Lease::Batch(lease);
            return Ok(Vec::new());
        }
        let (lease, sent) = tokio::spawn(async move {
            let sent = lease.send(&sql).await;
            (lease, sent)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("the write task failed: {e}")))?;
        self.lease = Lease::Batch(lease);
        sent
    }

    /// Runs a statement that returns nothing: with the next round trip in a batch, now
    /// otherwise.
    pub(crate) async fn exec(
        &mut self,
        sql: &'static str,
        args: Vec<Arg>,
    ) -> Result<(), StoreError> {
        match &mut self.lease {
            Lease::Batch(_) => {
                self.deferred.push(Deferred {
                    sql: Cow::Borrowed(sql),
                    args,
                });
            }
            Lease::Own(tx, _) => {
                bind(sqlx::query(sql), args).execute(&mut **tx).await?;
            }
            Lease::Away => return Err(lost()),
        }
        Ok(())
    }

    /// Runs a statement that returns nothing whose `$1` is the `seq` of the entry this writer
    /// appended last (`args` are `$2` on): rows sealed by that entry. In a PostgreSQL batch the
    /// `seq` is known only at the batch's commit, where the statement goes with the entries.
    pub(crate) async fn exec_sealed(
        &mut self,
        sql: &'static str,
        args: Vec<Arg>,
    ) -> Result<(), StoreError> {
        let Some(last) = self.entries.last() else {
            return Err(StoreError::Database(
                "rows sealed by an audit entry need the entry first".into(),
            ));
        };
        if self.pg_batch() {
            self.sealed.push(Sealed {
                entry: self.entries.len() - 1,
                sql,
                args,
            });
            return Ok(());
        }
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(Arg::Int(last.seq));
        all.extend(args);
        self.exec(sql, all).await
    }

    /// The `seq` of the entry this writer appended last, where it is certain now: not in a
    /// PostgreSQL batch (see [`WriteTx::exec_sealed`]).
    pub(crate) fn sealing_seq(&self) -> Option<i64> {
        if self.pg_batch() {
            return None;
        }
        self.entries.last().map(|e| e.seq)
    }

    /// Marks that something other instances hold in their access snapshot or token cache
    /// changed (policy, principals, tokens, gateway sessions or services), which they reload
    /// whole; returns the new access revision, whose value is certain once
    /// [`WriteTx::commit`] has returned (in a PostgreSQL batch it is given out at the batch's
    /// commit). A change of one request's grant is [`WriteTx::bump_grant`].
    pub async fn bump_access(&mut self) -> Result<Revision, StoreError> {
        self.bump(None).await
    }

    /// Marks that the grant of request `id` moved (it became active, or ended): the other
    /// instances read that request alone, not every active one (see
    /// [`crate::Store::access_changes_since`]). Returns the new access revision, as
    /// [`WriteTx::bump_access`] does.
    pub async fn bump_grant(&mut self, id: &str) -> Result<Revision, StoreError> {
        self.bump(Some(id.to_owned())).await
    }

    /// Takes the next access revision and records what it moved (`access_changes`, written
    /// with it).
    async fn bump(&mut self, request: Option<String>) -> Result<Revision, StoreError> {
        self.moved.0 = true;
        let rev = Revision::default();
        if self.pg_batch() {
            // Given out, and recorded, at the batch's commit (see `batch::plan`).
            self.revisions.push((rev.clone(), request));
            return Ok(rev);
        }
        let value = match &mut self.access_rev {
            // SQLite's batch: it holds the one writer's lock, so the revision it read stays
            // ours.
            Some(value) => {
                *value += 1;
                let value = *value;
                self.exec(
                    "UPDATE sluice_state SET access_rev = access_rev + 1 WHERE id = 1",
                    Vec::new(),
                )
                .await?;
                value
            }
            None => {
                let row = sqlx::query(
                    "UPDATE sluice_state SET access_rev = access_rev + 1 WHERE id = 1 RETURNING access_rev",
                )
                .fetch_one(self.conn().await?)
                .await?;
                get(&row, "access_rev")?
            }
        };
        self.exec(
            RECORD_CHANGE_SQL,
            vec![Arg::Int(value), Arg::OptText(request)],
        )
        .await?;
        rev.set(value);
        Ok(rev)
    }

    /// Marks that flags changed.
    pub async fn bump_flags(&mut self) -> Result<(), StoreError> {
        self.moved.1 = true;
        if self.pg_batch() {
            // Counted at the batch's commit (see `batch::Batch::commit_pg`).
            return Ok(());
        }
        self.exec(
            "UPDATE sluice_state SET flags_rev = flags_rev + 1 WHERE id = 1",
            Vec::new(),
        )
        .await
    }

    /// Appends an audit entry to the chain of this transaction. Entries are written with the
    /// commit and fail it if they cannot be: no audit, no action. The entry returned is where
    /// it would go now; in a PostgreSQL batch it is not chained yet (`seq` 0): only what
    /// [`WriteTx::commit`] returns is the entry as stored.
    pub async fn audit(
        &mut self,
        at: DateTime<Utc>,
        entry: NewEntry,
    ) -> Result<AuditEntry, StoreError> {
        if self.pg_batch() {
            // Written with every other writer's at the batch's commit, where a failure would
            // fail them all: what PostgreSQL's text cannot hold fails this writer now.
            let fields = [
                Some(&entry.actor),
                Some(&entry.action),
                entry.resource.as_ref(),
            ];
            if fields
                .into_iter()
                .chain([entry.subject_id.as_ref()])
                .flatten()
                .any(|f| f.contains('\0'))
            {
                return Err(StoreError::Database(
                    "an audit entry cannot hold a NUL character".into(),
                ));
            }
            // Chained at the batch's commit, where the head it follows is known (see
            // `crate::batch`): not hashed twice.
            let entry = AuditEntry::unchained(at, entry);
            self.entries.push(entry.clone());
            return Ok(entry);
        }
        let entry = self.head.append(at, entry);
        self.head = entry.head();
        self.entries.push(entry.clone());
        Ok(entry)
    }

    /// Commits the change and its audit entries together; returns once they are durable.
    ///
    /// In a PostgreSQL batch the commit sends nothing itself: the writer's statements are
    /// held for the next call on the batch's connection, another writer's read or the
    /// batch's commit (see `batch::Lease::hold`), so it costs no round trip of its own;
    /// should a writer held before it fail, its entries are chained again on what precedes
    /// them, and it is answered with the entries as stored.
    pub async fn commit(mut self) -> Result<Vec<AuditEntry>, StoreError> {
        if self.entries.is_empty() {
            // INVARIANT: every committed change carries at least one audit entry.
            // Dropping the lease rolls the change back.
            return Err(StoreError::Database(
                "refusing to commit a change without an audit entry".into(),
            ));
        }
        let deferred = std::mem::take(&mut self.deferred);
        let entries = std::mem::take(&mut self.entries);
        let committed = self.committed.take();
        let router = self.outbox.as_ref().map(|(r, _)| r.clone());
        // INVARIANT: the notifications an entry gives rise to are written in the transaction
        // that writes the entry, so a committed change is never left unannounced and an
        // announced change was committed.
        let notified = router
            .as_ref()
            .is_some_and(|r| entries.iter().any(|e| !r.route(e).is_empty()));
        let lease = std::mem::replace(&mut self.lease, Lease::Away);
        let entries = match lease {
            Lease::Own(mut tx, changes) => {
                let mut deferred = deferred;
                deferred.extend(entry_statements(&entries, router.as_deref())?);
                for d in deferred {
                    bind(sqlx::query(&d.sql), d.args).execute(&mut *tx).await?;
                }
                // INVARIANT: the other instances are told in the transaction, so they hear
                // of it at commit and never of a write that rolled back.
                sqlx::query(crate::prepared::HEAD_NOTIFY.sql)
                    .bind(self.head.seq)
                    .bind(&self.head.hash)
                    .bind(changes.payload(self.moved.0, self.moved.1))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                entries
            }
            Lease::Batch(lease) if lease.is_pg() => {
                let sealed = std::mem::take(&mut self.sealed);
                let chain: crate::batch::Chain = Box::new(move |head| {
                    let entries = rebase(&entries, head);
                    let mut inserts = inline_entries(&entries, router.as_deref())?;
                    for s in &sealed {
                        let seq = entries.get(s.entry).map_or(0, |e| e.seq);
                        let mut args = vec![Arg::Int(seq)];
                        args.extend(s.args.iter().cloned());
                        let mut statement = String::new();
                        inline(s.sql, &args, &mut statement);
                        push_statement(&mut inserts, &statement);
                    }
                    Ok((entries, inserts))
                });
                let held = crate::batch::Held {
                    statements: deferred.len(),
                    sql: inline_all(&deferred),
                    chain,
                    bumps: self.revisions.iter_mut().map(|(_, id)| id.take()).collect(),
                    locked: self.locked,
                    moved: self.moved,
                };
                let committed = lease.hold(held).await?;
                if let Some(first) = committed.first_rev {
                    for (k, (rev, _)) in self.revisions.iter().enumerate() {
                        rev.set(first + k as i64);
                    }
                }
                committed.entries
            }
            Lease::Batch(mut lease) => {
                // SQLite: the same in one call (several statements, parameters bound), then
                // the bookkeeping of the batch, spawned for the same reason.
                let mut deferred = deferred;
                deferred.extend(entry_statements(&entries, router.as_deref())?);
                let (head, access_rev) = (self.head.clone(), self.access_rev.unwrap_or_default());
                tokio::spawn(async move {
                    send(lease.conn(), deferred, crate::batch::KEEP).await?;
                    lease.kept(head, access_rev, entries).await
                })
                .await
                .map_err(|e| StoreError::Unavailable(format!("the write task failed: {e}")))??
                .entries
            }
            Lease::Away => return Err(lost()),
        };
        if let Some(seen) = &self.seen {
            seen.learn(std::mem::take(&mut self.wrote));
        }
        if let (true, Some((_, notify))) = (notified, &self.outbox) {
            notify.notify_waiters();
        }
        if let Some(committed) = committed {
            let seq = entries.last().map_or(0, |e| e.seq);
            committed.send_if_modified(|last| {
                let moved = seq > *last;
                *last = (*last).max(seq);
                moved
            });
        }
        Ok(entries)
    }
}

/// The error of a writer whose batch lease went with a task that failed.
fn lost() -> StoreError {
    StoreError::Unavailable("the write task failed".into())
}

/// `entries` chained again on `base`, unchanged if they already follow it.
fn rebase(entries: &[AuditEntry], base: &ChainHead) -> Vec<AuditEntry> {
    let follows = entries
        .first()
        .is_none_or(|e| e.seq == base.seq + 1 && e.prev_hash == base.hash);
    if follows {
        return entries.to_vec();
    }
    let mut head = base.clone();
    entries
        .iter()
        .map(|e| {
            let again = NewEntry {
                actor: e.actor.clone(),
                action: e.action.clone(),
                resource: e.resource.clone(),
                subject_id: e.subject_id.clone(),
                details: e.details.clone(),
            };
            let e = head.append_as(e.format, e.at, again);
            head = e.head();
            e
        })
        .collect()
}

/// The inserts of `entries` and of the notifications they give rise to.
fn entry_statements(
    entries: &[AuditEntry],
    router: Option<&dyn crate::OutboxRouter>,
) -> Result<Vec<Deferred>, StoreError> {
    let mut out = Vec::new();
    for chunk in entries.chunks(ARGS_PER_CALL / ENTRY_ARGS) {
        out.push(insert_entries(chunk)?);
    }
    out.extend(outbox_statements(entries, router));
    Ok(out)
}

/// A writer with at most this many entries inserts each with the prepared statement (see
/// [`inline_entries`]).
const PREPARED_ENTRIES: usize = 2;

/// PostgreSQL batch: the inserts of `entries`, then of their notifications, as one
/// `;`-separated list. A writer's one or two entries (a request, an approval) go one prepared
/// statement each (see [`crate::prepared`]); more (a group of decisions) in multi-row inserts,
/// whose planning their rows share.
fn inline_entries(
    entries: &[AuditEntry],
    router: Option<&dyn crate::OutboxRouter>,
) -> Result<String, StoreError> {
    if entries.len() > PREPARED_ENTRIES {
        return Ok(inline_all(&entry_statements(entries, router)?));
    }
    let mut sql = String::new();
    for e in entries {
        if !sql.is_empty() {
            sql.push_str("; ");
        }
        crate::prepared::INSERT_ENTRY.execute(&entry_args(e)?, &mut sql);
    }
    push_statement(&mut sql, &inline_all(&outbox_statements(entries, router)));
    Ok(sql)
}

/// The inserts of the notifications `entries` give rise to.
fn outbox_statements(
    entries: &[AuditEntry],
    router: Option<&dyn crate::OutboxRouter>,
) -> Vec<Deferred> {
    let mut out = Vec::new();
    if let Some(router) = router {
        let mut args = Vec::new();
        let mut rows = 0;
        for e in entries {
            for m in router.route(e) {
                insert_args(&m, Some(e.seq), e.at.timestamp_millis(), &mut args);
                rows += 1;
                if rows * MESSAGE_ARGS + MESSAGE_ARGS > ARGS_PER_CALL {
                    out.push(Deferred {
                        sql: Cow::Owned(insert_sql(rows)),
                        args: std::mem::take(&mut args),
                    });
                    rows = 0;
                }
            }
        }
        if rows > 0 {
            out.push(Deferred {
                sql: Cow::Owned(insert_sql(rows)),
                args,
            });
        }
    }
    out
}

/// Held-back statements as one `;`-separated list, parameters written in as literals
/// (PostgreSQL, see [`inline`]; one prepared on the batch's connection as `EXECUTE`, see
/// [`crate::prepared`]). INVARIANT: each held-back statement is one statement (no
/// `;` of its own), so the server reports one completion for each.
fn inline_all(deferred: &[Deferred]) -> String {
    let mut sql = String::new();
    for d in deferred {
        if !sql.is_empty() {
            sql.push_str("; ");
        }
        push_prepared(&d.sql, &d.args, &mut sql);
    }
    sql
}

/// Appends a statement (or `;`-separated statements) to a list.
fn push_statement(sql: &mut String, more: &str) {
    if more.is_empty() {
        return;
    }
    if !sql.is_empty() {
        sql.push_str("; ");
    }
    sql.push_str(more);
}

/// One multi-row `INSERT` of audit entries.
/// Bind parameters per inserted audit entry.
const ENTRY_ARGS: usize = 10;

/// Bind parameters per inserted row.
pub(crate) const MESSAGE_ARGS: usize = 7;

/// The multi-row insert of `rows` outbox messages (see [`insert_args`]).
pub(crate) fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO outbox (id, sink, event, audit_seq, created_at, payload, next_at, state) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 1..=MESSAGE_ARGS {
            sql.push_str(&format!("${}, ", r * MESSAGE_ARGS + c));
        }
        sql.push_str("'pending')");
    }
    sql.push_str(" ON CONFLICT (id) DO NOTHING");
    sql
}

pub(crate) fn insert_args(m: &crate::OutboxMessage, seq: Option<i64>, at: i64, out: &mut Vec<Arg>) {
    out.extend([
        Arg::Text(m.id.clone()),
        Arg::Text(m.sink.clone()),
        Arg::Text(m.event.clone()),
        Arg::OptInt(seq),
        Arg::Int(at),
        Arg::Text(m.payload.clone()),
        Arg::Int(at),
    ]);
}

fn insert_entries(entries: &[AuditEntry]) -> Result<Deferred, StoreError> {
    let mut sql = String::from(
        "INSERT INTO audit_entries (seq, at, actor, action, resource, subject_id, details, prev_hash, hash, format) VALUES ",
    );
    let mut args = Vec::with_capacity(entries.len() * ENTRY_ARGS);
    for (r, e) in entries.iter().enumerate() {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 1..=ENTRY_ARGS {
            if c > 1 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * ENTRY_ARGS + c));
        }
        sql.push(')');
        args.extend(entry_args(e)?);
    }
    Ok(Deferred {
        sql: Cow::Owned(sql),
        args,
    })
}

/// An entry's row, in the order of its insert's columns.
fn entry_args(e: &AuditEntry) -> Result<[Arg; ENTRY_ARGS], StoreError> {
    Ok([
        Arg::Int(e.seq),
        Arg::Int(e.at.timestamp_millis()),
        Arg::Text(e.actor.clone()),
        Arg::Text(e.action.clone()),
        Arg::OptText(e.resource.clone()),
        Arg::OptText(e.subject_id.clone()),
        Arg::Text(serde_json::to_string(&e.details)?),
        Arg::Text(e.prev_hash.clone()),
        Arg::Text(e.hash.clone()),
        Arg::Int(i64::from(u8::from(e.format))),
    ])
}

pub(crate) fn bind<'q>(
    mut q: Query<'q, Any, AnyArguments<'q>>,
    args: Vec<Arg>,
) -> Query<'q, Any, AnyArguments<'q>> {
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(v),
            Arg::OptInt(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::OptText(v) => q.bind(v),
        };
    }
    q
}

/// SQLite: sends held-back statements, then `then` (statements without parameters): together,
/// parameters renumbered, in as few calls as the parameter limit allows, `then` appended to
/// the last. (PostgreSQL prepares one statement per call; there they go as one simple-protocol
/// call with their parameters written in, see `WriteTx::send_pg`.)
async fn send(
    conn: &mut AnyConnection,
    deferred: Vec<Deferred>,
    then: &str,
) -> Result<(), StoreError> {
    let mut calls: Vec<(String, Vec<Arg>)> = Vec::new();
    for d in deferred {
        let fits = calls
            .last()
            .is_some_and(|(_, args)| args.len() + d.args.len() <= ARGS_PER_CALL);
        if !fits {
            calls.push((String::new(), Vec::new()));
        }
        if let Some((sql, args)) = calls.last_mut() {
            if !sql.is_empty() {
                sql.push_str("; ");
            }
            renumber(&d.sql, args.len(), sql);
            args.extend(d.args);
        }
    }
    if !then.is_empty() {
        match calls.last_mut() {
            Some((sql, _)) => {
                sql.push_str("; ");
                sql.push_str(then);
            }
            None => calls.push((then.to_owned(), Vec::new())),
        }
    }
    for (sql, args) in calls {
        bind(sqlx::query(&sql), args).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Appends `sql` to `out` with every parameter `$n` renumbered `$(n + offset)`.
///
/// Only parameters are touched: text inside string literals (`'…'`, `''` escapes an inner
/// quote), quoted identifiers (`"…"`) and comments (`-- …` to the end of the line, `/* … */`)
/// is copied as it is, whatever `$` or `?` it holds.
fn renumber(sql: &str, offset: usize, out: &mut String) {
    substitute(sql, out, |n, out| {
        out.push('$');
        out.push_str(&(n + offset).to_string());
    });
}

/// Appends `sql` to `out` with every parameter `$n` replaced by `args[n - 1]` written as a
/// PostgreSQL literal: integers as they are (negative ones in parentheses, so `- $1` never
/// becomes a `--` comment), text between single quotes with every quote doubled, `NULL` for
/// none. Literal text is taken as it is because every connection runs with
/// `standard_conforming_strings = on` (set on connect, see `Store::open_with`), where a
/// backslash is an ordinary character. A parameter without an argument is left as it is (the
/// server then refuses the statement).
pub(crate) fn inline(sql: &str, args: &[Arg], out: &mut String) {
    use std::fmt::Write as _;
    substitute(sql, out, |n, out| {
        match n.checked_sub(1).and_then(|i| args.get(i)) {
            Some(a) => push_arg(out, a),
            None => {
                let _ = write!(out, "${n}");
            }
        }
    });
}

/// Appends `sql` with `args`: `EXECUTE` when it is prepared on a batch's connection (see
/// [`crate::prepared`]), written in whole by [`inline`] otherwise.
fn push_prepared(sql: &str, args: &[Arg], out: &mut String) {
    match crate::prepared::find(sql) {
        Some(p) => p.execute(args, out),
        None => inline(sql, args, out),
    }
}

/// Appends `sql` to `out`, each parameter `$n` replaced by what `param(n, out)` appends; see
/// [`renumber`] for what counts as a parameter.
fn substitute(sql: &str, out: &mut String, mut param: impl FnMut(usize, &mut String)) {
    let bytes = sql.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') => {
                // A doubled quote closes and reopens: the same as skipping both.
                i = find_from(bytes, i + 1, &[q]).map_or(bytes.len(), |end| end + 1);
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = find_from(bytes, i + 2, b"\n").map_or(bytes.len(), |end| end + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = find_from(bytes, i + 2, b"*/").map_or(bytes.len(), |end| end + 2);
            }
            b'$' => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if let Ok(n) = sql[i + 1..i + 1 + digits].parse::<usize>() {
                    out.push_str(&sql[copied..i]);
                    param(n, out);
                    copied = i + 1 + digits;
                }
                i += 1 + digits;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
}

/// The index of the first occurrence of `needle` in `bytes` at or after `from`.
fn find_from(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// An access revision taken by a write (see [`WriteTx::bump_access`]): its value is certain
/// once the write has committed.
#[derive(Debug, Clone, Default)]
pub struct Revision(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl Revision {
    /// The revision; read it after the commit (before, it may be 0).
    pub fn get(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }

    fn set(&self, value: i64) {
        self.0.store(value, std::sync::atomic::Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::renumber;

    #[test]
    fn renumber_shifts_every_parameter() {
        let mut out = String::from("X; ");
        renumber(
            "UPDATE t SET a = $1, b = $12 WHERE c = '$' AND d = $2",
            3,
            &mut out,
        );
        assert_eq!(
            out,
            "X; UPDATE t SET a = $4, b = $15 WHERE c = '$' AND d = $5"
        );
    }

    #[test]
    fn renumber_leaves_literals_identifiers_and_comments_alone() {
        let mut out = String::new();
        renumber(
            "INSERT INTO t (a, \"b$1\", c) VALUES ($1, '$1 and ? and it''s $2', $2) -- $1 ?\n\
             /* $2 '?' */ RETURNING $3",
            10,
            &mut out,
        );
        assert_eq!(
            out,
            "INSERT INTO t (a, \"b$1\", c) VALUES ($11, '$1 and ? and it''s $2', $12) -- $1 ?\n\
             /* $2 '?' */ RETURNING $13"
        );
    }

    #[test]
    fn inline_writes_literals_that_cannot_escape_or_comment_out() {
        use super::{inline, Arg};
        let mut out = String::new();
        inline(
            "UPDATE t SET a = a -$1, b = $2, c = $3, d = $4 WHERE e = '$1' AND f = $5 AND g = $6",
            &[
                Arg::Int(-5),
                Arg::Text("it's '; DROP TABLE t; --\\".into()),
                Arg::OptText(None),
                Arg::OptInt(Some(7)),
                Arg::Int(0),
            ],
            &mut out,
        );
        assert_eq!(
            out,
            "UPDATE t SET a = a -(-5), b = 'it''s ''; DROP TABLE t; --\\', c = NULL, d = 7 \
             WHERE e = '$1' AND f = 0 AND g = $6"
        );
    }

    #[test]
    fn renumber_copies_an_unclosed_literal_or_comment_as_it_is() {
        for sql in ["SELECT '$1", "SELECT 1 -- $1", "SELECT /* $1", "SELECT $"] {
            let mut out = String::new();
            renumber(sql, 5, &mut out);
            assert_eq!(out, sql);
        }
    }
}
