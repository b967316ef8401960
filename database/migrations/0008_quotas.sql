-- Quotas: per user, queued + processing tasks, their pages, and stored upload bytes.
--
-- The usage is kept by triggers, so every path that changes it (an upload, a retry, the
-- worker's outcome, a cancel, a delete, any path added later) keeps it right in its own
-- transaction. The check is in the same trigger, on the user's usage row, which the update
-- locks: two concurrent uploads of one user cannot both take the last unit of a quota. A
-- session sees limits only where it sets them (the API sets `untxt.max_active_tasks`,
-- `untxt.max_active_pages`, `untxt.max_stored_bytes` from its settings on its connections;
-- 0 or unset = no limit); a user's own columns below override them. The worker sets none:
-- what it records (a document's real page count, known after its survey) never fails.

ALTER TABLE users
    ADD COLUMN max_active_tasks integer CHECK (max_active_tasks >= 0),
    ADD COLUMN max_active_pages integer CHECK (max_active_pages >= 0),
    ADD COLUMN max_stored_bytes bigint CHECK (max_stored_bytes >= 0);

-- Pages of a task: 1 until the worker has counted them (the API never parses a document).
ALTER TABLE tasks ADD COLUMN pages integer NOT NULL DEFAULT 1 CHECK (pages >= 0);

CREATE TABLE user_usage (
    user_id       uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    active_tasks  integer NOT NULL DEFAULT 0,
    active_pages  bigint NOT NULL DEFAULT 0,
    stored_bytes  bigint NOT NULL DEFAULT 0
);

INSERT INTO user_usage (user_id, active_tasks, active_pages, stored_bytes)
SELECT u.id,
       (SELECT count(*) FROM tasks t WHERE t.user_id = u.id AND t.status IN ('queued', 'processing')),
       (SELECT coalesce(sum(t.pages), 0) FROM tasks t WHERE t.user_id = u.id AND t.status IN ('queued', 'processing')),
       (SELECT coalesce(sum(f.size_bytes), 0) FROM files f WHERE f.user_id = u.id)
  FROM users u;

-- The effective limit: the user's own, else the session's default; NULL = none.
CREATE FUNCTION untxt_limit(own bigint, setting text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT nullif(coalesce(own, nullif(current_setting(setting, true), '')::bigint), 0)
$$;

-- Adds to a user's usage; refuses (SQLSTATE UQ001, the message naming the quota) an increase
-- past a limit. Decreases are never refused.
CREATE FUNCTION untxt_add_usage(uid uuid, d_tasks integer, d_pages bigint, d_bytes bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    used user_usage;
    own users;
    lim bigint;
BEGIN
    IF d_tasks = 0 AND d_pages = 0 AND d_bytes = 0 THEN
        RETURN;
    END IF;
    SELECT * INTO own FROM users WHERE id = uid;
    IF NOT FOUND THEN
        RETURN;  -- the user is being deleted (its rows go with it)
    END IF;
    INSERT INTO user_usage AS u (user_id, active_tasks, active_pages, stored_bytes)
    VALUES (uid, d_tasks, d_pages, d_bytes)
    ON CONFLICT (user_id) DO UPDATE
       SET active_tasks = u.active_tasks + d_tasks,
           active_pages = u.active_pages + d_pages,
           stored_bytes = u.stored_bytes + d_bytes
    RETURNING * INTO used;
    lim := untxt_limit(own.max_active_tasks, 'untxt.max_active_tasks');
    IF d_tasks > 0 AND lim IS NOT NULL AND used.active_tasks > lim THEN
        RAISE EXCEPTION 'active_tasks' USING ERRCODE = 'UQ001', DETAIL = lim::text;
    END IF;
    lim := untxt_limit(own.max_active_pages, 'untxt.max_active_pages');
    IF d_pages > 0 AND lim IS NOT NULL AND used.active_pages > lim THEN
        RAISE EXCEPTION 'active_pages' USING ERRCODE = 'UQ001', DETAIL = lim::text;
    END IF;
    lim := untxt_limit(own.max_stored_bytes, 'untxt.max_stored_bytes');
    IF d_bytes > 0 AND lim IS NOT NULL AND used.stored_bytes > lim THEN
        RAISE EXCEPTION 'stored_bytes' USING ERRCODE = 'UQ001', DETAIL = lim::text;
    END IF;
END
$$;

CREATE FUNCTION untxt_task_usage() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    was_active boolean := TG_OP <> 'INSERT' AND OLD.status IN ('queued', 'processing');
    is_active boolean := TG_OP <> 'DELETE' AND NEW.status IN ('queued', 'processing');
    old_pages integer := CASE WHEN was_active THEN OLD.pages ELSE 0 END;
    new_pages integer := CASE WHEN is_active THEN NEW.pages ELSE 0 END;
BEGIN
    PERFORM untxt_add_usage(
        CASE WHEN TG_OP = 'DELETE' THEN OLD.user_id ELSE NEW.user_id END,
        is_active::integer - was_active::integer, new_pages - old_pages, 0);
    RETURN NULL;
END
$$;

CREATE FUNCTION untxt_file_usage() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM untxt_add_usage(NEW.user_id, 0, 0, NEW.size_bytes);
    ELSE
        PERFORM untxt_add_usage(OLD.user_id, 0, 0, -OLD.size_bytes);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_usage AFTER INSERT OR DELETE OR UPDATE OF status, pages ON tasks
    FOR EACH ROW EXECUTE FUNCTION untxt_task_usage();
CREATE TRIGGER files_usage AFTER INSERT OR DELETE ON files
    FOR EACH ROW EXECUTE FUNCTION untxt_file_usage();
