-- Change requests: a proposed flag change that applies when the environment's approval rule
-- is met. `body` is the whole request as JSON; the other columns are for lookups.
CREATE TABLE change_requests (
    id            TEXT PRIMARY KEY,
    environment   TEXT NOT NULL,
    key           TEXT NOT NULL,
    proposer      TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    pending_until BIGINT NOT NULL,
    apply_at      BIGINT,
    body          TEXT NOT NULL
);
CREATE INDEX change_requests_by_status ON change_requests (status, pending_until);
CREATE INDEX change_requests_by_environment ON change_requests (environment, created_at);

-- Each approver counts once, enforced by the key as well as by the operation.
CREATE TABLE change_request_votes (
    request_id  TEXT NOT NULL REFERENCES change_requests(id),
    approver    TEXT NOT NULL,
    approve     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (request_id, approver)
);
