"""The job message the API pushes to Redis and the worker pops.

It carries only identifiers: PostgreSQL is the source of truth, so the worker claims the task
row and reads the file's details from there, and a stale or duplicated message is harmless.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from common.logs import sane_request_id

MESSAGE_VERSION = 1


class InvalidJobMessageError(ValueError):
    """The bytes popped from the queue are not a job this code understands."""


@dataclass(frozen=True)
class JobMessage:
    task_id: str
    file_id: str
    user_id: str
    language: str
    priority: int
    enqueued_at: str
    v: int = MESSAGE_VERSION
    # The express lane (a priority above PRIORITY_CEILING from a user an operator allowed it):
    # taken before every user's turn in the fair lane. Decided once, when the task is created.
    express: bool = False
    # Where the job comes from, for the worker's log lines and spans. Optional, so messages
    # without them (queued before they existed, or re-queued by the reconciler) still parse.
    request_id: str | None = None
    # The W3C trace context (traceparent, tracestate) of the span that queued the job; empty
    # when tracing is off.
    trace: dict[str, str] = field(default_factory=dict)

    @classmethod
    def new(
        cls, task_id: str, file_id: str, user_id: str, language: str, priority: int, express: bool = False
    ) -> JobMessage:
        return cls(
            task_id=task_id,
            file_id=file_id,
            user_id=user_id,
            language=language,
            priority=priority,
            enqueued_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            express=express,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> JobMessage:
        try:
            data = json.loads(raw)
            message = cls(
                task_id=str(UUID(data["task_id"])),
                file_id=str(UUID(data["file_id"])),
                user_id=str(UUID(data["user_id"])),
                language=str(data["language"]),
                priority=int(data["priority"]),
                enqueued_at=str(data["enqueued_at"]),
                v=int(data.get("v", MESSAGE_VERSION)),
                express=data.get("express", False) is True,
                # Both are best effort: a malformed one is dropped, never the job.
                request_id=sane_request_id(data.get("request_id")),
                trace=_trace_context(data.get("trace")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidJobMessageError(f"not a job message: {exc}") from exc
        if message.v != MESSAGE_VERSION:
            raise InvalidJobMessageError(f"unsupported job message version {message.v}")
        return message


# traceparent is 55 characters; W3C Trace Context asks a tracer to keep 512 of a tracestate.
# Anything much longer, or more headers than a propagator writes, is not a trace context.
_MAX_TRACE_VALUE = 1024
_MAX_TRACE_FIELDS = 8


def _trace_context(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or len(raw) > _MAX_TRACE_FIELDS:
        return {}
    return {
        key: value
        for key, value in raw.items()
        if isinstance(key, str) and isinstance(value, str) and len(value) <= _MAX_TRACE_VALUE
    }


DEFAULT_PRIORITY = 5
