"""Removing a task everywhere: its upload and result objects, its rows, its Redis traces.

One path for the user's ``DELETE /api/tasks/{id}`` and the retention sweep.
"""

from __future__ import annotations

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
        object_keys = keys.task_object_keys(row["s3_key"], row["s3_result_key"])
        for key in object_keys:
            await storage.delete_object(app[S3], app[SETTINGS], key)
        await db.delete_file_rows(conn, str(row["file_id"]))
    if row["status"] == TaskStatus.QUEUED:
        await app[QUEUE].withdraw(task_id)
    await app[QUEUE].forget(task_id)
    return len(object_keys)
