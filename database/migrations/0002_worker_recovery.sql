-- Crash accounting for poison jobs (counted across restarts) and the cancel request flag the
-- worker checks at every page boundary.
ALTER TABLE tasks ADD COLUMN crash_count integer NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN cancel_requested_at timestamptz;
