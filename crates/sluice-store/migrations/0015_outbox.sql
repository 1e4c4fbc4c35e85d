-- Notifications waiting to be delivered (the transactional outbox). A row is inserted in the
-- same transaction as the audit entry it reports (`audit_seq`), or alone for a reminder or a
-- verification failure (`audit_seq` NULL, `id` derived from what it reminds of, so it is
-- inserted once). `id` is the webhook id every attempt carries, so receivers de-duplicate.
-- `state`: `pending` (due at `next_at`), `delivered`, `dead` (gave up after the attempt
-- limit). A dispatcher claims due rows by setting `leased_until`/`lease_owner`; a lease that
-- lapses (its instance died) lets another claim the row again.
CREATE TABLE outbox (
    id            TEXT PRIMARY KEY,
    sink          TEXT NOT NULL,
    event         TEXT NOT NULL,
    audit_seq     BIGINT,
    created_at    BIGINT NOT NULL,
    payload       TEXT NOT NULL,
    state         TEXT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    next_at       BIGINT NOT NULL,
    leased_until  BIGINT,
    lease_owner   TEXT,
    last_error    TEXT,
    delivered_at  BIGINT
);
CREATE INDEX outbox_due ON outbox (state, next_at);

-- Every delivery attempt: when, how long, and what came back (`http_status` NULL when no answer).
CREATE TABLE outbox_attempts (
    outbox_id    TEXT NOT NULL,
    n            BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    instance     TEXT NOT NULL,
    http_status  BIGINT,
    error        TEXT,
    duration_ms  BIGINT NOT NULL,
    PRIMARY KEY (outbox_id, n)
);
