"""Removing a task everywhere: its upload and result objects, its rows, its Redis traces.

One path for the user's ``DELETE /api/tasks/{id}`` and the retention sweep.
"""

from __future__ import annotations

import asyncpg
from aiohttp import web

from backend import db, storage
from backend.resources import DB, QUEUE, S3, SETTINGS
from common import keys
from common.statuses import TaskStatus


class TaskProcessingError(Exception):
    """A worker holds the task: removing it now would pull its upload from under the worker."""


async def remove_task(app: web.Application, user_id: str, task_id: str) -> int | None:
    """Remove the user's task; the number of objects deleted, or None if the user has no such task.

    Raises TaskProcessingError while a worker processes it (cancel first).
    """
    async with app[DB].acquire() as conn, conn.transaction():
        row = await db.lock_task_for_delete(conn, user_id, task_id)
        if row is None:
            return None
        if row["status"] == TaskStatus.PROCESSING:
            raise TaskProcessingError(task_id)
        # Objects first, inside the row lock: if the store fails, the rows stay and the
        # removal can be repeated; no row ever points at a deleted object.
        await storage.delete_object(app[S3], app[SETTINGS], row["s3_key"])
        deleted = 1 + await _delete_results(app, user_id, row)
        await db.delete_file_rows(conn, str(row["file_id"]))
    if row["status"] == TaskStatus.QUEUED:
        await app[QUEUE].withdraw(task_id)
    await app[QUEUE].forget(task_id)
    return deleted


async def _delete_results(app: web.Application, user_id: str, row: asyncpg.Record) -> int:
    """Every object under the file's results prefix, not only the recorded run's: a run that
    lost the task and was killed before deleting its attempt's folder left one behind. The
    recorded key's prefix too: before keys took the month in UTC, a worker whose database
    session was in another time zone may have named another month than the API does."""
    prefixes = {keys.results_prefix(user_id, str(row["file_id"]), row["file_created_at"])}
    if row["s3_result_key"]:
        prefixes.add(keys.results_prefix_of(row["s3_result_key"]))
    deleted = 0
    for prefix in sorted(prefixes):
        for key in await storage.list_keys(app[S3], app[SETTINGS], prefix):
            await storage.delete_object(app[S3], app[SETTINGS], key)
            deleted += 1
    return deleted
