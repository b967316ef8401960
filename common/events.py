"""The task event published on Redis pub/sub whenever a task changes (consumed by WebSockets)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from common import keys
from common.statuses import TaskStatus
from common.timeutil import utc_now_iso


@dataclass(frozen=True)
class TaskEvent:
    task_id: str
    user_id: str
    status: TaskStatus
    progress: int
    message: str
    page: int | None = None
    pages: int | None = None
    error_code: str | None = None
    result: dict[str, Any] | None = None
    timestamp: str = field(default_factory=utc_now_iso)

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "taskId": self.task_id,
            "userId": self.user_id,
            "status": str(self.status),
            "progress": self.progress,
            "message": self.message,
            "page": self.page,
            "pages": self.pages,
            "timestamp": self.timestamp,
        }
        if self.error_code:
            data["errorCode"] = self.error_code
        if self.result is not None:
            data["result"] = self.result
        return json.dumps(data, separators=(",", ":"))


# Announcing a task change, atomically: bump the task's sequence number, store the latest state
# (with that number) for cheap status reads and snapshots, and publish the event carrying it.
# One script for the API (asyncio) and the worker (sync): pub/sub delivers in publish order, so
# a subscriber sees each task's numbers rise, and a snapshot's number tells which events it
# already contains. KEYS = status hash, channel name (as a key for clarity); ARGV = event JSON,
# TTL seconds.
ANNOUNCE_SCRIPT = """
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local event = cjson.decode(ARGV[1])
event['seq'] = seq
redis.call('HSET', KEYS[1], 'userId', event['userId'], 'status', event['status'],
           'progress', event['progress'], 'message', event['message'], 'updatedAt', event['timestamp'])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('PUBLISH', KEYS[2], cjson.encode(event))
return seq
"""


def announce_args(event: TaskEvent) -> tuple[list[str], list[str | int]]:
    """(keys, args) for ANNOUNCE_SCRIPT."""
    return [keys.task_status(event.task_id), keys.TASK_EVENTS_CHANNEL], [event.to_json(), keys.TASK_STATUS_TTL_SECONDS]
