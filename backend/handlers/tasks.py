"""Task routes: thin handlers that parse, call one service function and shape the response."""

from __future__ import annotations

from aiohttp import web

from backend import db, queue, storage
from backend.auth import USER_ID
from backend.errors import ApiError
from backend.handlers import params
from backend.resources import DB, REDIS, S3, SETTINGS
from backend.responses import ok, task_json
from backend.uploads import accept_upload
from common import keys
from common.events import TaskEvent
from common.statuses import TaskStatus
from common.timeutil import iso_utc

MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4's own ceiling


def _not_found() -> ApiError:
    # Also the answer for another user's task: never confirm that it exists.
    return ApiError(404, "task_not_found", "no such task")


async def create_task(request: web.Request) -> web.Response:
    accepted = await accept_upload(request, request[USER_ID])
    rec = accepted.record
    return ok(
        {
            "taskId": rec.task_id,
            "fileId": rec.file_id,
            "filename": rec.original_filename,
            "fileSize": rec.size_bytes,
            "mimeType": rec.mime_type,
            "s3Key": rec.s3_key,
            "fileHash": rec.sha256,
            "status": str(TaskStatus.QUEUED),
            "priority": rec.priority,
            "language": rec.language,
            "queuePosition": accepted.queue_position,
            "createdAt": iso_utc(rec.created_at),
        },
        status=202,
    )


async def list_tasks(request: web.Request) -> web.Response:
    limit = params.int_query(request, "limit", 50, 1, 100)
    offset = params.int_query(request, "offset", 0, 0, 1_000_000)
    status = params.status_query(request)
    rows, total = await db.list_tasks(request.app[DB], request[USER_ID], status, limit, offset)
    return ok({"tasks": [task_json(r) for r in rows], "total": total, "limit": limit, "offset": offset})


async def get_task(request: web.Request) -> web.Response:
    row = await db.get_task(request.app[DB], request[USER_ID], params.task_id(request))
    if row is None:
        raise _not_found()
    url = None
    if row["status"] == TaskStatus.COMPLETED and row["s3_result_key"]:
        settings = request.app[SETTINGS]
        url = await storage.presign_result_url(
            request.app[S3], settings, row["s3_result_key"], settings.presign_expires_seconds
        )
    return ok(task_json(row, url))


async def get_task_status(request: web.Request) -> web.Response:
    task_id = params.task_id(request)
    user_id = request[USER_ID]
    cached = await queue.cached_status(request.app[REDIS], task_id)
    if cached is not None and cached.get("userId") == user_id:
        return ok(
            {
                "taskId": task_id,
                "status": cached["status"],
                "progress": int(cached["progress"]),
                "message": cached.get("message"),
                "updatedAt": cached.get("updatedAt"),
            }
        )
    row = await db.get_task_status(request.app[DB], user_id, task_id)
    if row is None:
        raise _not_found()
    return ok(
        {
            "taskId": task_id,
            "status": row["status"],
            "progress": row["progress"],
            "message": None,
            "updatedAt": iso_utc(row["updated_at"]),
        }
    )


async def get_task_result(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    expires_in = params.int_query(request, "expiresIn", settings.presign_expires_seconds, 60, MAX_PRESIGN_SECONDS)
    row = await db.get_task(request.app[DB], request[USER_ID], params.task_id(request))
    if row is None:
        raise _not_found()
    fmt = request.query.get("format", "html")
    if fmt not in keys.RESULT_FORMATS:
        raise ApiError(400, "invalid_format", f"format must be one of {', '.join(keys.RESULT_FORMATS)}")
    if row["status"] != TaskStatus.COMPLETED or not row["s3_result_key"]:
        raise ApiError(409, "result_not_ready", f"the task is {row['status']}; the result exists once it is completed")
    key = keys.result_variant(row["s3_result_key"], fmt)
    url = await storage.presign_result_url(request.app[S3], settings, key, expires_in)
    return ok({"taskId": str(row["task_id"]), "resultUrl": url, "expiresIn": expires_in, "format": fmt})


async def cancel_task(request: web.Request) -> web.Response:
    task_id, user_id = params.task_id(request), request[USER_ID]
    status = await db.request_cancel(request.app[DB], user_id, task_id)
    if status is None:
        row = await db.get_task_status(request.app[DB], user_id, task_id)
        if row is None:
            raise _not_found()
        raise ApiError(409, "task_not_cancellable", f"the task is already {row['status']}")
    if status == TaskStatus.CANCELLED:
        await queue.announce(request.app[REDIS], TaskEvent(task_id, user_id, TaskStatus.CANCELLED, 0, "cancelled"))
    row = await db.get_task(request.app[DB], user_id, task_id)
    assert row is not None
    data = task_json(row)
    data["cancelRequested"] = True
    return ok(data, status=202 if status == TaskStatus.PROCESSING else 200)
