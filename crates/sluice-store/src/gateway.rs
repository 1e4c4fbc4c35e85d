//! Gateway sessions and their statement logs.

use crate::declared::Kind;
use crate::tx::Arg;
use crate::{get, Store, StoreError, WriteTx};
use chrono::{DateTime, Utc};
use sluice_core::clock::{from_ms, to_ms};
use sqlx::any::AnyRow;

/// One gateway session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySession {
    pub id: String,
    pub principal: String,
    pub database: String,
    pub action: String,
    pub role: String,
    pub grant_id: String,
    pub client_addr: String,
    pub started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub end: Option<SessionEnd>,
    /// The gateway instance holding it (see `gateway_instances`).
    pub instance: Option<String>,
}

/// How a session ended: the figures of its session-end audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    pub at: DateTime<Utc>,
    pub reason: String,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub statements: i64,
    pub log_hash: String,
}

/// One statement of a session log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedStatement {
    pub session_id: String,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub text: String,
    /// JSON array of the parameters (text, or null), for `bind`.
    pub params: Option<String>,
}

const SESSION_COLS: &str = "id, principal, database_name, action, role, grant_id, client_addr, \
     started_at, expires_at, ended_at, end_reason, bytes_in, bytes_out, statements, log_hash, instance";

