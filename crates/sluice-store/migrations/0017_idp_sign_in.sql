-- Sign-in through an OpenID Connect identity provider.
--
-- `idp_groups`: for a principal that signed in through the identity provider, the groups its
-- groups claim carried at the last sign-in or refresh, as a JSON array of strings (NULL for
-- everyone else). The policy's `idp_groups` maps them to Sluice groups when the access
-- snapshot is built, so a change of the mapping applies at once, without a new sign-in.
ALTER TABLE principals ADD COLUMN idp_groups TEXT;

-- The identity provider's refresh token behind a CLI session (`sluice login`): the Sluice
-- session token (kind `session`, in `tokens`) is short-lived, and refreshing it refreshes at
-- the identity provider first, which re-reads the groups. `token_id` is the session token's
-- current row; a refresh moves the row to the new token. The refresh token never leaves the
-- server.
CREATE TABLE idp_sessions (
    token_id       TEXT PRIMARY KEY,
    principal      TEXT NOT NULL REFERENCES principals(name),
    refresh_token  TEXT,
    created_at     BIGINT NOT NULL,
    refreshed_at   BIGINT NOT NULL
);
CREATE INDEX idp_sessions_principal ON idp_sessions (principal);
