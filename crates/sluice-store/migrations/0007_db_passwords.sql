-- Short-lived connection passwords of the PostgreSQL gateway (`sluice db connect`) are tokens
-- of kind `db`, bound to one gateway database. NULL for every other kind.
ALTER TABLE tokens ADD COLUMN database TEXT;