fn session(r: &AnyRow) -> Result<GatewaySession, StoreError> {
    let ended_at: Option<i64> = get(r, "ended_at")?;
    let end = match ended_at {
        Some(at) => Some(SessionEnd {
            at: from_ms(at),
            reason: get::<Option<String>>(r, "end_reason")?.unwrap_or_default(),
            bytes_in: get::<Option<i64>>(r, "bytes_in")?.unwrap_or_default(),
            bytes_out: get::<Option<i64>>(r, "bytes_out")?.unwrap_or_default(),
            statements: get::<Option<i64>>(r, "statements")?.unwrap_or_default(),
            log_hash: get::<Option<String>>(r, "log_hash")?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(GatewaySession {
        id: get(r, "id")?,
        principal: get(r, "principal")?,
        database: get(r, "database_name")?,
        action: get(r, "action")?,
        role: get(r, "role")?,
        grant_id: get(r, "grant_id")?,
        client_addr: get(r, "client_addr")?,
        started_at: from_ms(get(r, "started_at")?),
        expires_at: from_ms(get(r, "expires_at")?),
        end,
        instance: get(r, "instance")?,
    })
}

impl WriteTx {
    /// Records an admitted session (with its `gateway.session.started` entry).
    pub async fn insert_gateway_session(&mut self, s: &GatewaySession) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO gateway_sessions (id, principal, database_name, action, role, grant_id, \
             client_addr, started_at, expires_at, instance) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            vec![
                Arg::Text(s.id.clone()),
                Arg::Text(s.principal.clone()),
                Arg::Text(s.database.clone()),
                Arg::Text(s.action.clone()),
                Arg::Text(s.role.clone()),
                Arg::Text(s.grant_id.clone()),
                Arg::Text(s.client_addr.clone()),
                Arg::Int(to_ms(s.started_at)),
                Arg::Int(to_ms(s.expires_at)),
                Arg::OptText(s.instance.clone()),
            ],
        )
        .await
    }

    /// Asks the instance holding a live session to end it; false if it is not live (ended,
    /// or unknown).
    pub async fn request_session_kill(&mut self, id: &str, by: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE gateway_sessions SET kill_requested_by = $1 WHERE id = $2 AND ended_at IS NULL",
        )
        .bind(by)
        .bind(id)
        .execute(self.conn().await?)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Ends a session no instance holds any more; false if it had ended already (another
    /// instance got there first).
    pub async fn end_orphaned_session(
        &mut self,
        id: &str,
        e: &SessionEnd,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE gateway_sessions SET ended_at = $1, end_reason = $2, bytes_in = $3, \
             bytes_out = $4, statements = $5, log_hash = $6 WHERE id = $7 AND ended_at IS NULL",
        )
        .bind(to_ms(e.at))
        .bind(&e.reason)
        .bind(e.bytes_in)
        .bind(e.bytes_out)
        .bind(e.statements)
        .bind(&e.log_hash)
        .bind(id)
        .execute(self.conn().await?)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records how a session ended (with its `gateway.session.ended` entry).
    pub async fn end_gateway_session(
        &mut self,
        id: &str,
        e: &SessionEnd,
    ) -> Result<(), StoreError> {
        self.exec(
            "UPDATE gateway_sessions SET ended_at = $1, end_reason = $2, bytes_in = $3, \
             bytes_out = $4, statements = $5, log_hash = $6 WHERE id = $7 AND ended_at IS NULL",
            vec![
                Arg::Int(to_ms(e.at)),
                Arg::Text(e.reason.clone()),
                Arg::Int(e.bytes_in),
                Arg::Int(e.bytes_out),
                Arg::Int(e.statements),
                Arg::Text(e.log_hash.clone()),
                Arg::Text(id.to_owned()),
            ],
        )
        .await
    }
}

impl Store {
    /// Says that gateway instance `id` is alive at `now`.
    pub async fn gateway_heartbeat(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = self.writer().begin().await?;
        sqlx::query(
            "INSERT INTO gateway_instances (id, seen_at) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(id)
        .bind(to_ms(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM gateway_instances WHERE seen_at < $1")
            .bind(to_ms(now) - 86_400_000)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sessions not ended whose instance has not said it is alive since `stale_before`.
    pub async fn orphaned_sessions(
        &self,
        stale_before: DateTime<Utc>,
    ) -> Result<Vec<GatewaySession>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLS} FROM gateway_sessions s WHERE ended_at IS NULL AND NOT EXISTS \
             (SELECT 1 FROM gateway_instances i WHERE i.id = s.instance AND i.seen_at >= $1)"
        );
        let rows = sqlx::query(&sql)
            .bind(to_ms(stale_before))
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(session).collect()
    }

    /// Live sessions someone asked to end: (session id, who asked).
    pub async fn session_kill_requests(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kill_requested_by FROM gateway_sessions \
             WHERE ended_at IS NULL AND kill_requested_by IS NOT NULL",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| Ok((get(r, "id")?, get(r, "kill_requested_by")?)))
            .collect()
    }

    /// Appends statement chunks to session logs (not audited by themselves: the running hash
    /// of each log goes into the session-end audit entry). One row per chunk: a busy session's
    /// 200 ms of statements cost one insert, not one each.
    pub async fn insert_statement_chunks(
        &self,
        chunks: &[StatementChunk],
    ) -> Result<(), StoreError> {
        if chunks.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer().begin().await?;
        for c in chunks.iter().filter(|c| !c.is_empty()) {
            let body = std::str::from_utf8(&c.body)
                .map_err(|e| StoreError::Corrupt(format!("a session log chunk: {e}")))?;
            sqlx::query(
                "INSERT INTO gateway_statement_chunks (session_id, first_seq, last_seq, body) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&c.session_id)
            .bind(c.first_seq)
            .bind(c.last_seq)
            .bind(body)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sessions, newest first; only those not ended when `open_only`.
    pub async fn gateway_sessions(
        &self,
        open_only: bool,
        limit: i64,
    ) -> Result<Vec<GatewaySession>, StoreError> {
        let filter = if open_only {
            "WHERE ended_at IS NULL"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {SESSION_COLS} FROM gateway_sessions {filter} ORDER BY started_at DESC, id LIMIT $1"
        );
        let rows = sqlx::query(&sql)
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(session).collect()
    }

    pub async fn gateway_session(&self, id: &str) -> Result<Option<GatewaySession>, StoreError> {
        let sql = format!("SELECT {SESSION_COLS} FROM gateway_sessions WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(session).transpose()
    }

    /// Ended sessions, for verification.
    pub async fn ended_gateway_sessions(&self) -> Result<Vec<GatewaySession>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLS} FROM gateway_sessions WHERE ended_at IS NOT NULL ORDER BY started_at"
        );
        let rows = sqlx::query(&sql).fetch_all(self.reader()).await?;
        rows.iter().map(session).collect()
    }

    /// A session's log in order.
    pub async fn gateway_statements(
        &self,
        session_id: &str,
    ) -> Result<Vec<LoggedStatement>, StoreError> {
        self.gateway_statements_page(session_id, 0, i64::MAX).await
    }

    /// One page of a session's log: up to `limit` statements with `seq > after`, in order.
    /// Memory holds the page and one chunk at most.
    pub async fn gateway_statements_page(
        &self,
        session_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LoggedStatement>, StoreError> {
        let want = usize::try_from(limit).unwrap_or(0);
        // Logs written one row per statement (before chunks) first: their `seq`s come first.
        let rows = sqlx::query(
            "SELECT session_id, seq, at, kind, text, params FROM gateway_statements \
             WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(session_id)
        .bind(after)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        let mut out = rows.iter().map(statement).collect::<Result<Vec<_>, _>>()?;
        let mut cursor = out.last().map_or(after, |s| s.seq);
        while out.len() < want {
            let Some(chunk) = sqlx::query(
                "SELECT last_seq, body FROM gateway_statement_chunks \
                 WHERE session_id = $1 AND last_seq > $2 ORDER BY first_seq LIMIT 1",
            )
            .bind(session_id)
            .bind(cursor)
            .fetch_optional(self.reader())
            .await?
            else {
                break;
            };
            let body: String = get(&chunk, "body")?;
            for line in body.lines() {
                let l: ChunkLine<'_> = serde_json::from_str(line).map_err(|e| {
                    StoreError::Corrupt(format!(
                        "a statement of the log of gateway session {session_id} cannot be read: {e}"
                    ))
                })?;
                if l.seq > cursor && out.len() < want {
                    out.push(LoggedStatement {
                        session_id: session_id.to_owned(),
                        seq: l.seq,
                        at: from_ms(l.at),
                        kind: l.kind.into_owned(),
                        text: l.text.into_owned(),
                        params: l.params.map(std::borrow::Cow::into_owned),
                    });
                }
            }
            let last: i64 = get(&chunk, "last_seq")?;
            // A chunk's lines are in `seq` order; `last_seq` moves the cursor on even if an
            // edited body no longer says so.
            cursor = out.last().map_or(last, |s| s.seq.max(last));
        }
        Ok(out)
    }
}

fn statement(r: &sqlx::any::AnyRow) -> Result<LoggedStatement, StoreError> {
    Ok(LoggedStatement {
        session_id: get(r, "session_id")?,
        seq: get(r, "seq")?,
        at: from_ms(get(r, "at")?),
        kind: get(r, "kind")?,
        text: get(r, "text")?,
        params: get(r, "params")?,
    })
}

/// Statements of one session, consecutive in `seq`, stored as one row: one JSON object per
/// line (`seq`, `at` in Unix milliseconds, `kind`, `text`, `params`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementChunk {
    pub session_id: String,
    pub first_seq: i64,
    pub last_seq: i64,
    /// JSON lines (UTF-8 by construction).
    body: Vec<u8>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ChunkLine<'a> {
    seq: i64,
    at: i64,
    #[serde(borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    text: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    params: Option<std::borrow::Cow<'a, str>>,
}

impl StatementChunk {
    pub fn new(session_id: &str) -> Self {
        StatementChunk {
            session_id: session_id.to_owned(),
            first_seq: 0,
            last_seq: 0,
            body: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// Appends the next statement of the session.
    pub fn push(
        &mut self,
        seq: i64,
        at: DateTime<Utc>,
        kind: &str,
        text: &str,
        params: Option<&str>,
    ) -> Result<(), StoreError> {
        if self.body.is_empty() {
            self.first_seq = seq;
        } else {
            self.body.push(b'\n');
        }
        self.last_seq = seq;
        let line = ChunkLine {
            seq,
            at: to_ms(at),
            kind: kind.into(),
            text: text.into(),
            params: params.map(Into::into),
        };
        serde_json::to_writer(&mut self.body, &line)
            .map_err(|e| StoreError::Corrupt(format!("a session log statement: {e}")))
    }
}

/// A gateway database declared through the API (stored as a [`crate::declared`] declaration).
pub type DeclaredDatabase = crate::declared::Declared;

impl WriteTx {
    /// Declares (or re-declares) a gateway database; returns whether it existed before.
    pub async fn put_gateway_database(&mut self, d: &DeclaredDatabase) -> Result<bool, StoreError> {
        self.put_declared(Kind::GatewayDatabases, d).await
    }

    /// Removes a declared gateway database; false if there was none of that name.
    pub async fn delete_gateway_database(&mut self, name: &str) -> Result<bool, StoreError> {
        self.delete_declared(Kind::GatewayDatabases, name).await
    }
}

impl Store {
    /// The gateway database declared through the API under this name, if any.
    pub async fn gateway_database(
        &self,
        name: &str,
    ) -> Result<Option<DeclaredDatabase>, StoreError> {
        self.declared_one(Kind::GatewayDatabases, name).await
    }

    /// Every gateway database declared through the API, by name.
    pub async fn gateway_databases(&self) -> Result<Vec<DeclaredDatabase>, StoreError> {
        self.declared_all(Kind::GatewayDatabases).await
    }
}
