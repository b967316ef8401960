-- Webhooks: a user's endpoints, and a durable outbox of the notifications owed to them.
--
-- The outbox rows are written by a trigger on tasks, so every change of a task to a terminal
-- status (worker complete/fail/cancel, the API's cancel of a queued task, the reaper's
-- worker_crashed failure, and any path added later) writes them in its own transaction: the
-- notification exists exactly when the state change committed, and no code path can forget it.

CREATE TABLE webhooks (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url         text NOT NULL CHECK (char_length(url) BETWEEN 1 AND 2048),
    events      text[] NOT NULL CHECK (
                    cardinality(events) > 0
                    AND events <@ ARRAY['task.completed', 'task.failed', 'task.cancelled']),
    -- The Standard Webhooks signing secret ("whsec_" + base64 of 32 random bytes). Stored as is:
    -- signing needs the secret itself, so it cannot be hashed like an API key (docs/architecture.md).
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_user_idx ON webhooks (user_id, created_at);

-- One row per (webhook, event): the message, its state and its schedule. Its id is the message's
-- webhook-id header, the same on every attempt, so a receiver can drop repeats.
CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    webhook_id       uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    -- No foreign key: the event happened even if the task is deleted before it is delivered.
    task_id          uuid NOT NULL,
    event            text NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    -- Set while a dispatcher holds the row (next_attempt_at is then its lease's end); an outcome
    -- is recorded only by the claim that is still current.
    claim_token      uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
-- The dispatcher's scan: due pending rows, oldest due first.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- The delivery log: a webhook's deliveries, newest first.
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (webhook_id, created_at DESC, id DESC);

-- The delivery log: every attempt, in order.
CREATE TABLE webhook_attempts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id      uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt          integer NOT NULL,
    attempted_at     timestamptz NOT NULL,
    duration_ms      integer NOT NULL,
    status_code      integer,
    error            text,
    -- When the next attempt is due (NULL: delivered, or given up).
    next_attempt_at  timestamptz
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

-- SECURITY DEFINER: the outbox is the API's table; a process that may only update tasks (a
-- worker under a narrower database role) still writes the notifications its update owes.
CREATE FUNCTION enqueue_task_webhooks() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, task_id, event, payload, next_attempt_at)
    SELECT w.id, NEW.id, 'task.' || NEW.status,
           jsonb_build_object(
               'type', 'task.' || NEW.status,
               'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
               'data', jsonb_build_object(
                   'taskId', NEW.id,
                   'status', NEW.status,
                   'tag', NEW.tag,
                   'formats', CASE WHEN NEW.status = 'completed' THEN NEW.result -> 'formats' END,
                   'error', CASE WHEN NEW.error_code IS NOT NULL
                                 THEN jsonb_build_object('code', NEW.error_code, 'message', NEW.error_message) END,
                   'completedAt', to_char(NEW.completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))),
           now()
      FROM webhooks w
     WHERE w.user_id = NEW.user_id AND 'task.' || NEW.status = ANY (w.events);
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_webhooks AFTER UPDATE OF status ON tasks FOR EACH ROW
    WHEN (NEW.status IN ('completed', 'failed', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION enqueue_task_webhooks();
