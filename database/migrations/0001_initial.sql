-- users, their API keys, uploaded files and OCR tasks.
CREATE TABLE users (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- Keys are random 256-bit tokens, so an unsalted SHA-256 is enough to make a leaked table useless
-- (the same reasoning as GitHub's token storage); the prefix lets an operator recognise a key.
CREATE TABLE api_keys (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_hash    text NOT NULL UNIQUE,
    key_prefix  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id);

CREATE TABLE files (
    id                 uuid PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    original_filename  text NOT NULL,
    safe_filename      text NOT NULL,
    mime_type          text NOT NULL,
    size_bytes         bigint NOT NULL CHECK (size_bytes > 0),
    sha256             char(64) NOT NULL,
    s3_key             text NOT NULL UNIQUE,
    s3_result_key      text UNIQUE,
    status             text NOT NULL DEFAULT 'uploaded'
                       CHECK (status IN ('uploaded', 'processing', 'processed', 'failed')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX files_user_created_idx ON files (user_id, created_at DESC);

CREATE TABLE tasks (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    file_id        uuid NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    priority       smallint NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
    language       text NOT NULL,
    status         text NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'processing', 'completed', 'failed', 'cancelled')),
    progress       smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    attempts       integer NOT NULL DEFAULT 0,
    worker_id      text,
    result         jsonb,
    error_code     text,
    error_message  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    completed_at   timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- Listing: a user's tasks newest first, optionally filtered by status.
CREATE INDEX tasks_user_created_idx ON tasks (user_id, created_at DESC, id DESC);
CREATE INDEX tasks_user_status_created_idx ON tasks (user_id, status, created_at DESC, id DESC);
-- Recovery scans only look at live tasks.
CREATE INDEX tasks_live_idx ON tasks (status, created_at) WHERE status IN ('queued', 'processing');
CREATE INDEX tasks_file_idx ON tasks (file_id);

CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
CREATE TRIGGER files_touch BEFORE UPDATE ON files FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER tasks_touch BEFORE UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
