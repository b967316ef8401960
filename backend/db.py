"""Every SQL statement the API runs. Queries that read a task always filter by its owner."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from common.jobqueue import PRIORITIES
from common.settings import Settings
from common.statuses import TaskStatus

_TASK_COLUMNS = """
    t.id AS task_id, t.status, t.priority, t.language, t.tag, t.progress, t.attempts, t.result,
    t.error_code, t.error_message, t.created_at, t.started_at, t.completed_at, t.updated_at,
    f.id AS file_id, f.original_filename, f.mime_type, f.size_bytes, f.sha256, f.s3_key, f.s3_result_key
"""


class IdempotencyRaceError(Exception):
    """Another request with the same idempotency key committed first."""


# The SQLSTATE the quota trigger raises (database/migrations/0008_quotas.sql).
QUOTA_SQLSTATE = "UQ001"


class QuotaExceededError(Exception):
    """An upload or retry would take the user past one of its quotas; nothing was written."""

    def __init__(self, quota: str, limit: int) -> None:
        super().__init__(quota)
        self.quota = quota  # active_tasks, active_pages or stored_bytes
        self.limit = limit


def quota_settings(settings: Settings) -> dict[str, str]:
    """The session settings that give the quota trigger this process's default limits."""
    return {
        "untxt.max_active_tasks": str(settings.quota_max_active_tasks),
        "untxt.max_active_pages": str(settings.quota_max_active_pages),
        "untxt.max_stored_bytes": str(settings.quota_max_stored_bytes),
    }


@contextlib.asynccontextmanager
async def _quota_checked() -> AsyncIterator[None]:
    try:
        yield
    except asyncpg.PostgresError as exc:
        if exc.sqlstate != QUOTA_SQLSTATE:
            raise
        raise QuotaExceededError(getattr(exc, "message", ""), int(getattr(exc, "detail", None) or 0)) from None


@dataclass(frozen=True)
class IdempotencyKey:
    """A client's Idempotency-Key and the fingerprint of the request that carries it."""

    key: str
    fingerprint: str


@dataclass(frozen=True)
class EarlierRequest:
    """The task an idempotency key already stands for, and what that first request asked."""

    task_id: str
    fingerprint: str | None  # None: recorded before fingerprints were kept


@dataclass(frozen=True)
class NewUpload:
    task_id: str
    file_id: str
    user_id: str
    original_filename: str
    safe_filename: str
    mime_type: str
    size_bytes: int
    sha256: str
    s3_key: str
    priority: int
    language: str
    tag: str | None
    created_at: datetime


async def ping(pool: asyncpg.Pool) -> None:
    await pool.fetchval("SELECT 1")


async def user_for_key_hash(pool: asyncpg.Pool, key_hash: str) -> str | None:
    user_id = await pool.fetchval("SELECT user_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", key_hash)
    return str(user_id) if user_id else None


async def ensure_user(pool: asyncpg.Pool, email: str) -> str:
    user_id = await pool.fetchval(
        """
        WITH inserted AS (
            INSERT INTO users (email) VALUES ($1) ON CONFLICT (lower(email)) DO NOTHING RETURNING id
        )
        SELECT id FROM inserted UNION ALL SELECT id FROM users WHERE lower(email) = lower($1) LIMIT 1
        """,
        email,
    )
    return str(user_id)


async def add_api_key(pool: asyncpg.Pool, user_id: str, key_hash: str, key_prefix: str) -> None:
    await pool.execute(
        "INSERT INTO api_keys (user_id, key_hash, key_prefix) VALUES ($1, $2, $3)", user_id, key_hash, key_prefix
    )


# Both rows in one statement: atomic on its own, one round trip instead of a transaction's four.
_INSERT_UPLOAD = """
    WITH file AS (
        INSERT INTO files (id, user_id, original_filename, safe_filename, mime_type, size_bytes,
                           sha256, s3_key, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $12, $12)
        RETURNING id, user_id
    )
    INSERT INTO tasks (id, user_id, file_id, priority, language, tag, status, created_at, updated_at, express)
    SELECT $9, file.user_id, file.id, $10, $11, $14, $13, $12, $12, $10::smallint > $15::smallint AND u.express_allowed
      FROM file JOIN users u ON u.id = file.user_id
    RETURNING express
"""


