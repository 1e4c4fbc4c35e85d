use crate::{get, Backend, PrincipalRow, Store, StoreError};
use sluice_core::access::AccessRequest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The change counters (see migration 0002): an instance reloads what moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateRevs {
    pub access: i64,
    pub flags: i64,
}

impl Store {
    pub async fn state_revs(&self) -> Result<StateRevs, StoreError> {
        let row = sqlx::query("SELECT access_rev, flags_rev FROM sluice_state WHERE id = 1")
            .fetch_one(self.reader())
            .await?;
        Ok(StateRevs {
            access: get(&row, "access_rev")?,
            flags: get(&row, "flags_rev")?,
        })
    }

    /// [`state_revs`](Self::state_revs) and the earliest moment something waits for the
    /// clock — a pending scheduled change, a pending change request's time-out, an approved
    /// one's apply time — in one round trip, so every instance learns of the others' schedules
    /// with each sync. Each `MIN` is one index lookup.
    pub async fn state_and_next_due(&self) -> Result<(StateRevs, Option<i64>), StoreError> {
        let row = sqlx::query(
            "SELECT access_rev, flags_rev, \
             (SELECT MIN(apply_at) FROM scheduled_changes WHERE status = 'pending') AS sch, \
             (SELECT MIN(pending_until) FROM change_requests WHERE status = 'pending') AS cr_to, \
             (SELECT MIN(apply_at) FROM change_requests WHERE status = 'approved') AS cr_at \
             FROM sluice_state WHERE id = 1",
        )
        .fetch_one(self.reader())
        .await?;
        let revs = StateRevs {
            access: get(&row, "access_rev")?,
            flags: get(&row, "flags_rev")?,
        };
        let mut next: Option<i64> = None;
        for col in ["sch", "cr_to", "cr_at"] {
            if let Some(at) = get::<Option<i64>>(&row, col)? {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        Ok((revs, next))
    }

    /// The database's own clock, in milliseconds since the epoch (one clock for every instance).
    pub async fn db_now_ms(&self) -> Result<i64, StoreError> {
        let sql = match self.backend() {
            crate::Backend::Sqlite => {
                "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS BIGINT) AS ms"
            }
            crate::Backend::Postgres => {
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) AS ms"
            }
        };
        let row = sqlx::query(sql).fetch_one(self.reader()).await?;
        get(&row, "ms")
    }
}

/// More revisions behind than this, an instance reloads whole: reading every request named
/// would cost about as much.
const MOST_CHANGES_READ: i64 = 1_000;

/// The records of what revisions moved are kept this many revisions behind the current one.
const CHANGES_KEPT: i64 = 10_000;

/// The grants that moved since a revision, as the store holds them now (see
/// [`Store::access_changes_since`]).
#[derive(Debug)]
pub struct GrantChanges {
    /// The access revision the changes bring a snapshot to.
    pub rev: i64,
    /// Each request whose grant moved, once, as it stands at `rev`.
    pub requests: Vec<Arc<AccessRequest>>,
}

impl Store {
    /// What moved since access revision `since`, if it was only grants: the requests that
    /// moved, with the revision they bring the snapshot to, read by one statement (so in one
    /// consistent view, and in one round trip: another instance's syncs follow every change
    /// this one writes). `None` when something else moved too (policy, principals,
    /// tokens...), when the record of some revision is gone (pruned, or taken before
    /// migration 0019), or when there is too much to read: then the caller reloads whole
    /// ([`Store::access_state`]).
    pub async fn access_changes_since(
        &self,
        since: i64,
    ) -> Result<Option<GrantChanges>, StoreError> {
        // One row per revision after `since` (none when too many), each with the body of the
        // request it names; one row with no revision when there is none.
        let rows = sqlx::query(
            "SELECT s.access_rev, c.rev, c.request_id, r.body FROM sluice_state s \
             LEFT JOIN access_changes c \
               ON c.rev > $1 AND c.rev <= s.access_rev AND s.access_rev - $2 <= $3 \
             LEFT JOIN requests r ON r.id = c.request_id \
             WHERE s.id = 1 ORDER BY c.rev",
        )
        .bind(since)
        .bind(since)
        .bind(MOST_CHANGES_READ)
        .fetch_all(self.reader())
        .await?;
        let Some(first) = rows.first() else {
            return Err(StoreError::Corrupt("the state row is missing".into()));
        };
        let rev: i64 = get(first, "access_rev")?;
        let mut named = std::collections::HashSet::with_capacity(rows.len());
        let mut requests = Vec::with_capacity(rows.len());
        let mut records = 0;
        for row in &rows {
            if get::<Option<i64>>(row, "rev")?.is_none() {
                continue;
            }
            records += 1;
            let Some(id) = get::<Option<String>>(row, "request_id")? else {
                return Ok(None);
            };
            if !named.insert(id) {
                continue;
            }
            // INVARIANT: a request is never deleted, so each named one is read.
            if get::<Option<String>>(row, "body")?.is_none() {
                return Err(StoreError::Corrupt(
                    "a request named by an access change is missing".into(),
                ));
            }
            requests.push(Arc::new(crate::requests::request(row)?));
        }
        // Revisions are given out one after another: one record each, or some are missing
        // (or there were too many to read).
        if rev < since || records != rev - since {
            return Ok(None);
        }
        Ok(Some(GrantChanges { rev, requests }))
    }

