-- Operators see global queue figures; idempotency keys make a retried upload return the
-- original task (kept 24 h, enforced by the query, swept by the API).
ALTER TABLE users ADD COLUMN is_operator boolean NOT NULL DEFAULT false;

CREATE TABLE idempotency_keys (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key         text NOT NULL,
    task_id     uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
