-- HTTP gateway services declared through the API (`PUT /v1/http/services/{name}`); those of
-- the config file are not stored. `spec` is the declaration as JSON: upstream, timeouts, body
-- limit, audit mode, and the upstream credential only named (a header and an environment
-- variable or a file name), never held.
CREATE TABLE http_services (
    name         TEXT PRIMARY KEY,
    spec         TEXT NOT NULL,
    declared_at  BIGINT NOT NULL,
    declared_by  TEXT NOT NULL
);
