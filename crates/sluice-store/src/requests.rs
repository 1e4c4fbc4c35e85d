use crate::seen::SeenRequest;
use crate::tx::Arg;
use crate::{get, Store, StoreError, WriteTx};
use chrono::{DateTime, Utc};
use sluice_core::access::{AccessRequest, RequestStatus, Vote};
use sluice_core::clock::to_ms;
use sqlx::any::AnyRow;

/// The reaper's read (`$1` the moment, in ms; `$2` how many): the requests whose time-out
/// (pending) or expiry (active) is due. Its `CASE` is the expression of the index
/// `requests_due` (migration 0020) word for word, which both databases need to read through
/// it: only the due rows, rather than every live grant on every pass. The store's tests
/// check both databases' plans.
pub const LAPSED_REQUESTS_SQL: &str =
    "SELECT id FROM requests WHERE status IN ('pending', 'active') \
     AND (CASE WHEN status = 'pending' THEN pending_until ELSE expires_at END) <= $1 \
     ORDER BY id LIMIT $2";

/// Which requests to list.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub requester: Option<String>,
    pub status: Option<RequestStatus>,
    pub needs_review: Option<bool>,
    pub limit: Option<i64>,
    /// Only what this reader may see: its own requests and those for these entitlements
    /// (`None`: everything).
    pub visible_to: Option<Visibility>,
}

/// A reader who sees its own requests and those for some entitlements only.
#[derive(Debug, Clone, Default)]
pub struct Visibility {
    pub principal: String,
    pub entitlements: Vec<String>,
}

pub(crate) fn request(row: &AnyRow) -> Result<AccessRequest, StoreError> {
    let body: String = get(row, "body")?;
    Ok(serde_json::from_str(&body)?)
}

impl Store {
    /// A pending request as this handle last wrote it, if it remembers one (PostgreSQL with
    /// batched writes only; elsewhere a locked read costs little). Start a vote from it with
    /// [`WriteTx::vote_on_seen`].
    pub fn seen_request(&self, id: &str) -> Option<SeenRequest> {
        self.pg_batch.as_ref()?;
        self.seen.get(id)
    }

    pub async fn request(&self, id: &str) -> Result<Option<AccessRequest>, StoreError> {
        let row = sqlx::query("SELECT body FROM requests WHERE id = $1")
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(request).transpose()
    }

    pub async fn requests(&self, f: &RequestFilter) -> Result<Vec<AccessRequest>, StoreError> {
        // The visibility clause names one placeholder per entitlement the reader approves
        // (a policy holds a handful), so the page limit applies after it, in the database.
        let visible = match &f.visible_to {
            None => String::new(),
            Some(v) => {
                let mut clause = String::from(" AND (requester = $5");
                if !v.entitlements.is_empty() {
                    let marks: Vec<String> = (0..v.entitlements.len())
                        .map(|i| format!("${}", i + 6))
                        .collect();
                    clause.push_str(&format!(" OR entitlement IN ({})", marks.join(", ")));
                }
                clause.push(')');
                clause
            }
        };
        let sql = format!(
            "SELECT body FROM requests WHERE ($1 IS NULL OR requester = $1) AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR needs_review = $3){visible} ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let mut q = sqlx::query(&sql)
            .bind(f.requester.clone())
            .bind(f.status.map(|s| s.as_str().to_owned()))
            .bind(f.needs_review.map(i64::from))
            .bind(f.limit.unwrap_or(100).clamp(1, 1000));
        if let Some(v) = &f.visible_to {
            q = q.bind(v.principal.clone());
            for e in &v.entitlements {
                q = q.bind(e.clone());
            }
        }
        let rows = q.fetch_all(self.reader()).await?;
        rows.iter().map(request).collect()
    }

    /// Every request recorded as active (some may have expired without being recorded yet).
    pub async fn active_requests(&self) -> Result<Vec<AccessRequest>, StoreError> {
        let rows = sqlx::query("SELECT body FROM requests WHERE status = 'active'")
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(request).collect()
    }

    /// Ids of requests whose time-out or expiry is due at `now` but not yet recorded, the
    /// first `limit` by id. Reads only those ([`LAPSED_REQUESTS_SQL`]).
    pub async fn lapsed_request_ids(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(LAPSED_REQUESTS_SQL)
            .bind(to_ms(now))
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(|r| get(r, "id")).collect()
    }
}

/// What a committed write of `r`, stored as `body`, leaves for [`SeenRequests`].
fn seen_after(r: &AccessRequest, body: &str) -> (String, Option<SeenRequest>) {
    let still = (r.status == RequestStatus::Pending).then(|| SeenRequest::new(r.clone(), body));
    (r.id.clone(), still)
}

impl WriteTx {
    pub async fn insert_request(&mut self, r: &AccessRequest) -> Result<(), StoreError> {
        let body = serde_json::to_string(r)?;
        self.remember(|| seen_after(r, &body));
        self.exec(
            crate::prepared::INSERT_REQUEST.sql,
            vec![
                Arg::Text(r.id.clone()),
                Arg::Text(r.requester.clone()),
                Arg::Text(r.entitlement.clone()),
                Arg::Text(r.status.as_str().to_owned()),
                Arg::Int(i64::from(r.needs_review)),
                Arg::Int(to_ms(r.created_at)),
                Arg::Int(to_ms(r.pending_until)),
                Arg::OptInt(r.expires_at.map(to_ms)),
                Arg::Text(body),
            ],
        )
        .await
    }

