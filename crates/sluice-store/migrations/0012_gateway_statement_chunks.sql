-- The session log in chunks: one row per run of a session's consecutive statements (one
-- JSON object per line of `body`: seq, at, kind, text, params), so a busy gateway writes one
-- row per session per batch instead of one per statement. `gateway_statements` keeps the
-- logs written before; both are read back in `seq` order.
CREATE TABLE gateway_statement_chunks (
    session_id  TEXT NOT NULL,
    first_seq   BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (session_id, first_seq)
);
