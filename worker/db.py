"""The worker's PostgreSQL queries. Every state change is conditional on the current state, so
a duplicated or stale job message can never move a task backwards or record a second outcome."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg2
import psycopg2.extensions

from common.statuses import FileStatus, TaskStatus


@dataclass(frozen=True)
class ClaimedTask:
    task_id: str
    user_id: str
    file_id: str
    language: str
    attempts: int
    s3_key: str
    filename: str
    mime_type: str
    size_bytes: int
    file_created_at: datetime


class TaskStore:
    """One connection, used by one thread at a time; reconnects after a dropped connection."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._conn: psycopg2.extensions.connection | None = None

    def _connection(self) -> psycopg2.extensions.connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(self._url, connect_timeout=5, application_name="untxt-worker")
        return self._conn

    def _run(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = self._connection()
        try:
            with conn, conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else []
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            # The connection is unusable after a server restart; the next call reconnects.
            conn.close()
            raise

    def ping(self) -> None:
        self._run("SELECT 1", ())

    def claim(self, task_id: str, worker_id: str) -> ClaimedTask | None:
        """queued → processing, atomically; None if the task is gone or not queued any more."""
        rows = self._run(
            """
            WITH claimed AS (
                UPDATE tasks SET status = %s, started_at = now(), attempts = attempts + 1,
                       worker_id = %s, progress = 0, error_code = NULL, error_message = NULL
                 WHERE id = %s AND status = %s
             RETURNING id, user_id, file_id, language, attempts
            ), file AS (
                UPDATE files SET status = %s FROM claimed WHERE files.id = claimed.file_id
             RETURNING files.s3_key, files.original_filename, files.mime_type, files.size_bytes, files.created_at
            )
            SELECT c.id, c.user_id, c.file_id, c.language, c.attempts,
                   f.s3_key, f.original_filename, f.mime_type, f.size_bytes, f.created_at
              FROM claimed c, file f
            """,
            (TaskStatus.PROCESSING, worker_id, task_id, TaskStatus.QUEUED, FileStatus.PROCESSING),
        )
        if not rows:
            return None
        r = rows[0]
        return ClaimedTask(str(r[0]), str(r[1]), str(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], r[9])

    def complete(self, task: ClaimedTask, worker_id: str, result_key: str, summary: dict[str, Any]) -> bool:
        rows = self._run(
            """
            WITH done AS (
                UPDATE tasks SET status = %s, progress = 100, completed_at = now(), result = %s
                 WHERE id = %s AND status = %s AND worker_id = %s
             RETURNING file_id
            )
            UPDATE files SET status = %s, s3_result_key = %s FROM done WHERE files.id = done.file_id
         RETURNING files.id
            """,
            (
                TaskStatus.COMPLETED,
                json.dumps(summary),
                task.task_id,
                TaskStatus.PROCESSING,
                worker_id,
                FileStatus.PROCESSED,
                result_key,
            ),
        )
        return bool(rows)

    def fail(self, task_id: str, worker_id: str, code: str, message: str) -> bool:
        rows = self._run(
            """
            WITH failed AS (
                UPDATE tasks SET status = %s, completed_at = now(), error_code = %s, error_message = %s
                 WHERE id = %s AND status = %s AND worker_id = %s
             RETURNING file_id
            )
            UPDATE files SET status = %s FROM failed WHERE files.id = failed.file_id
         RETURNING files.id
            """,
            (TaskStatus.FAILED, code, message[:2000], task_id, TaskStatus.PROCESSING, worker_id, FileStatus.FAILED),
        )
        return bool(rows)

    def set_progress(self, task_id: str, worker_id: str, progress: int) -> None:
        self._run(
            "UPDATE tasks SET progress = %s WHERE id = %s AND status = %s AND worker_id = %s",
            (progress, task_id, TaskStatus.PROCESSING, worker_id),
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
