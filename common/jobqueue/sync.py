"""The worker's face of the job protocol (redis-py; one per process, shared by its threads).

Reliable fetch in the manner of RQ's intermediate queue and Sidekiq's super_fetch: a job moves
atomically from its band into the taking slot's processing list and leaves it only once its
outcome is recorded in PostgreSQL (ack), or moves back to the band (hand back), or — from a dead
slot's list — back to the band or to the dead letters (the reaper, worker/recovery.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import TypeVar

import redis

from common.events import TaskEvent
from common.job import JobMessage
from common.jobqueue import calls
from common.jobqueue.calls import Call, Face, QueueStats
from common.jobqueue.names import RedisNames

T = TypeVar("T")

PASS_OVER_POLL_SECONDS = 0.25


class JobQueue(Face):
    client: redis.Redis

    def __init__(self, client: redis.Redis, names: RedisNames) -> None:
        super().__init__(client, names)

    def _run(self, call: Call[T]) -> T:
        return call.parse(self._script(call)(keys=call.keys, args=call.args))

    # Jobs.
    def enqueue(self, message: JobMessage, next_up: bool = False) -> int:
        return self._run(calls.enqueue(self.names, message, next_up=next_up))

    def fetch(self, slot_id: str, timeout: float, pass_over: Iterable[str] = ()) -> bytes | None:
        """The next job, moved into the slot's processing list; waits up to ``timeout`` seconds.
        Users in ``pass_over`` are not served (they hold their share of the caller's slots).

        A script cannot block, and BLMOVE waits on one list only, so an idle slot waits on the
        wake-up list the enqueuers push to (BRPOP), then looks again. While passed-over users'
        jobs wait, it looks again every PASS_OVER_POLL_SECONDS at most: their wake-up tokens say
        nothing about other users' jobs.
        """
        job = self.try_fetch(slot_id, pass_over)
        if isinstance(job, bytes):
            return job
        if self.wait_for_work(timeout, others_wait=job == calls.OTHERS_WAIT):
            job = self.try_fetch(slot_id, pass_over)
        return job if isinstance(job, bytes) else None

    def try_fetch(self, slot_id: str, pass_over: Iterable[str] = ()) -> bytes | str | None:
        """One look, no waiting: the job (bytes), ``calls.OTHERS_WAIT`` when only passed-over
        users' jobs wait, or None."""
        return self._run(calls.fetch(self.names, slot_id, pass_over))

    def wait_for_work(self, timeout: float, others_wait: bool = False) -> bool:
        """Wait for an enqueue's wake-up token (at most PASS_OVER_POLL_SECONDS while passed-over
        users' jobs wait); True if one came."""
        wait = min(timeout, PASS_OVER_POLL_SECONDS) if others_wait else timeout
        return self.client.brpop([self.names.signal], timeout=wait) is not None

    def ack(self, slot_id: str, raw: bytes) -> None:
        """The job's outcome is recorded: it leaves the processing list."""
        self.client.lrem(self.names.processing(slot_id), 1, raw)

    def hand_back(self, slot_id: str, raw: bytes) -> bool:
        """Back to the taking end of its band, unfinished; False if it was not in the list."""
        return self._run(calls.hand_back(self.names, slot_id, raw))

    def bury(self, slot_id: str, raw: bytes) -> bool:
        """Onto the dead letters; False if it was not in the list."""
        return self._run(calls.bury(self.names, slot_id, raw))

    def holdings(self) -> set[str]:
        return self._run(calls.holdings(self.names))

    def status(self, task_id: str) -> dict[str, str] | None:
        """The cached state of a task (with ``queuePosition`` while queued), or None if not cached."""
        return self._run(calls.status(self.names, task_id))

    def stats(self) -> QueueStats:
        return self._run(calls.stats(self.names))

    def announce(self, event: TaskEvent) -> int:
        """Record the task's latest state and tell subscribers; returns the event's number."""
        return self._run(calls.announce(self.names, event))

    # Slots.
    def heartbeat(self, slot_id: str, ttl_seconds: int, current: tuple[str, float] | None) -> None:
        """The slot is alive; ``current`` = (task id, start time) of the job in hand, if any."""
        value = {"taskId": current[0], "startedAt": current[1]} if current else {}
        self.client.set(self.names.heartbeat(slot_id), json.dumps(value), ex=ttl_seconds)

    def retire(self, slot_id: str) -> None:
        """A clean exit: stop looking alive at once, so anything left is reaped without delay."""
        self.client.delete(self.names.heartbeat(slot_id))
        self.forget_slot(slot_id)

    def dead_slots(self, own: frozenset[str]) -> list[str]:
        """Slots with a processing list and no heartbeat, except ``own`` (the caller's, which are
        alive as long as it runs, whatever their heartbeat says)."""
        slots = sorted(s for s in (_text(n) for n in self.client.smembers(self.names.processing_slots)) if s not in own)
        if not slots:
            return []
        pipe = self.client.pipeline(transaction=False)
        for slot in slots:
            pipe.exists(self.names.heartbeat(slot))
        return [slot for slot, alive in zip(slots, pipe.execute(), strict=True) if not alive]

    def messages(self, slot_id: str) -> list[bytes]:
        return list(self.client.lrange(self.names.processing(slot_id), 0, -1))

    def forget_slot(self, slot_id: str) -> bool:
        return self._run(calls.forget_slot(self.names, slot_id))

    def live_slots(self) -> list[dict[str, object]]:
        """Every slot whose heartbeat has not expired, across all worker processes, with the job
        it reported at its last heartbeat (a few seconds old at most) and that job's age."""
        prefix = self.names.heartbeat_prefix + ":"
        names = sorted(_text(n) for n in self.client.scan_iter(match=prefix + "*", count=500))
        values = self.client.mget(names) if names else []
        now = time.time()
        slots: list[dict[str, object]] = []
        for name, raw in zip(names, values, strict=True):
            try:
                beat = json.loads(raw) if raw else {}
            except ValueError:
                beat = {}
            task_id, started = beat.get("taskId"), beat.get("startedAt")
            age = round(now - float(started), 1) if started else None
            slots.append({"slot": name[len(prefix) :], "taskId": task_id, "ageSeconds": age})
        return slots

    # The recovery pass runs in one worker at a time.
    def lock(self, token: str, seconds: int) -> bool:
        return bool(self.client.set(self.names.recovery_lock, token, nx=True, ex=seconds))

    def unlock(self, token: str) -> None:
        self._run(calls.release_lock(self.names, token))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
