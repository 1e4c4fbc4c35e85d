-- A client key's static evaluation context (JSON object text), merged into every evaluation
-- made with the key. NULL: none.
ALTER TABLE tokens ADD COLUMN context TEXT;
