"""The worker's side of Redis: reliable fetch into a per-worker processing list, ack, events.

A job is moved atomically (LMOVE, in a script that tries the priority bands most urgent first)
from the queue into this worker's processing list, and only removed from there once its
outcome is recorded in PostgreSQL: a worker killed mid-job leaves the job in its processing
list, where the reaper (worker/recovery.py) finds it. BLMOVE cannot wait on several lists, so
an idle worker blocks on the signal list the API pushes to with every job (BRPOP, 1 s timeout)
and then tries the bands again.
"""

from __future__ import annotations

import json
import time

import redis

from common import keys
from common.events import ANNOUNCE_SCRIPT, TaskEvent, announce_args
from common.job import band_of, push_job

# KEYS = the bands in order, then the processing list. Returns the job moved, or nil.
_FETCH = """
for i = 1, #KEYS - 1 do
    local job = redis.call('LMOVE', KEYS[i], KEYS[#KEYS], 'RIGHT', 'LEFT')
    if job then return job end
end
return false
"""


def publish_event(client: redis.Redis, event: TaskEvent) -> int:
    """Record the task's latest state and tell subscribers; returns the event's sequence number."""
    event_keys, args = announce_args(event)
    return int(client.register_script(ANNOUNCE_SCRIPT)(keys=event_keys, args=args))


class JobQueue:
    def __init__(self, client: redis.Redis, worker_id: str) -> None:
        self.client = client
        self.worker_id = worker_id
        self.processing = keys.processing_list(worker_id)
        self._fetch = client.register_script(_FETCH)

    def _take(self) -> bytes | None:
        return self._fetch(keys=[*keys.QUEUE_BANDS, self.processing]) or None

    def fetch(self, timeout: float) -> bytes | None:
        """Wait up to ``timeout`` seconds for a job; returns its raw message or None."""
        job = self._take()
        if job is None and self.client.brpop([keys.QUEUE_SIGNAL], timeout=timeout) is not None:
            job = self._take()
        return job

    def ack(self, raw: bytes) -> None:
        self.client.lrem(self.processing, 1, raw)

    def give_back(self, raw: bytes) -> None:
        """Return an unfinished job to the consumer end of the queue, atomically."""
        pipe = self.client.pipeline(transaction=True)
        pipe.lrem(self.processing, 1, raw)
        push_job(pipe, raw, band_of(raw), next_up=True)
        pipe.execute()

    def heartbeat(self, ttl_seconds: int, current: tuple[str, float] | None) -> None:
        """I am alive; ``current`` = (task id, start time) of the job in hand, if any."""
        value = {"taskId": current[0], "startedAt": current[1]} if current else {}
        self.client.set(keys.worker_heartbeat(self.worker_id), json.dumps(value), ex=ttl_seconds)

    def retire(self) -> None:
        """A clean exit: stop looking alive at once, so anything left is reaped without delay."""
        self.client.delete(keys.worker_heartbeat(self.worker_id))

    def publish(self, event: TaskEvent) -> None:
        publish_event(self.client, event)


def queue_lengths(client: redis.Redis) -> dict[str, int]:
    """Lengths of every priority band, the dead-letter list and every processing list."""
    pipe = client.pipeline(transaction=False)
    for band in keys.QUEUE_BANDS:
        pipe.llen(band)
    lengths = dict(zip(keys.QUEUE_BANDS, (int(n) for n in pipe.execute()), strict=True))
    lengths[keys.DEAD_LETTER] = int(client.llen(keys.DEAD_LETTER))
    for name in client.scan_iter(match=keys.PROCESSING_PREFIX + ":*", count=100):
        key = name.decode() if isinstance(name, bytes) else name
        lengths[key] = int(client.llen(key))
    return lengths


def live_workers(client: redis.Redis) -> list[dict[str, object]]:
    """Every worker slot whose heartbeat has not expired, across all worker processes, with the
    job it reported at its last heartbeat (a few seconds old at most) and that job's age."""
    prefix = keys.WORKER_HEARTBEAT_PREFIX + ":"
    names = sorted(n.decode() if isinstance(n, bytes) else n for n in client.scan_iter(match=prefix + "*", count=500))
    values = client.mget(names) if names else []
    now = time.time()
    workers: list[dict[str, object]] = []
    for name, raw in zip(names, values, strict=True):
        try:
            beat = json.loads(raw) if raw else {}
        except ValueError:
            beat = {}
        task_id, started = beat.get("taskId"), beat.get("startedAt")
        age = round(now - float(started), 1) if started else None
        workers.append({"slot": name[len(prefix) :], "taskId": task_id, "ageSeconds": age})
    return workers
