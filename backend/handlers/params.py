"""Validation of path and query parameters: a malformed value is a 400 that names it."""

from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web

from backend.errors import ApiError
from backend.pagination import decode_cursor
from backend.uploads import parse_tag
from common import keys
from common.statuses import TaskStatus


def task_id(request: web.Request) -> str:
    raw = request.match_info["task_id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise ApiError(400, "invalid_task_id", "taskId must be a UUID") from None


def _single(request: web.Request, name: str) -> str | None:
    """The parameter's one value; given twice it is ambiguous (which would a proxy or cache use?)."""
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise ApiError(400, f"invalid_{name.lower()}", f"{name} is given {len(values)} times; give it once")
    return values[0] if values else None


def int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = _single(request, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"invalid_{name.lower()}", f"{name} must be an integer from {low} to {high}") from None
    if not low <= value <= high:
        raise ApiError(400, f"invalid_{name.lower()}", f"{name} must be an integer from {low} to {high}")
    return value


def status_query(request: web.Request) -> str | None:
    raw = _single(request, "status")
    if not raw:
        return None
    try:
        return str(TaskStatus(raw))
    except ValueError:
        allowed = ", ".join(s.value for s in TaskStatus)
        raise ApiError(400, "invalid_status", f"status must be one of {allowed}") from None


def tag_query(request: web.Request) -> str | None:
    return parse_tag(_single(request, "tag") or "")


def cursor_query(request: web.Request) -> tuple[datetime, str] | None:
    raw = _single(request, "cursor")
    return decode_cursor(raw) if raw else None


def format_query(request: web.Request) -> str:
    fmt = _single(request, "format") or keys.RESULT_PRIMARY
    if fmt not in keys.RESULT_FORMATS:
        raise ApiError(400, "invalid_format", f"format must be one of {', '.join(keys.RESULT_FORMATS)}")
    return fmt
