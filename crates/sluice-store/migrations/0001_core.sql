-- One dialect for SQLite and PostgreSQL: times are BIGINT milliseconds since the Unix epoch,
-- flags are BIGINT 0/1, structured values are JSON text.

CREATE TABLE principals (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    admin       BIGINT NOT NULL DEFAULT 0,
    source      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    principal   TEXT NOT NULL REFERENCES principals(name),
    kind        TEXT NOT NULL,
    environment TEXT,
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);

CREATE TABLE policies (
    version     BIGINT PRIMARY KEY,
    hash        TEXT NOT NULL,
    source      TEXT NOT NULL,
    applied_at  BIGINT NOT NULL,
    applied_by  TEXT NOT NULL
);

CREATE TABLE requests (
    id            TEXT PRIMARY KEY,
    requester     TEXT NOT NULL,
    entitlement   TEXT NOT NULL,
    status        TEXT NOT NULL,
    needs_review  BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    pending_until BIGINT NOT NULL,
    expires_at    BIGINT,
    body          TEXT NOT NULL
);
CREATE INDEX requests_by_status ON requests (status);
CREATE INDEX requests_by_requester ON requests (requester, created_at);

-- Each approver counts once, enforced by the key as well as by the domain.
CREATE TABLE votes (
    request_id  TEXT NOT NULL REFERENCES requests(id),
    approver    TEXT NOT NULL,
    approve     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (request_id, approver)
);

CREATE TABLE audit_entries (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    resource    TEXT,
    subject_id  TEXT,
    details     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_by_at ON audit_entries (at);

-- The chain head: every audited write locks this row first, so appends are serialised in the
-- database whatever instance writes.
CREATE TABLE audit_head (
    id    BIGINT PRIMARY KEY,
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_checkpoints (
    seq        BIGINT PRIMARY KEY,
    hash       TEXT NOT NULL,
    at         BIGINT NOT NULL,
    key_id     TEXT NOT NULL,
    signature  TEXT NOT NULL
);
