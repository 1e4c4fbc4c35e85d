-- Sluice's layers on a flag (expiring targets, staged rollout), as JSON, one row per flag.
CREATE TABLE flag_layers (
    environment TEXT NOT NULL,
    key         TEXT NOT NULL,
    body        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (environment, key)
);

-- Flag changes to apply later, exactly once, by the server.
CREATE TABLE scheduled_changes (
    id          TEXT PRIMARY KEY,
    environment TEXT NOT NULL,
    key         TEXT NOT NULL,
    change      TEXT NOT NULL,
    apply_at    BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    status      TEXT NOT NULL,
    result      TEXT
);
CREATE INDEX scheduled_changes_due ON scheduled_changes (status, apply_at);
