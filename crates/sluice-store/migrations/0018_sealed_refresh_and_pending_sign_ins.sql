-- The identity provider's refresh tokens are sealed at rest (XChaCha20-Poly1305 under a key
-- derived from the audit signing key, which is not in the database): the column holds
-- `v1.<base64url(nonce ‖ ciphertext)>`, never a token in the clear. Tokens stored in the clear
-- before are forgotten here: those sessions cannot refresh and end at their next refresh
-- (audited as `principal.refresh_failed`); the person signs in again.
ALTER TABLE idp_sessions RENAME COLUMN refresh_token TO sealed_refresh_token;
UPDATE idp_sessions SET sealed_refresh_token = NULL;

-- Console sign-ins in progress, between the redirect to the identity provider and its answer,
-- kept in the store so the answer may land on any instance. `state_hash` is SHA-256 (hex) of
-- the `state` sent along; `browser` SHA-256 (hex) of the cookie binding the sign-in to the
-- browser that started it; `sealed` the PKCE verifier and the nonce, sealed like the refresh
-- tokens above. A row is taken (deleted) by the one callback that uses it, so a replayed
-- answer finds nothing; rows past `expires_at` are refused and swept.
CREATE TABLE pending_sign_ins (
    state_hash  TEXT PRIMARY KEY,
    browser     TEXT NOT NULL,
    sealed      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX pending_sign_ins_expires ON pending_sign_ins (expires_at);
