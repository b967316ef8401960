"""The worker's side of Redis: reliable fetch into a per-worker processing list, ack, events.

A job is moved atomically (BLMOVE) from the queue into this worker's processing list, and only
removed from there once its outcome is recorded in PostgreSQL: a worker killed mid-job leaves
the job in its processing list instead of losing it.
"""

from __future__ import annotations

import redis

from common import keys
from common.events import TaskEvent


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

    def heartbeat(self, ttl_seconds: int) -> None:
        self.client.set(keys.worker_heartbeat(self.worker_id), "1", ex=ttl_seconds)

    def publish(self, event: TaskEvent) -> None:
        """Cache the task's latest state for cheap status reads, then tell subscribers."""
        pipe = self.client.pipeline(transaction=False)
        status_key = keys.task_status(event.task_id)
        pipe.hset(status_key, mapping=event.status_fields())
        pipe.expire(status_key, keys.TASK_STATUS_TTL_SECONDS)
        pipe.publish(keys.TASK_EVENTS_CHANNEL, event.to_json())
        pipe.execute()


def queue_lengths(client: redis.Redis) -> dict[str, int]:
    """Lengths of the queue and of every worker's processing list."""
    lengths = {keys.TASK_QUEUE: int(client.llen(keys.TASK_QUEUE))}
    for name in client.scan_iter(match=keys.PROCESSING_PREFIX + ":*", count=100):
        key = name.decode() if isinstance(name, bytes) else name
        lengths[key] = int(client.llen(key))
    return lengths
