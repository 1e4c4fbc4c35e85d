-- Gateway databases declared through the API (`PUT /v1/db/databases/{name}`); those of the
-- config file are not stored. `spec` is the declaration as JSON: upstream and roles, each
-- role's credential only named (an environment variable), never held.
CREATE TABLE gateway_databases (
    name         TEXT PRIMARY KEY,
    spec         TEXT NOT NULL,
    declared_at  BIGINT NOT NULL,
    declared_by  TEXT NOT NULL
);
