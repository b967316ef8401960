"""Getting every job done despite dead workers and lost Redis data.

* The reaper finds processing lists whose worker's heartbeat key has expired and puts their
  jobs back on the queue (Sidekiq super_fetch / RQ intermediate-queue style). A job whose task
  has now killed ``max_worker_crashes`` workers goes to the dead-letter list instead, its task
  failed with ``worker_crashed``.
* The reconciler compares PostgreSQL (the source of truth) with Redis: a queued or processing
  task that no Redis list holds (after a Redis restart or flush, or a crash between steps) is
  reset to queued and enqueued again.

Every worker process runs both periodically; a Redis lock makes sure only one does at a time.
"""

from __future__ import annotations

import json
import logging
import uuid

import redis

from common import keys
from common.events import TaskEvent
from common.job import JobMessage, band_of, push_job
from common.statuses import TaskStatus
from worker.db import TaskStore
from worker.queue import publish_event

log = logging.getLogger("untxt.worker.recovery")


def _task_id(raw: bytes) -> str | None:
    try:
        return str(json.loads(raw)["task_id"])
    except (ValueError, KeyError, TypeError):
        return None


class Recovery:
    def __init__(self, client: redis.Redis, tasks: TaskStore, max_crashes: int, grace_seconds: int) -> None:
        self.client = client
        self.tasks = tasks
        self.max_crashes = max_crashes
        self.grace_seconds = grace_seconds
        self.token = uuid.uuid4().hex

    def run_once(self, lock_seconds: int = 60) -> dict[str, int]:
        """One reaper + reconciler pass, if no other worker is running one."""
        if not self.client.set(keys.RECOVERY_LOCK, self.token, nx=True, ex=lock_seconds):
            return {}
        try:
            reaped = self.reap()
            restored = self.reconcile()
            return {"reaped": reaped, "restored": restored}
        finally:
            # Release only our own lock (it may have expired and been taken meanwhile).
            if self.client.get(keys.RECOVERY_LOCK) == self.token.encode():
                self.client.delete(keys.RECOVERY_LOCK)

    def _processing_lists(self) -> list[str]:
        names = self.client.scan_iter(match=keys.PROCESSING_PREFIX + ":*", count=500)
        return [n.decode() if isinstance(n, bytes) else n for n in names]

    def reap(self) -> int:
        moved = 0
        for processing in self._processing_lists():
            worker_id = processing[len(keys.PROCESSING_PREFIX) + 1 :]
            if self.client.exists(keys.worker_heartbeat(worker_id)):
                continue
            for raw in self.client.lrange(processing, 0, -1):
                self._reap_one(processing, worker_id, raw)
                moved += 1
        return moved

    def _reap_one(self, processing: str, worker_id: str, raw: bytes) -> None:
        task_id = _task_id(raw)
        status = self.tasks.release_dead(task_id, worker_id, self.max_crashes) if task_id else None
        target = keys.DEAD_LETTER if status == TaskStatus.FAILED else band_of(raw)
        # One transaction: the job is in exactly one list at every moment; back on the queue it
        # goes to the end workers take from, since it has waited already.
        pipe = self.client.pipeline(transaction=True)
        pipe.lrem(processing, 1, raw)
        if target == keys.DEAD_LETTER:
            pipe.lpush(target, raw)
        else:
            push_job(pipe, raw, target, next_up=True)
        pipe.execute()
        log.warning(
            "moved a job off a dead worker's processing list",
            extra={"task_id": task_id, "dead_worker": worker_id, "to": target, "task_status": status},
        )
        if status == TaskStatus.FAILED and task_id:
            user_id = json.loads(raw).get("user_id", "")
            publish_event(
                self.client,
                TaskEvent(
                    task_id, user_id, TaskStatus.FAILED, 0, "worker crashed repeatedly", error_code="worker_crashed"
                ),
            )

    def _held_task_ids(self) -> set[str]:
        """Every task id some list holds. The lists are read one by one while workers move jobs
        (band → processing list on fetch, back on hand-back), so the order matters: the bands,
        then the processing lists as they exist after that (a slot's list may appear meanwhile),
        then the bands again (for jobs handed back meanwhile). A job in flight is seen at least
        once; a miss would only cost a duplicate message, which claims nothing."""
        held: set[str] = set()
        for name in [*keys.QUEUE_BANDS, keys.DEAD_LETTER]:
            held |= self._task_ids_in(name)
        for name in self._processing_lists():
            held |= self._task_ids_in(name)
        for name in keys.QUEUE_BANDS:
            held |= self._task_ids_in(name)
        return held

    def _task_ids_in(self, name: str) -> set[str]:
        return {task_id for raw in self.client.lrange(name, 0, -1) if (task_id := _task_id(raw))}

    def reconcile(self) -> int:
        candidates = self.tasks.live_tasks(self.grace_seconds)
        if not candidates:
            return 0
        held = self._held_task_ids()
        restored = 0
        for task_id, user_id, file_id, language, priority, status, worker_id in candidates:
            if task_id in held:
                continue
            if not self.tasks.requeue_orphan(task_id, status, worker_id):
                continue  # it moved on meanwhile
            message = JobMessage.new(task_id, file_id, user_id, language, priority)
            pipe = self.client.pipeline(transaction=True)
            push_job(pipe, message.to_json(), keys.queue_band(priority), next_up=True)
            pipe.execute()
            restored += 1
            log.warning("re-enqueued a task no Redis list held", extra={"task_id": task_id, "was": status})
        return restored
