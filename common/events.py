"""The task event published on Redis pub/sub whenever a task changes (consumed by WebSockets)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

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

    def status_fields(self) -> dict[str, str | int]:
        """The latest-state hash cached in Redis for cheap status reads."""
        return {
            "userId": self.user_id,
            "status": str(self.status),
            "progress": self.progress,
            "message": self.message,
            "updatedAt": self.timestamp,
        }

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


def queue_announcement(pipe: Any, event: TaskEvent) -> None:
    """Queue on a Redis pipeline (sync or asyncio alike) what announcing a task change takes:
    the latest-state hash for cheap status reads, then the pub/sub event."""
    from common import keys

    status_key = keys.task_status(event.task_id)
    pipe.hset(status_key, mapping=event.status_fields())
    pipe.expire(status_key, keys.TASK_STATUS_TTL_SECONDS)
    pipe.publish(keys.TASK_EVENTS_CHANNEL, event.to_json())
