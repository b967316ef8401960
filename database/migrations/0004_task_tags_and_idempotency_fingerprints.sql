-- A caller's own label per upload (like Textract's JobTag), echoed in task JSON and events and
-- filterable in the list; the API validates it (1-128 characters, no control characters).
ALTER TABLE tasks ADD COLUMN tag text CHECK (tag IS NULL OR char_length(tag) BETWEEN 1 AND 128);
-- Listing by tag: a user's tagged tasks, newest first, in the keyset order of the list route.
CREATE INDEX tasks_user_tag_created_idx ON tasks (user_id, tag, created_at DESC, id DESC) WHERE tag IS NOT NULL;

-- What the request that first used an idempotency key asked for (sha256 over the file's sha256
-- and the form fields), so a key reused for a different request is refused instead of silently
-- answered with the first task. NULL for keys recorded before this column existed: those keep
-- the old behaviour until they expire (24 h).
ALTER TABLE idempotency_keys ADD COLUMN fingerprint text;