    /// Ids of `requester`'s pending and active requests, as this transaction sees them.
    pub async fn open_request_ids_of(
        &mut self,
        requester: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM requests WHERE requester = $1 AND status IN ('pending', 'active') ORDER BY id",
        )
        .bind(requester)
        .fetch_all(self.conn().await?)
        .await?;
        rows.iter().map(|r| get(r, "id")).collect()
    }

    /// Reads a request for update (its row locked until commit, so the chain head's lock is
    /// not needed for it; see `WriteTx::fetch_locked`).
    pub async fn lock_request(&mut self, id: &str) -> Result<Option<AccessRequest>, StoreError> {
        let rows = self
            .fetch_locked(
                "UPDATE requests SET status = status WHERE id = $1 RETURNING body",
                vec![Arg::Text(id.to_owned())],
            )
            .await?;
        rows.first().map(request).transpose()
    }

    pub async fn update_request(&mut self, r: &AccessRequest) -> Result<(), StoreError> {
        let body = serde_json::to_string(r)?;
        self.remember(|| seen_after(r, &body));
        self.exec(
            crate::prepared::UPDATE_REQUEST.sql,
            vec![
                Arg::Text(r.status.as_str().to_owned()),
                Arg::Int(i64::from(r.needs_review)),
                Arg::OptInt(r.expires_at.map(to_ms)),
                Arg::Text(body),
                Arg::Text(r.id.clone()),
            ],
        )
        .await
    }

    /// Records `r`'s last vote and stores `r`, both on condition that the request is still
    /// stored as `seen` was: otherwise (it changed since this handle wrote it) this writer
    /// fails with [`StoreError::Stale`] at its commit, and nothing of it is kept. Reads
    /// nothing now: the check rides with the writes, and locks the request's row as a locked
    /// read would have.
    pub async fn vote_on_seen(
        &mut self,
        seen: &SeenRequest,
        r: &AccessRequest,
    ) -> Result<(), StoreError> {
        let Some(v) = r.votes.last() else {
            return Err(StoreError::Database("a vote to record needs a vote".into()));
        };
        // INVARIANT: the guard. The vote's `request_id` is the request's id only if the request
        // is stored as `seen` (its row then locked until the commit, as a locked read would
        // have; a change committed meanwhile by another instance is waited for and compared),
        // and NULL otherwise, which its NOT NULL refuses: the error `StoreError::Stale` is made
        // from (see `crate::error`).
        self.exec(
            crate::prepared::INSERT_VOTE_ON_SEEN.sql,
            vec![
                Arg::Text(r.id.clone()),
                Arg::Text(seen.stored().to_owned()),
                Arg::Text(v.approver.clone()),
                Arg::Int(i64::from(v.approve)),
                Arg::Int(to_ms(v.at)),
            ],
        )
        .await?;
        self.update_request(r).await
    }

    /// Records a vote; the key makes a second vote by the same approver fail (at the latest
    /// when the transaction commits).
    pub async fn insert_vote(&mut self, request_id: &str, v: &Vote) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO votes (request_id, approver, approve, at) VALUES ($1, $2, $3, $4)",
            vec![
                Arg::Text(request_id.to_owned()),
                Arg::Text(v.approver.clone()),
                Arg::Int(i64::from(v.approve)),
                Arg::Int(to_ms(v.at)),
            ],
        )
        .await
    }
}
