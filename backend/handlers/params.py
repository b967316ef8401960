"""Validation of path and query parameters: a malformed value is a 400 that names it."""

from __future__ import annotations

import uuid

from aiohttp import web

from backend.errors import ApiError
from common.statuses import TaskStatus


def task_id(request: web.Request) -> str:
    raw = request.match_info["task_id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise ApiError(400, "invalid_task_id", "taskId must be a UUID") from None


def int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"invalid_{name.lower()}", f"{name} must be an integer from {low} to {high}") from None
    if not low <= value <= high:
        raise ApiError(400, f"invalid_{name.lower()}", f"{name} must be an integer from {low} to {high}")
    return value


def status_query(request: web.Request) -> str | None:
    raw = request.query.get("status")
    if not raw:
        return None
    try:
        return str(TaskStatus(raw))
    except ValueError:
        allowed = ", ".join(s.value for s in TaskStatus)
        raise ApiError(400, "invalid_status", f"status must be one of {allowed}") from None