async def insert_upload(
    pool: asyncpg.Pool, up: NewUpload, priority_ceiling: int, idempotency: IdempotencyKey | None = None
) -> EarlierRequest | bool:
    """The file and its task appear together or not at all.

    Returns whether the task takes the express lane (its priority is above ``priority_ceiling``
    and its user is allowed the lane). With an idempotency key already used by this user in the
    last 24 h, nothing is inserted and the earlier request is returned instead.
    """
    row = (
        up.file_id,
        up.user_id,
        up.original_filename,
        up.safe_filename,
        up.mime_type,
        up.size_bytes,
        up.sha256,
        up.s3_key,
        up.task_id,
        up.priority,
        up.language,
        up.created_at,
        TaskStatus.QUEUED,
        up.tag,
        priority_ceiling,
    )
    async with _quota_checked():
        return await _insert_upload(pool, row, up, idempotency)


async def _insert_upload(
    pool: asyncpg.Pool, row: tuple[object, ...], up: NewUpload, idempotency: IdempotencyKey | None
) -> EarlierRequest | bool:
    if idempotency is None:
        return bool(await pool.fetchval(_INSERT_UPLOAD, *row))
    async with pool.acquire() as conn, conn.transaction():
        # Expired keys are taken over; a live one makes this upload a repeat.
        await conn.execute(
            f"DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2"
            f" AND created_at <= now() - interval '{IDEMPOTENCY_WINDOW}'",
            up.user_id,
            idempotency.key,
        )
        existing = await conn.fetchrow(
            "SELECT task_id, fingerprint FROM idempotency_keys WHERE user_id = $1 AND key = $2 FOR UPDATE",
            up.user_id,
            idempotency.key,
        )
        if existing is not None:
            return EarlierRequest(str(existing["task_id"]), existing["fingerprint"])
        express = bool(await conn.fetchval(_INSERT_UPLOAD, *row))
        inserted = await conn.fetchval(
            "INSERT INTO idempotency_keys (user_id, key, task_id, fingerprint) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING RETURNING task_id",
            up.user_id,
            idempotency.key,
            up.task_id,
            idempotency.fingerprint,
        )
        if inserted is None:
            # A concurrent upload with the same key won the race: roll ours back.
            raise IdempotencyRaceError(idempotency.key)
    return express


async def delete_file(pool: asyncpg.Pool, file_id: str) -> None:
    """Undo insert_upload (its task goes with it, by cascade)."""
    await pool.execute("DELETE FROM files WHERE id = $1", file_id)


async def get_task(pool: asyncpg.Pool, user_id: str, task_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT {_TASK_COLUMNS} FROM tasks t JOIN files f ON f.id = t.file_id WHERE t.id = $1 AND t.user_id = $2",
        task_id,
        user_id,
    )


@dataclass(frozen=True)
class TaskQuery:
    """Which of a user's tasks to list: filters, page size, and where the page starts."""

    status: str | None
    tag: str | None
    limit: int
    offset: int = 0
    # Keyset: only tasks after this (created_at, id) in the list's newest-first order.
    after: tuple[datetime, str] | None = None


async def list_tasks(pool: asyncpg.Pool, user_id: str, query: TaskQuery) -> tuple[list[asyncpg.Record], int, bool]:
    """(one page of tasks newest first, how many match the filters, whether more follow)."""
    args: list[object] = [user_id]
    conditions = ["t.user_id = $1"]
    for column, value in (("t.status", query.status), ("t.tag", query.tag)):
        if value is not None:
            args.append(value)
            conditions.append(f"{column} = ${len(args)}")
    filters = " AND ".join(conditions)
    total = await pool.fetchval(f"SELECT count(*) FROM tasks t WHERE {filters}", *args)
    if query.after is not None:
        # A row comparison the (user_id, created_at DESC, id DESC) indexes answer directly,
        # in its own statement text so the plan never has to allow for "no cursor".
        args += list(query.after)
        filters += f" AND (t.created_at, t.id) < (${len(args) - 1}, ${len(args)}::uuid)"
    args += [query.limit + 1, query.offset]
    rows = await pool.fetch(
        f"""
        SELECT {_TASK_COLUMNS} FROM tasks t JOIN files f ON f.id = t.file_id
         WHERE {filters}
         ORDER BY t.created_at DESC, t.id DESC
         LIMIT ${len(args) - 1} OFFSET ${len(args)}
        """,
        *args,
    )
    return list(rows[: query.limit]), int(total), len(rows) > query.limit


async def get_task_status(pool: asyncpg.Pool, user_id: str, task_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT status, progress, priority, tag, updated_at FROM tasks WHERE id = $1 AND user_id = $2",
        task_id,
        user_id,
    )


async def task_owner(pool: asyncpg.Pool, task_id: str) -> str | None:
    owner = await pool.fetchval("SELECT user_id FROM tasks WHERE id = $1", task_id)
    return str(owner) if owner else None


