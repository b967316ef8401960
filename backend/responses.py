"""The success envelope and the JSON shapes of API objects (camelCase, ISO-8601 UTC)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from common.timeutil import iso_utc


def ok(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response({"success": True, "data": data}, status=status)


def task_json(row: asyncpg.Record, result_url: str | None = None) -> dict[str, Any]:
    error = {"code": row["error_code"], "message": row["error_message"]} if row["error_code"] else None
    return {
        "taskId": str(row["task_id"]),
        "status": row["status"],
        "priority": row["priority"],
        "language": row["language"],
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
