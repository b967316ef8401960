"""The success envelope and the JSON shapes of API objects (camelCase, ISO-8601 UTC)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import asyncpg
from aiohttp import web, web_response

from common.timeutil import iso_utc

# What every answer's Server header says: no product versions to look up in a list of known flaws.
SERVER_HEADER = "untxt"


def hide_server_version() -> None:
    """Make aiohttp name the server SERVER_HEADER instead of ``Python/3.x aiohttp/3.y``.

    aiohttp has no option for it. Its default comes from this module-level name, read for every
    response it writes, which also covers the answers it gives before any route is matched (a
    malformed request's 400), where on_response_prepare hooks never run. Process-wide, and the
    same value every time, so calling it once per app is harmless.
    """
    web_response.SERVER_SOFTWARE = SERVER_HEADER


def ok(data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"success": True, "data": data}, status=status, headers=headers)


def accepted(data: dict[str, Any], task_id: str) -> web.Response:
    """202: the work goes on; ``Location`` is where to follow it (RFC 9110 §15.3.3)."""
    return ok(data, status=202, headers={"Location": f"/api/tasks/{task_id}"})


def etag_of(state: dict[str, Any]) -> str:
    """A weak validator of a representation's state (weak: equal state, not equal bytes)."""
    digest = hashlib.sha256(json.dumps(state, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()
    return f'W/"{digest[:32]}"'


def conditional_ok(request: web.Request, data: dict[str, Any], etag: str) -> web.Response:
    """200 with ``ETag``, or 304 without a body when the client's ``If-None-Match`` has it.

    If-None-Match compares weakly (RFC 9110 §13.1.2), and ``*`` matches any representation.
    """
    # private: answers depend on the key; no-cache: a cache must revalidate before reuse.
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    wanted = request.if_none_match or ()
    value = etag.removeprefix("W/").strip('"')
    if any(tag.value in ("*", value) for tag in wanted):
        return web.Response(status=304, headers=headers)
    return ok(data, headers=headers)


def task_json(row: asyncpg.Record, result_url: str | None = None) -> dict[str, Any]:
    error = {"code": row["error_code"], "message": row["error_message"]} if row["error_code"] else None
    return {
        "taskId": str(row["task_id"]),
        "status": row["status"],
        "priority": row["priority"],
        "language": row["language"],
        "tag": row["tag"],
        "progress": row["progress"],
        "attempts": row["attempts"],
        "file": {
            "fileId": str(row["file_id"]),
            "filename": row["original_filename"],
            "mimeType": row["mime_type"],
            "fileSize": row["size_bytes"],
            "fileHash": row["sha256"],
            "s3Key": row["s3_key"],
        },
        "result": row["result"],
        "error": error,
        "resultUrl": result_url,
        "createdAt": iso_utc(row["created_at"]),
        "startedAt": iso_utc(row["started_at"]),
        "completedAt": iso_utc(row["completed_at"]),
        "updatedAt": iso_utc(row["updated_at"]),
    }
