-- An administrator asked, on any instance, to end a live gateway session: the instance that
-- holds it ends it at its next sync (the request also bumps the access revision).
ALTER TABLE gateway_sessions ADD COLUMN kill_requested_by TEXT;
