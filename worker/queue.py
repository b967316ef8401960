"""The worker's side of Redis: reliable fetch into a per-worker processing list, ack, events.

A job is moved atomically (BLMOVE) from the queue into this worker's processing list, and only
removed from there once its outcome is recorded in PostgreSQL: a worker killed mid-job leaves
the job in its processing list, where the reaper (worker/recovery.py) finds it.
"""

from __future__ import annotations

import redis

from common import keys
from common.events import TaskEvent


def publish_event(client: redis.Redis, event: TaskEvent) -> None:
    """Cache the task's latest state for cheap status reads, then tell subscribers."""
    pipe = client.pipeline(transaction=False)
    status_key = keys.task_status(event.task_id)
    pipe.hset(status_key, mapping=event.status_fields())
    pipe.expire(status_key, keys.TASK_STATUS_TTL_SECONDS)
    pipe.publish(keys.TASK_EVENTS_CHANNEL, event.to_json())
    pipe.execute()


class JobQueue:
    def __init__(self, client: redis.Redis, worker_id: str) -> None:
        self.client = client
        self.worker_id = worker_id
        self.processing = keys.processing_list(worker_id)

    def fetch(self, timeout: float) -> bytes | None:
        """Block up to ``timeout`` seconds for a job; returns its raw message or None."""
        return self.client.blmove(keys.TASK_QUEUE, self.processing, timeout, src="RIGHT", dest="LEFT")

    def ack(self, raw: bytes) -> None:
        self.client.lrem(self.processing, 1, raw)

    def give_back(self, raw: bytes) -> None:
        """Return an unfinished job to the consumer end of the queue, atomically."""
        pipe = self.client.pipeline(transaction=True)
        pipe.lrem(self.processing, 1, raw)
        pipe.rpush(keys.TASK_QUEUE, raw)
        pipe.execute()

    def heartbeat(self, ttl_seconds: int) -> None:
        self.client.set(keys.worker_heartbeat(self.worker_id), "1", ex=ttl_seconds)

    def publish(self, event: TaskEvent) -> None:
        publish_event(self.client, event)


def queue_lengths(client: redis.Redis) -> dict[str, int]:
    """Lengths of the queue, the dead-letter list and every worker's processing list."""
    lengths = {keys.TASK_QUEUE: int(client.llen(keys.TASK_QUEUE)), keys.DEAD_LETTER: int(client.llen(keys.DEAD_LETTER))}
    for name in client.scan_iter(match=keys.PROCESSING_PREFIX + ":*", count=100):
        key = name.decode() if isinstance(name, bytes) else name
        lengths[key] = int(client.llen(key))
    return lengths


def live_workers(client: redis.Redis) -> list[str]:
    """Worker slots whose heartbeat has not expired, across every worker process."""
    prefix = keys.WORKER_HEARTBEAT_PREFIX + ":"
    names = client.scan_iter(match=prefix + "*", count=500)
    return sorted((n.decode() if isinstance(n, bytes) else n)[len(prefix) :] for n in names)
