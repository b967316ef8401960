"""Typed views of the API's JSON (camelCase on the wire, snake_case here).

Each model keeps the server's own dict as ``raw`` (left out of comparisons), so a program can
reach a field this client does not know yet and ``--json`` output is exactly what the API said.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

# The result formats the API documents; the server validates the one asked for, so a format
# it adds is usable before this list knows it.
RESULT_FORMATS = ("html", "txt", "json", "pdf", "hocr", "alto")


class Status(StrEnum):
    """A task's status. The client is installed without the server's packages, so this is its
    own copy of common/statuses.py's TaskStatus (a unit test keeps the two equal)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class TaskError:
    code: str
    message: str


@dataclass(frozen=True)
class FileInfo:
    file_id: str
    filename: str
    mime_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Task:
    """A task as ``GET /api/tasks/{id}`` and the list describe it."""

    task_id: str
    status: Status
    priority: int
    language: str
    tag: str | None
    progress: int
    attempts: int
    file: FileInfo
    result: dict[str, Any] | None  # the summary: pages, characters, words, meanConfidence, ...
    error: TaskError | None
    result_url: str | None  # presigned HTML result, once completed
    queue_position: int | None
    created_at: datetime
    updated_at: datetime | None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Task:
        f = data["file"]
        error = data.get("error")
        return cls(
            task_id=data["taskId"],
            status=Status(data["status"]),
            priority=data["priority"],
            language=data["language"],
            tag=data.get("tag"),
            progress=data["progress"],
            attempts=data["attempts"],
            file=FileInfo(f["fileId"], f["filename"], f["mimeType"], f["fileSize"], f["fileHash"]),
            result=data.get("result"),
            error=TaskError(error["code"], error["message"]) if error else None,
            result_url=data.get("resultUrl"),
            queue_position=data.get("queuePosition"),
            created_at=datetime.fromisoformat(data["createdAt"]),
            updated_at=_time(data.get("updatedAt")),
            started_at=_time(data.get("startedAt")),
            completed_at=_time(data.get("completedAt")),
            raw=data,
        )


@dataclass(frozen=True)
class Upload:
    """An accepted upload (202), or the earlier task a repeated Idempotency-Key stands for."""

    task_id: str
    file_id: str
    filename: str
    size: int
    mime_type: str
    sha256: str
    status: Status
    priority: int
    language: str
    tag: str | None
    queue_position: int | None
    created_at: datetime
    replayed: bool = False  # True: the answer to a repeated Idempotency-Key, nothing new stored
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Upload:
        if "file" in data:  # a replay answers with the task's own shape
            task = Task.from_json(data)
            return cls(
                task.task_id,
                task.file.file_id,
                task.file.filename,
                task.file.size,
                task.file.mime_type,
                task.file.sha256,
                task.status,
                task.priority,
                task.language,
                task.tag,
                task.queue_position,
                task.created_at,
                replayed=bool(data.get("idempotentReplay")),
                raw=data,
            )
        return cls(
            task_id=data["taskId"],
            file_id=data["fileId"],
            filename=data["filename"],
            size=data["fileSize"],
            mime_type=data["mimeType"],
            sha256=data["fileHash"],
            status=Status(data["status"]),
            priority=data["priority"],
            language=data["language"],
            tag=data.get("tag"),
            queue_position=data.get("queuePosition"),
            created_at=datetime.fromisoformat(data["createdAt"]),
            raw=data,
        )


@dataclass(frozen=True)
class BatchItem:
    """One file of a batch: its upload, or why it was refused (``error_code`` + message)."""

    index: int
    filename: str
    upload: Upload | None
    error_code: str | None = None
    error_message: str | None = None
    error_status: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchItem:
        if data["success"]:
            return cls(data["index"], data["filename"], Upload.from_json(data["data"]))
        error = data["error"]
        return cls(data["index"], data["filename"], None, error["code"], error["message"], error.get("status"))


@dataclass(frozen=True)
class TaskState:
    """``GET /api/tasks/{id}/status``: the cheap read."""

    task_id: str
    status: Status
    progress: int
    message: str | None
    tag: str | None
    queue_position: int | None
    updated_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskState:
        return cls(
            task_id=data["taskId"],
            status=Status(data["status"]),
            progress=data["progress"],
            message=data.get("message"),
            tag=data.get("tag"),
            queue_position=data.get("queuePosition"),
            updated_at=_time(data.get("updatedAt")),
            raw=data,
        )


@dataclass(frozen=True)
class TaskPage:
    """One page of the list; ``next_cursor`` fetches the next (None on the last page)."""

    tasks: list[Task]
    total: int
    limit: int
    next_cursor: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskPage:
        return cls([Task.from_json(t) for t in data["tasks"]], data["total"], data["limit"], data.get("next"), data)


@dataclass(frozen=True)
class ResultLink:
    """A presigned URL of one result format (no credentials needed to fetch it)."""

    task_id: str
    url: str
    expires_in: int
    format: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResultLink:
        return cls(data["taskId"], data["resultUrl"], data["expiresIn"], data["format"], data)


@dataclass(frozen=True)
class Deletion:
    """What ``delete`` removed: the task's rows, its upload and its result objects."""

    task_id: str
    objects_deleted: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deletion:
        return cls(data["taskId"], data["objectsDeleted"], data)


@dataclass(frozen=True)
class TaskUpdate:
    """A live change of a task (WebSocket ``task_update``, or a poll of its status)."""

    task_id: str
    status: Status
    progress: int
    message: str | None = None
    tag: str | None = None
    page: int | None = None
    pages: int | None = None
    error_code: str | None = None
    result: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskUpdate:
        return cls(
            task_id=data["taskId"],
            status=Status(data["status"]),
            progress=data["progress"],
            message=data.get("message"),
            tag=data.get("tag"),
            page=data.get("page"),
            pages=data.get("pages"),
            error_code=data.get("errorCode"),
            result=data.get("result"),
            raw=data,
        )

    @classmethod
    def from_state(cls, state: TaskState) -> TaskUpdate:
        return cls(state.task_id, state.status, state.progress, state.message, state.tag, raw=state.raw)


@dataclass(frozen=True)
class UploadProgress:
    """Bytes of one file handed to the connection so far (``index`` = its place in a batch)."""

    index: int
    filename: str
    sent: int
    total: int
