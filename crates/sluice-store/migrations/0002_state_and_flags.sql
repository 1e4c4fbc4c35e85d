-- Change counters: every write that changes what decisions or evaluations read bumps one of
-- these in its own transaction, so each instance can tell cheaply that it must reload.
CREATE TABLE sluice_state (
    id          BIGINT PRIMARY KEY,
    access_rev  BIGINT NOT NULL,
    flags_rev   BIGINT NOT NULL
);
INSERT INTO sluice_state (id, access_rev, flags_rev) VALUES (1, 0, 0);

-- Flag sets, one per environment: the set-level parts of a flagd document.
CREATE TABLE flag_environments (
    name        TEXT PRIMARY KEY,
    revision    BIGINT NOT NULL,
    document    TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL
);

-- One row per flag, with its own revision for optimistic concurrency.
CREATE TABLE flags (
    environment TEXT NOT NULL REFERENCES flag_environments(name),
    key         TEXT NOT NULL,
    position    BIGINT NOT NULL,
    revision    BIGINT NOT NULL,
    definition  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (environment, key)
);
