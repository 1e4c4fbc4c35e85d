/// Why the store could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://…")]
    BadUrl(String),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A lock held elsewhere, or a statement, outlasted its timeout (PostgreSQL
    /// `lock_timeout`/`statement_timeout`, SQLite `busy_timeout`): worth retrying.
    #[error("the database is busy: {0}")]
    Busy(String),
    /// The disk (or the database) is full: nothing can be written until space returns.
    #[error("the database is full: {0}")]
    Full(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("a stored row is not valid: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migration(String),
    /// The write collides with what is there: the message says what, whole.
    #[error("{0}")]
    Conflict(String),
    /// What the write started from has changed since (see
    /// [`crate::WriteTx::vote_on_seen`]): start again from a fresh read.
    #[error("the request changed while this write was made; try again ({0})")]
    Stale(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(format!(
                "that already exists; another request may have written it first, try again ({})",
                d.message()
            )),
            // The guard of a vote started from what this handle remembered (see
            // `WriteTx::vote_on_seen`): nothing else inserts a vote without its request.
            sqlx::Error::Database(d)
                if d.code().as_deref() == Some("23502") && d.table() == Some("votes") =>
            {
                StoreError::Stale(d.message().to_owned())
            }
            sqlx::Error::Database(d) => match outage(d.code().as_deref().unwrap_or("")) {
                Some(Outage::Unavailable) => StoreError::Unavailable(e.to_string()),
                Some(Outage::Busy) => StoreError::Busy(e.to_string()),
                Some(Outage::Full) => StoreError::Full(e.to_string()),
                None => StoreError::Database(e.to_string()),
            },
            _ => StoreError::Database(e.to_string()),
        }
    }
}

enum Outage {
    Unavailable,
    Busy,
    Full,
}

/// Database error codes that mean "not now" rather than "not this": the server answers them
/// 503. PostgreSQL's are SQLSTATEs (always five characters, often all digits), SQLite's result
/// codes (numbers of at most four digits, extended codes carrying the primary one in their
/// low byte).
fn outage(code: &str) -> Option<Outage> {
    if let Some(n) = code.parse::<u32>().ok().filter(|_| code.len() < 5) {
        return match n & 0xff {
            // SQLITE_FULL
            13 => Some(Outage::Full),
            // SQLITE_BUSY, SQLITE_LOCKED
            5 | 6 => Some(Outage::Busy),
            // SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN
            8 | 10 | 14 => Some(Outage::Unavailable),
            _ => None,
        };
    }
    match code {
        // disk_full, out_of_memory
        "53100" | "53200" => Some(Outage::Full),
        // lock_not_available (lock_timeout), query_canceled (statement_timeout), and
        // deadlock_detected: two instances' batches may each wait for a row the other locked
        // (their batches are no longer serialised from open to commit), and PostgreSQL ends
        // that by failing one side's statement; try again.
        "55P03" | "57014" | "40P01" => Some(Outage::Busy),
        // too_many_connections, object_not_in_prerequisite_state (a database that does not
        // accept connections), read_only_sql_transaction (a standby), and the shutdowns:
        // admin (a terminated backend), crash, cannot_connect_now, database_dropped
        "53300" | "55000" | "25006" | "57P01" | "57P02" | "57P03" | "57P04" => {
            Some(Outage::Unavailable)
        }
        // connection_exception and its kinds
        c if c.starts_with("08") => Some(Outage::Unavailable),
        _ => None,
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migration(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::{outage, Outage};

    fn kind(code: &str) -> &'static str {
        match outage(code) {
            Some(Outage::Unavailable) => "unavailable",
            Some(Outage::Busy) => "busy",
            Some(Outage::Full) => "full",
            None => "fault",
        }
    }

    #[test]
    fn sqlstates_all_digits_are_not_read_as_sqlite_codes() {
        // 55000 & 0xff would be 216, 53100 & 0xff 108: five characters are a SQLSTATE.
        assert_eq!(kind("55000"), "unavailable");
        assert_eq!(kind("53300"), "unavailable");
        assert_eq!(kind("53100"), "full");
        assert_eq!(kind("57014"), "busy");
        assert_eq!(kind("57P01"), "unavailable");
        assert_eq!(kind("08006"), "unavailable");
        assert_eq!(kind("55P03"), "busy");
        assert_eq!(kind("40P01"), "busy");
        assert_eq!(kind("23505"), "fault");
        assert_eq!(kind("42P01"), "fault");
    }

    #[test]
    fn sqlite_result_codes_by_their_primary_code() {
        assert_eq!(kind("13"), "full");
        assert_eq!(kind("5"), "busy");
        assert_eq!(kind("517"), "busy"); // SQLITE_BUSY_SNAPSHOT
        assert_eq!(kind("6"), "busy");
        assert_eq!(kind("778"), "unavailable"); // SQLITE_IOERR_WRITE
        assert_eq!(kind("2067"), "fault"); // SQLITE_CONSTRAINT_UNIQUE
        assert_eq!(kind("1"), "fault");
    }
}
