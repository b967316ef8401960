"""Every SQL statement the API runs. Queries that read a task always filter by its owner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from common.statuses import TaskStatus

_TASK_COLUMNS = """
    t.id AS task_id, t.status, t.priority, t.language, t.progress, t.attempts, t.result,
    t.error_code, t.error_message, t.created_at, t.started_at, t.completed_at, t.updated_at,
    f.id AS file_id, f.original_filename, f.mime_type, f.size_bytes, f.sha256, f.s3_key, f.s3_result_key
"""


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


async def insert_upload(pool: asyncpg.Pool, up: NewUpload) -> None:
    """The file and its task appear together or not at all."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """
            INSERT INTO files (id, user_id, original_filename, safe_filename, mime_type, size_bytes,
                               sha256, s3_key, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
            """,
            up.file_id,
            up.user_id,
            up.original_filename,
            up.safe_filename,
            up.mime_type,
            up.size_bytes,
            up.sha256,
            up.s3_key,
            up.created_at,
        )
        await conn.execute(
            """
            INSERT INTO tasks (id, user_id, file_id, priority, language, status, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
            """,
            up.task_id,
            up.user_id,
            up.file_id,
            up.priority,
            up.language,
            TaskStatus.QUEUED,
            up.created_at,
        )


async def delete_file(pool: asyncpg.Pool, file_id: str) -> None:
    """Undo insert_upload (its task goes with it, by cascade)."""
    await pool.execute("DELETE FROM files WHERE id = $1", file_id)


async def get_task(pool: asyncpg.Pool, user_id: str, task_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT {_TASK_COLUMNS} FROM tasks t JOIN files f ON f.id = t.file_id WHERE t.id = $1 AND t.user_id = $2",
        task_id,
        user_id,
    )


async def list_tasks(
    pool: asyncpg.Pool, user_id: str, status: str | None, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    rows = await pool.fetch(
        f"""
        SELECT {_TASK_COLUMNS} FROM tasks t JOIN files f ON f.id = t.file_id
         WHERE t.user_id = $1 AND ($2::text IS NULL OR t.status = $2)
         ORDER BY t.created_at DESC, t.id DESC
         LIMIT $3 OFFSET $4
        """,
        user_id,
        status,
        limit,
        offset,
    )
    total = await pool.fetchval(
        "SELECT count(*) FROM tasks WHERE user_id = $1 AND ($2::text IS NULL OR status = $2)", user_id, status
    )
    return list(rows), int(total)


async def get_task_status(pool: asyncpg.Pool, user_id: str, task_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT status, progress, updated_at FROM tasks WHERE id = $1 AND user_id = $2", task_id, user_id
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
