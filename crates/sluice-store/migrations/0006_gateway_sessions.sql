-- PostgreSQL gateway sessions: one row per admitted session, written in the transaction of
-- its `gateway.session.started` audit entry and completed with `gateway.session.ended`.
CREATE TABLE gateway_sessions (
    id            TEXT PRIMARY KEY,
    principal     TEXT NOT NULL,
    database_name TEXT NOT NULL,
    action        TEXT NOT NULL,
    role          TEXT NOT NULL,
    grant_id      TEXT NOT NULL,
    client_addr   TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    ended_at      BIGINT,
    end_reason    TEXT,
    bytes_in      BIGINT,
    bytes_out     BIGINT,
    statements    BIGINT,
    log_hash      TEXT
);
CREATE INDEX gateway_sessions_by_start ON gateway_sessions (started_at);

-- The session log: each statement a session sent (simple Query; Parse, Bind, Execute),
-- truncated at the database's configured size. Its running hash is in the session-end entry.
CREATE TABLE gateway_statements (
    session_id  TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    text        TEXT NOT NULL,
    params      TEXT,
    PRIMARY KEY (session_id, seq)
);