    /// Forgets the records of what revisions moved more than [`CHANGES_KEPT`] behind the
    /// current one. Returns how many.
    pub async fn prune_access_changes(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM access_changes \
             WHERE rev <= (SELECT access_rev FROM sluice_state WHERE id = 1) - $1",
        )
        .bind(CHANGES_KEPT)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }
}

/// Everything the access snapshot is built from, as of one revision.
#[derive(Debug, Clone)]
pub struct AccessState {
    pub revs: StateRevs,
    /// The current policy: version and source.
    pub policy: Option<(i64, String)>,
    pub principals: Vec<PrincipalRow>,
    /// Principals signed in through the identity provider, with the identity provider's
    /// groups of their last sign-in or refresh.
    pub idp_members: Vec<(String, Vec<String>)>,
    /// Every request recorded as active.
    pub active: Vec<Arc<AccessRequest>>,
    /// How many tokens were ever revoked (a token is revoked once and never deleted, so any
    /// revocation moves it): with the policy, principals and identity-provider groups, what
    /// an authenticated token's standing depends on.
    pub revoked_tokens: i64,
}

/// PostgreSQL: the active requests as last read, each with the version of its row (`xmin`,
/// the transaction that wrote it: any change to the row gives it another). An instance
/// reloads its access snapshot after every other instance's change, and with thousands of
/// grants reading and parsing every body each time took most of its processor (see
/// BENCHMARKS.md, "Other instances' changes read incrementally"); so each read lists the
/// active rows' ids and versions, and fetches and parses only the bodies it does not hold.
#[derive(Debug, Default)]
pub(crate) struct ActiveCache(Mutex<HashMap<String, (String, Arc<AccessRequest>)>>);

/// Bodies fetched per statement at most.
const BODIES_PER_READ: usize = 500;

impl ActiveCache {
    /// The active requests as `tx` sees them (one repeatable-read view, so the list and the
    /// bodies agree).
    async fn read(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<Vec<Arc<AccessRequest>>, StoreError> {
        let listed =
            sqlx::query("SELECT id, xmin::text AS v FROM requests WHERE status = 'active'")
                .fetch_all(&mut **tx)
                .await?;
        // What is held at the listed version is kept (moved out of the cache, which a read
        // running meanwhile then finds empty: it fetches everything, as a first read does);
        // the rest is fetched.
        let mut held = std::mem::take(&mut *self.lock());
        let mut have = HashMap::with_capacity(listed.len());
        let mut wanted = Vec::new();
        for row in &listed {
            let (id, v): (String, String) = (get(row, "id")?, get(row, "v")?);
            match held.remove(&id) {
                Some(entry) if entry.0 == v => {
                    have.insert(id, entry);
                }
                _ => wanted.push(crate::literal(&id)),
            }
        }
        drop(held);
        for ids in wanted.chunks(BODIES_PER_READ) {
            let sql = format!(
                "SELECT id, xmin::text AS v, body FROM requests WHERE id IN ({})",
                ids.join(", ")
            );
            for r in sqlx::Executor::fetch_all(&mut **tx, sql.as_str()).await? {
                let request = Arc::new(crate::requests::request(&r)?);
                have.insert(get(&r, "id")?, (get(&r, "v")?, request));
            }
        }
        // INVARIANT: the view lists each, so the same view holds its body.
        if have.len() != listed.len() {
            return Err(StoreError::Corrupt(
                "active requests vanished within one read".into(),
            ));
        }
        let active = have.values().map(|(_, r)| r.clone()).collect();
        *self.lock() = have;
        Ok(active)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Arc<AccessRequest>)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store {
    /// [`AccessState`] read in one consistent view of the database (a read transaction;
    /// repeatable read on PostgreSQL), so the revisions are exactly those of the rows read:
    /// a write landing during the read is either wholly in it, with its revision, or not at all.
    pub async fn access_state(&self) -> Result<AccessState, StoreError> {
        let mut tx = self.reader().begin().await?;
        if self.backend() == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        // On SQLite the first read fixes the view the later ones see.
        let row = sqlx::query("SELECT access_rev, flags_rev FROM sluice_state WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let revs = StateRevs {
            access: get(&row, "access_rev")?,
            flags: get(&row, "flags_rev")?,
        };
        let policy =
            sqlx::query("SELECT version, source FROM policies ORDER BY version DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| Ok::<_, StoreError>((get(&r, "version")?, get(&r, "source")?)))
                .transpose()?;
        let principals =
            sqlx::query("SELECT name, kind, admin, source FROM principals ORDER BY name")
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(crate::principals::principal)
                .collect::<Result<_, _>>()?;
        let idp_members = sqlx::query(
            "SELECT name, idp_groups FROM principals WHERE idp_groups IS NOT NULL ORDER BY name",
        )
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(crate::principals::idp_member)
        .collect::<Result<_, _>>()?;
        let active = match self.backend() {
            Backend::Postgres => self.active_cache.read(&mut tx).await?,
            Backend::Sqlite => sqlx::query("SELECT body FROM requests WHERE status = 'active'")
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| crate::requests::request(r).map(Arc::new))
                .collect::<Result<_, _>>()?,
        };
        let revoked_tokens: i64 = get(
            &sqlx::query("SELECT COUNT(revoked_at) AS n FROM tokens")
                .fetch_one(&mut *tx)
                .await?,
            "n",
        )?;
        tx.rollback().await?;
        Ok(AccessState {
            revs,
            policy,
            principals,
            idp_members,
            active,
            revoked_tokens,
        })
    }
}
