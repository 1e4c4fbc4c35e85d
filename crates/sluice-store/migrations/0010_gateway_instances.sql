-- Which gateway instance holds a session, and when each instance last said it was alive: a
-- session whose instance stopped (a crash) is ended by another, or by the next start.
ALTER TABLE gateway_sessions ADD COLUMN instance TEXT;
CREATE TABLE gateway_instances (
    id       TEXT PRIMARY KEY,
    seen_at  BIGINT NOT NULL
);
