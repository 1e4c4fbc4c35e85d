-- Flag insight: how often each flag answered which variant for which reason, per UTC day, and
-- when each client key last evaluated. Counted in memory by every instance and added here in
-- batches (one transaction per flush), so several instances sum. Telemetry, not changes:
-- these rows are not audited, and nothing an evaluation answers depends on them.
CREATE TABLE flag_evaluations (
    environment TEXT NOT NULL,
    flag_key    TEXT NOT NULL,
    -- '' when the answer named no variant (disabled, an error, no default).
    variant     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    -- Days since 1970-01-01 (UTC).
    day         BIGINT NOT NULL,
    count       BIGINT NOT NULL,
    -- Milliseconds since the epoch.
    last_at     BIGINT NOT NULL,
    PRIMARY KEY (environment, flag_key, variant, reason, day)
);
CREATE TABLE client_evaluations (
    token_id    TEXT PRIMARY KEY,
    environment TEXT NOT NULL,
    count       BIGINT NOT NULL,
    last_at     BIGINT NOT NULL
);
