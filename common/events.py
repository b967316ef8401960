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
    tag: str | None = None  # None: the announce script fills in the tag the task was given
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
        if self.tag is not None:
            data["tag"] = self.tag
        return json.dumps(data, separators=(",", ":"))