async def request_cancel(pool: asyncpg.Pool, user_id: str, task_id: str) -> str | None:
    """queued → cancelled at once; processing → flagged, the worker stops at its next page.

    Returns the status after the request, or None if the task is not live (or not the user's).
    A queued job's message stays in Redis and is dropped when a worker fails to claim it.
    """
    return await pool.fetchval(
        """
        UPDATE tasks SET cancel_requested_at = now(),
               status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
               completed_at = CASE WHEN status = 'queued' THEN now() ELSE completed_at END,
               error_code = CASE WHEN status = 'queued' THEN 'cancelled' ELSE error_code END,
               error_message = CASE WHEN status = 'queued' THEN 'cancelled at the caller''s request'
                                    ELSE error_message END
         WHERE id = $1 AND user_id = $2 AND status IN ('queued', 'processing')
     RETURNING status
        """,
        task_id,
        user_id,
    )


async def retry_task(pool: asyncpg.Pool, user_id: str, task_id: str) -> asyncpg.Record | None:
    """failed/cancelled → queued (attempts and crash count kept, so a file that crashes its
    reader fails again at its next crash instead of crashing more workers; error cleared)."""
    async with _quota_checked(), pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """
            UPDATE tasks SET status = 'queued', progress = 0, worker_id = NULL, error_code = NULL,
                   error_message = NULL, cancel_requested_at = NULL, started_at = NULL,
                   completed_at = NULL
             WHERE id = $1 AND user_id = $2 AND status IN ('failed', 'cancelled')
         RETURNING file_id, language, priority, tag, express
            """,
            task_id,
            user_id,
        )
        if row is not None:
            await conn.execute("UPDATE files SET status = 'uploaded' WHERE id = $1", row["file_id"])
        return row


async def lock_task_for_delete(conn: asyncpg.Connection, user_id: str, task_id: str) -> asyncpg.Record | None:
    """The task's status and objects, row-locked until the caller's transaction ends."""
    return await conn.fetchrow(
        """
        SELECT t.status, t.priority, f.id AS file_id, f.s3_key, f.s3_result_key, f.created_at AS file_created_at
          FROM tasks t JOIN files f ON f.id = t.file_id
         WHERE t.id = $1 AND t.user_id = $2
           FOR UPDATE OF t, f
        """,
        task_id,
        user_id,
    )


async def delete_file_rows(conn: asyncpg.Connection, file_id: str) -> None:
    await conn.execute("DELETE FROM files WHERE id = $1", file_id)


async def counts_by_status(pool: asyncpg.Pool, user_id: str | None) -> dict[str, int]:
    """Tasks per status for one user, or for everyone when ``user_id`` is None."""
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM tasks WHERE ($1::uuid IS NULL OR user_id = $1) GROUP BY status", user_id
    )
    counts = {s.value: 0 for s in TaskStatus}
    counts.update({r["status"]: int(r["n"]) for r in rows})
    return counts


async def queued_by_priority(pool: asyncpg.Pool, user_id: str) -> dict[int, int]:
    """The user's queued tasks per priority, 10 first (the order of the Redis figures operators
    get): a user sees their own queue, never how busy the service is or how much others send."""
    rows = await pool.fetch(
        "SELECT priority, count(*) AS n FROM tasks WHERE user_id = $1 AND status = $2 GROUP BY priority",
        user_id,
        TaskStatus.QUEUED.value,
    )
    counts = {int(r["priority"]): int(r["n"]) for r in rows}
    return {p: counts.get(p, 0) for p in reversed(PRIORITIES)}


async def is_operator(pool: asyncpg.Pool, user_id: str) -> bool:
    return bool(await pool.fetchval("SELECT is_operator FROM users WHERE id = $1", user_id))


async def set_operator(pool: asyncpg.Pool, user_id: str) -> None:
    await pool.execute("UPDATE users SET is_operator = true WHERE id = $1", user_id)


# A user's own limits: a number, or None for the deployment's default (the QUOTA_* settings).
LIMIT_COLUMNS = ("max_active_tasks", "max_active_pages", "max_stored_bytes")


@dataclass(frozen=True)
class UserLimits:
    email: str
    express_allowed: bool
    own: dict[str, int | None]  # by LIMIT_COLUMNS name
    usage: dict[str, int]  # active_tasks, active_pages, stored_bytes


