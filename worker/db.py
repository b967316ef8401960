"""The worker's PostgreSQL queries. Every state change is conditional on the current state, so
a duplicated or stale job message can never move a task backwards or record a second outcome.

``tasks.worker_id`` holds the id of the job slot that has the task (``slot_id`` here): the column
kept its first name, since renaming it would break workers still running during an upgrade."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import psycopg2
import psycopg2.extensions

from common.job import JobMessage
from common.statuses import FileStatus, TaskStatus
from worker.retry import with_retries

T = TypeVar("T")


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
    tag: str | None = None


@dataclass(frozen=True)
class LiveTask:
    """A queued or processing task as the reconciler sees it: the job message it would enqueue
    again, and the state (status, slot) that requeue is conditional on."""

    message: JobMessage
    status: str
    slot_id: str | None


class TaskStore:
    """One connection, used by one thread at a time; reconnects after a dropped connection."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._conn: psycopg2.extensions.connection | None = None

    def _connection(self) -> psycopg2.extensions.connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(self._url, connect_timeout=5, application_name="untxt-worker")
        return self._conn

    def _transaction(self, work: Callable[[psycopg2.extensions.cursor], T]) -> T:
        """``work`` in one transaction (committed when it returns, rolled back if it raises)."""
        conn = self._connection()
        try:
            with conn, conn.cursor() as cur:
                return work(cur)
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            # The connection is unusable after a server restart; the next call reconnects.
            conn.close()
            raise

    def _run_once(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        def execute(cur: psycopg2.extensions.cursor) -> list[tuple[Any, ...]]:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

        return self._transaction(execute)

    def _run(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        # Every statement here is conditional on the task's state, so running one again after
        # a dropped connection cannot apply a change twice.
        return with_retries(lambda: self._run_once(query, params), "postgres")

    def ping(self) -> None:
        self._run("SELECT 1", ())

    def claim(self, task_id: str, slot_id: str) -> ClaimedTask | None:
        """queued → processing, atomically; None if the task is gone or not queued any more."""
        rows = self._run(
            """
            WITH claimed AS (
                UPDATE tasks SET status = %s, started_at = now(), attempts = attempts + 1,
                       worker_id = %s, progress = 0, error_code = NULL, error_message = NULL
                 WHERE id = %s AND status = %s
             RETURNING id, user_id, file_id, language, attempts, tag
            ), file AS (
                UPDATE files SET status = %s FROM claimed WHERE files.id = claimed.file_id
             RETURNING files.s3_key, files.original_filename, files.mime_type, files.size_bytes, files.created_at
            )
            SELECT c.id, c.user_id, c.file_id, c.language, c.attempts,
                   f.s3_key, f.original_filename, f.mime_type, f.size_bytes, f.created_at, c.tag
              FROM claimed c, file f
            """,
            (TaskStatus.PROCESSING, slot_id, task_id, TaskStatus.QUEUED, FileStatus.PROCESSING),
        )
        if not rows:
            return None
        r = rows[0]
        return ClaimedTask(str(r[0]), str(r[1]), str(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10])

    def complete(self, task: ClaimedTask, slot_id: str, result_key: str, summary: dict[str, Any]) -> bool:
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
                slot_id,
                FileStatus.PROCESSED,
                result_key,
            ),
        )
        return bool(rows)

    def holds(self, task_id: str, slot_id: str) -> bool:
        """Whether the task is still this slot's to finish (a slot cut off for longer than its
        heartbeat may have lost it to the reaper, and another slot may be reading it now)."""
        rows = self._run(
            "SELECT 1 FROM tasks WHERE id = %s AND status = %s AND worker_id = %s",
            (task_id, TaskStatus.PROCESSING, slot_id),
        )
        return bool(rows)

    def records_result(self, task_id: str, result_key: str) -> bool:
        """Whether the task's file row records ``result_key`` (a run's primary result key): how a
        run whose completion got no answer, or was refused on a retry after a dropped
        connection, tells whether it committed after all. Read under the task's and file's row
        locks (in the API's order), so a completion of this run still under way on a
        connection it gave up on ends first."""
        rows = self._run(
            "SELECT f.s3_result_key = %s FROM tasks t JOIN files f ON f.id = t.file_id"
            " WHERE t.id = %s FOR UPDATE OF t, f",
            (result_key, task_id),
        )
        return bool(rows and rows[0][0])

    def fail(self, task_id: str, slot_id: str, code: str, message: str) -> bool:
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
            (TaskStatus.FAILED, code, message[:2000], task_id, TaskStatus.PROCESSING, slot_id, FileStatus.FAILED),
        )
        return bool(rows)

    def set_progress(self, task_id: str, slot_id: str, progress: int) -> bool:
        """Record progress; True while the task is still ours and nobody asked to cancel it."""
        rows = self._run(
            "UPDATE tasks SET progress = %s WHERE id = %s AND status = %s AND worker_id = %s"
            " RETURNING cancel_requested_at IS NULL",
            (progress, task_id, TaskStatus.PROCESSING, slot_id),
        )
        return bool(rows and rows[0][0])

    def set_pages(self, task_id: str, slot_id: str, pages: int) -> None:
        """The document's real page count, once surveyed (the upload counted it as one): what
        the user's page quota counts while the task is queued or processing."""
        self._run(
            "UPDATE tasks SET pages = %s WHERE id = %s AND status = %s AND worker_id = %s AND pages <> %s",
            (pages, task_id, TaskStatus.PROCESSING, slot_id, pages),
        )

    def cancel(self, task_id: str, slot_id: str) -> bool:
        rows = self._run(
            """
            WITH cancelled AS (
                UPDATE tasks SET status = %s, completed_at = now(), error_code = 'cancelled',
                       error_message = 'cancelled at the caller''s request'
                 WHERE id = %s AND status = %s AND worker_id = %s
             RETURNING file_id
            )
            UPDATE files SET status = %s FROM cancelled WHERE files.id = cancelled.file_id RETURNING files.id
            """,
            (TaskStatus.CANCELLED, task_id, TaskStatus.PROCESSING, slot_id, FileStatus.UPLOADED),
        )
        return bool(rows)

    def hand_back(self, task_id: str, slot_id: str) -> bool:
        """processing → queued, for a job this slot hands back without an outcome (shutdown, or a
        store down past the retries)."""
        rows = self._run(
            "UPDATE tasks SET status = %s, worker_id = NULL, progress = 0"
            " WHERE id = %s AND status = %s AND worker_id = %s RETURNING id",
            (TaskStatus.QUEUED, task_id, TaskStatus.PROCESSING, slot_id),
        )
        return bool(rows)

    def release_dead(self, task_id: str, dead_slot: str, max_crashes: int) -> str | None:
        """The task's slot died mid-job: queue it again, or fail it as a poison job once it has
        killed ``max_crashes`` workers. Returns the new status, None if the task was not being
        processed by that slot (it died between taking the message and claiming the task, or
        the task moved on): then there is nothing to undo."""
        rows = self._run(
            """
            UPDATE tasks SET crash_count = crash_count + 1, worker_id = NULL, progress = 0,
                   status = CASE WHEN crash_count + 1 >= %s THEN 'failed' ELSE 'queued' END,
                   error_code = CASE WHEN crash_count + 1 >= %s THEN 'worker_crashed' END,
                   error_message = CASE WHEN crash_count + 1 >= %s
                       THEN 'the worker processing this file stopped unexpectedly ' || (crash_count + 1)
                            || ' times; the file was set aside' END,
                   completed_at = CASE WHEN crash_count + 1 >= %s THEN now() END
             WHERE id = %s AND status = 'processing' AND worker_id = %s
         RETURNING status
            """,
            (max_crashes, max_crashes, max_crashes, max_crashes, task_id, dead_slot),
        )
        return rows[0][0] if rows else None

    def live_tasks(self, older_than_seconds: int) -> list[LiveTask]:
        """Queued/processing tasks untouched for a while: the candidates the reconciler checks
        against Redis."""
        rows = self._run(
            """
            SELECT id, user_id, file_id, language, priority, express, status, worker_id FROM tasks
             WHERE status IN ('queued', 'processing') AND updated_at < now() - make_interval(secs => %s)
            """,
            (older_than_seconds,),
        )
        return [LiveTask(JobMessage.new(str(r[0]), str(r[2]), str(r[1]), r[3], r[4], r[5]), r[6], r[7]) for r in rows]

    def requeue_orphan(self, task_id: str, status: str, slot_id: str | None) -> bool:
        """Reset an orphaned task to queued, only if it is still in the state the caller saw."""
        rows = self._run(
            "UPDATE tasks SET status = 'queued', worker_id = NULL, progress = 0"
            " WHERE id = %s AND status = %s AND worker_id IS NOT DISTINCT FROM %s RETURNING id",
            (task_id, status, slot_id),
        )
        return bool(rows)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
