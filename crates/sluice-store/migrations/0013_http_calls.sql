-- The HTTP gateway's call log: one row per record of a call (`admitted`, `ended`, `refused`),
-- written in batches; each batch is sealed in the same transaction by one chained audit
-- entry (`http.calls.recorded`, whose `seq` is the rows' `batch_seq`) holding the batch's
-- hash. `details` is JSON text, hashed as stored.
CREATE TABLE http_calls (
    batch_seq  BIGINT NOT NULL,
    pos        BIGINT NOT NULL,
    call_id    TEXT NOT NULL,
    event      TEXT NOT NULL,
    at         BIGINT NOT NULL,
    principal  TEXT NOT NULL,
    resource   TEXT NOT NULL,
    details    TEXT NOT NULL,
    PRIMARY KEY (batch_seq, pos)
);
CREATE INDEX http_calls_by_resource ON http_calls (resource, batch_seq);