async def set_limits(
    pool: asyncpg.Pool, email: str, limits: dict[str, int | None], express: bool | None
) -> UserLimits | None:
    """Change the given limits (None: back to the default) and the express grant (None: as it
    is) of the user with ``email``; returns the user's limits and usage, None if no such user."""
    assert set(limits) <= set(LIMIT_COLUMNS)
    async with pool.acquire() as conn, conn.transaction():
        user_id = await conn.fetchval("SELECT id FROM users WHERE lower(email) = lower($1)", email)
        if user_id is None:
            return None
        for column, value in limits.items():  # names from LIMIT_COLUMNS only: no injection
            await conn.execute(f"UPDATE users SET {column} = $2 WHERE id = $1", user_id, value)
        if express is not None:
            await conn.execute("UPDATE users SET express_allowed = $2 WHERE id = $1", user_id, express)
        row = await conn.fetchrow(
            """
            SELECT u.email, u.express_allowed, u.max_active_tasks, u.max_active_pages, u.max_stored_bytes,
                   coalesce(g.active_tasks, 0) AS active_tasks, coalesce(g.active_pages, 0) AS active_pages,
                   coalesce(g.stored_bytes, 0) AS stored_bytes
              FROM users u LEFT JOIN user_usage g ON g.user_id = u.id WHERE u.id = $1
            """,
            user_id,
        )
    return UserLimits(
        row["email"],
        row["express_allowed"],
        {column: row[column] for column in LIMIT_COLUMNS},
        {name: int(row[name]) for name in ("active_tasks", "active_pages", "stored_bytes")},
    )


async def reset_crashes(pool: asyncpg.Pool, task_id: str) -> bool:
    """An operator's decision that a file deserves another try after crashing its readers
    (retries by the user keep the count)."""
    return await pool.fetchval("UPDATE tasks SET crash_count = 0 WHERE id = $1 RETURNING true", task_id) is not None


async def revoke_keys(pool: asyncpg.Pool, email: str | None, key_hash: str | None) -> list[str]:
    """Revoke every key of a user (by email) or one key (by hash); returns the revoked hashes."""
    rows = await pool.fetch(
        """
        UPDATE api_keys SET revoked_at = now()
         WHERE revoked_at IS NULL
           AND (($1::text IS NOT NULL AND user_id = (SELECT id FROM users WHERE lower(email) = lower($1)))
                OR ($2::text IS NOT NULL AND key_hash = $2))
     RETURNING key_hash
        """,
        email,
        key_hash,
    )
    return [r["key_hash"] for r in rows]


IDEMPOTENCY_WINDOW = "24 hours"


async def earlier_request(pool: asyncpg.Pool, user_id: str, key: str) -> EarlierRequest | None:
    """What a live idempotency key of this user stands for, if it is live."""
    row = await pool.fetchrow(
        f"""
        SELECT task_id, fingerprint FROM idempotency_keys
         WHERE user_id = $1 AND key = $2 AND created_at > now() - interval '{IDEMPOTENCY_WINDOW}'
        """,
        user_id,
        key,
    )
    return EarlierRequest(str(row["task_id"]), row["fingerprint"]) if row else None


async def sweep_idempotency_keys(pool: asyncpg.Pool) -> int:
    """Delete the keys past the window (the lookups ignore them already); how many went."""
    status = await pool.execute(
        f"DELETE FROM idempotency_keys WHERE created_at <= now() - interval '{IDEMPOTENCY_WINDOW}'"
    )
    return int(status.split()[-1])


async def expired_tasks(pool: asyncpg.Pool, days: int, limit: int) -> list[tuple[str, str]]:
    """(user id, task id) of finished tasks uploaded more than ``days`` days ago, oldest first.
    Queued and processing tasks are never expired: they go once they have finished."""
    rows = await pool.fetch(
        """
        SELECT user_id, id FROM tasks
         WHERE status IN ('completed', 'failed', 'cancelled') AND created_at < now() - make_interval(days => $1)
         ORDER BY created_at
         LIMIT $2
        """,
        days,
        limit,
    )
    return [(str(r["user_id"]), str(r["id"])) for r in rows]


async def snapshot_tasks(pool: asyncpg.Pool, user_id: str, recent_terminal: int) -> list[asyncpg.Record]:
    """The user's live tasks and their most recent finished ones, oldest first."""
    return await pool.fetch(
        """
        (SELECT id, status, progress, tag, updated_at, result, error_code, error_message FROM tasks
          WHERE user_id = $1 AND status IN ('queued', 'processing'))
        UNION ALL
        (SELECT id, status, progress, tag, updated_at, result, error_code, error_message FROM tasks
          WHERE user_id = $1 AND status NOT IN ('queued', 'processing')
          ORDER BY updated_at DESC LIMIT $2)
        ORDER BY updated_at
        """,
        user_id,
        recent_terminal,
    )
