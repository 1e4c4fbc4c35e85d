-- Which canonical encoding each audit entry's hash is over: 1 for every entry written before
-- this column existed (keys sorted by UTF-8 bytes), 2 for RFC 8785 (JCS). See
-- docs/audit-format.md.
ALTER TABLE audit_entries ADD COLUMN format BIGINT NOT NULL DEFAULT 1;
