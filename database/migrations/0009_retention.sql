-- The retention sweep (backend/retention.py) looks for finished tasks by upload time, oldest first.
CREATE INDEX tasks_finished_created_idx ON tasks (created_at) WHERE status IN ('completed', 'failed', 'cancelled');
