"""Getting every job done despite dead workers and lost Redis data.

* The reaper visits the processing lists of slots whose heartbeat has expired and puts their
  jobs back on the queue (Sidekiq super_fetch / RQ intermediate-queue style). A job whose task
  has now killed ``max_worker_crashes`` workers goes to the dead letters instead, its task
  failed with ``worker_crashed``.
* The reconciler compares PostgreSQL (the source of truth) with Redis: a queued or processing
  task that no Redis list holds (after a Redis restart or flush, or a crash between steps) is
  reset to queued and enqueued again.

Every worker process runs both periodically; a Redis lock makes sure only one does at a time.
A process never reaps its own slots: they are alive while it runs, even when a stall (CPU
starvation, a long GC) let their heartbeats lapse, and a slot's first heartbeat may trail its
first fetch by a moment at start-up.
"""

from __future__ import annotations

import logging
import uuid

from common.events import TaskEvent
from common.job import InvalidJobMessageError, JobMessage
from common.jobqueue import JobQueue
from common.statuses import TaskStatus
from worker.db import TaskStore

log = logging.getLogger("untxt.worker.recovery")


class Recovery:
    def __init__(
        self,
        queue: JobQueue,
        tasks: TaskStore,
        max_crashes: int,
        grace_seconds: int,
        own_slots: frozenset[str] = frozenset(),
    ) -> None:
        """``own_slots``: the slots of the process running this recovery, never reaped by it."""
        self.queue = queue
        self.tasks = tasks
        self.max_crashes = max_crashes
        self.grace_seconds = grace_seconds
        self.own_slots = own_slots
        self.token = uuid.uuid4().hex

    def run_once(self, lock_seconds: int = 60) -> dict[str, int]:
        """One reaper + reconciler pass, if no other worker is running one."""
        if not self.queue.lock(self.token, lock_seconds):
            return {}
        try:
            return {"reaped": self.reap(), "restored": self.reconcile()}
        finally:
            self.queue.unlock(self.token)

    def reap(self) -> int:
        moved = 0
        for slot_id in self.queue.dead_slots(self.own_slots):
            for raw in self.queue.messages(slot_id):
                moved += self._reap_one(slot_id, raw)
            self.queue.forget_slot(slot_id)
        return moved

    def _reap_one(self, slot_id: str, raw: bytes) -> int:
        try:
            message = JobMessage.from_json(raw)
        except InvalidJobMessageError:
            log.error("burying an unreadable message from a dead slot", extra={"slot_id": slot_id, "raw": raw[:200]})
            return int(self.queue.bury(slot_id, raw))
        status = self.tasks.release_dead(message.task_id, slot_id, self.max_crashes)
        if status == TaskStatus.FAILED:
            moved = self.queue.bury(slot_id, raw)
            self.queue.announce(
                TaskEvent(
                    message.task_id,
                    message.user_id,
                    TaskStatus.FAILED,
                    0,
                    "worker crashed repeatedly",
                    error_code="worker_crashed",
                )
            )
        else:
            # Back to the end workers take from, since it has waited already. When the task was
            # not that slot's (None: the slot died between taking the message and claiming the
            # task, or the message was a duplicate), the message goes back all the same: a
            # claim decides.
            moved = self.queue.hand_back(slot_id, raw)
        log.warning(
            "moved a job off a dead slot's processing list",
            extra={
                "task_id": message.task_id,
                "dead_slot": slot_id,
                "to": "dead letters" if status == TaskStatus.FAILED else "queue",
                "task_status": status,
                "moved": moved,
            },
        )
        return int(moved)

    def reconcile(self) -> int:
        candidates = self.tasks.live_tasks(self.grace_seconds)
        if not candidates:
            return 0
        # One atomic read of every list, after the candidates: a job moving between lists is seen
        # once, and a task that moved on since the candidates were read is left alone by the
        # conditional requeue below.
        held = self.queue.holdings()
        restored = 0
        for task in candidates:
            task_id = task.message.task_id
            if task_id in held:
                continue
            if not self.tasks.requeue_orphan(task_id, task.status, task.slot_id):
                continue  # it moved on meanwhile
            self.queue.enqueue(task.message, next_up=True)
            restored += 1
            log.warning("re-enqueued a task no Redis list held", extra={"task_id": task_id, "was": task.status})
        return restored
