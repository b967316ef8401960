"""Task routes: thin handlers that parse, call one service function and shape the response."""

from __future__ import annotations

import time
from typing import Any, NoReturn

import asyncpg
from aiohttp import web

from backend import db, storage
from backend.auth import USER_ID
from backend.errors import ApiError, error_response
from backend.handlers import params
from backend.pagination import MAX_OFFSET, MAX_PAGE_SIZE, encode_cursor
from backend.removal import TaskProcessingError, remove_task
from backend.resources import DB, QUEUE, S3, SETTINGS
from backend.responses import accepted, conditional_ok, etag_of, ok, task_json
from backend.uploads import (
    MAX_BATCH_FILES,
    AcceptedUpload,
    accept_batch,
    accept_upload,
    idempotency_key,
    quota_exceeded,
    take_token,
)
from common import keys
from common.events import TaskEvent
from common.job import JobMessage
from common.settings import PRESIGN_MIN_SECONDS
from common.statuses import TaskStatus
from common.timeutil import iso_utc


def _not_found() -> ApiError:
    # Also the answer for another user's task: never confirm that it exists.
    return ApiError(404, "task_not_found", "no such task")


async def _own_task(request: web.Request) -> asyncpg.Record:
    row = await db.get_task(request.app[DB], request[USER_ID], params.task_id(request))
    if row is None:
        raise _not_found()
    return row


async def _refuse(request: web.Request, task_id: str, code: str, rule: str) -> NoReturn:
    """A state change did not apply: 404 if the task is not the caller's, else 409 saying why."""
    row = await db.get_task_status(request.app[DB], request[USER_ID], task_id)
    if row is None:
        raise _not_found()
    raise ApiError(409, code, f"{rule}; the task is {row['status']}")


async def _position(request: web.Request, row: asyncpg.Record) -> int | None:
    if row["status"] != TaskStatus.QUEUED:
        return None
    return await request.app[QUEUE].position(str(row["task_id"]))


def _upload_json(accepted: AcceptedUpload) -> dict[str, Any]:
    rec = accepted.record
    return {
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
        "tag": rec.tag,
        "queuePosition": accepted.queue_position,
        "createdAt": iso_utc(rec.created_at),
    }


async def _replay(request: web.Request, task_id: str) -> web.Response:
    """The answer to a repeated Idempotency-Key: the original task, as it is now."""
    row = await db.get_task(request.app[DB], request[USER_ID], task_id)
    assert row is not None
    data = task_json(row)
    data["queuePosition"] = await _position(request, row)
    data["idempotentReplay"] = True
    return ok(data, status=200)


async def create_task(request: web.Request) -> web.Response:
    user_id = request[USER_ID]
    idem = idempotency_key(request)
    await take_token(request, user_id)
    # A repeated Idempotency-Key is answered only after the body is read: the repeat must ask
    # for the same file and fields as the first request (accept_upload compares them).
    upload = await accept_upload(request, user_id, idem)
    if isinstance(upload, str):
        return await _replay(request, upload)
    return accepted(_upload_json(upload), upload.record.task_id)


async def create_batch(request: web.Request) -> web.Response:
    user_id = request[USER_ID]
    await take_token(request, user_id)
    outcomes = await accept_batch(request, user_id)
    results: list[dict[str, Any]] = []
    # No Location: a batch creates several tasks; each result's data names its own.
    for index, (name, outcome) in enumerate(outcomes):
        if isinstance(outcome, ApiError):
            error = {"code": outcome.code, "message": outcome.message, "status": outcome.status}
            results.append({"index": index, "filename": name, "success": False, "error": error})
        else:
            results.append({"index": index, "filename": name, "success": True, "data": _upload_json(outcome)})
    accepted = sum(1 for r in results if r["success"])
    if not accepted:
        # Nothing to follow: an error envelope like any refusal, with each file's reason.
        return error_response(400, "no_file_accepted", "no file of the batch was accepted", results=results)
    return ok(
        {"results": results, "accepted": accepted, "rejected": len(results) - accepted, "maxFiles": MAX_BATCH_FILES},
        status=202,
    )


async def list_tasks(request: web.Request) -> web.Response:
    after = params.cursor_query(request)
    query = db.TaskQuery(
        status=params.status_query(request),
        tag=params.tag_query(request),
        limit=params.int_query(request, "limit", 50, 1, MAX_PAGE_SIZE),
        offset=params.int_query(request, "offset", 0, 0, MAX_OFFSET),
        after=after,
    )
    if after is not None and query.offset:
        raise ApiError(400, "invalid_cursor", "send either cursor or offset, not both")
    rows, total, more = await db.list_tasks(request.app[DB], request[USER_ID], query)
    cursor = encode_cursor(rows[-1]["created_at"], str(rows[-1]["task_id"])) if more else None
    return ok(
        {
            "tasks": [task_json(r) for r in rows],
            "total": total,
            "limit": query.limit,
            "offset": query.offset,
            "next": cursor,
        }
    )


async def get_task(request: web.Request) -> web.Response:
    row = await _own_task(request)
    settings = request.app[SETTINGS]
    url, window = None, None
    if row["status"] == TaskStatus.COMPLETED and row["s3_result_key"]:
        url = await storage.presign_result_url(
            request.app[S3], settings, row["s3_result_key"], settings.presign_expires_seconds
        )
        # The URL is signed anew on every read, so it is no part of the validator; instead the
        # validator changes every half URL lifetime, so a representation revalidated with 304
        # never holds a URL with less than half its lifetime left.
        window = int(time.time()) // max(1, settings.presign_expires_seconds // 2)
    data = task_json(row, url)
    data["queuePosition"] = await _position(request, row)
    return conditional_ok(request, data, etag_of({**data, "resultUrl": window}))


async def get_task_status(request: web.Request) -> web.Response:
    """The cheap path: Redis's cached state first (owner checked), PostgreSQL otherwise."""
    task_id = params.task_id(request)
    user_id = request[USER_ID]
    cached = await request.app[QUEUE].status(task_id)
    if cached is not None and cached.get("userId") == user_id:
        status, progress = cached["status"], int(cached.get("progress", 0))
        message, updated, tag = cached.get("message"), cached.get("updatedAt"), cached.get("tag")
        position = int(cached["queuePosition"]) if "queuePosition" in cached else None
    else:
        row = await db.get_task_status(request.app[DB], user_id, task_id)
        if row is None:
            raise _not_found()
        # No cached state means no cached job message either, so no position to report.
        status, progress, message, updated = row["status"], row["progress"], None, iso_utc(row["updated_at"])
        position, tag = None, row["tag"]
    data = {
        "taskId": task_id,
        "status": status,
        "progress": progress,
        "message": message,
        "tag": tag,
        "queuePosition": position,
        "updatedAt": updated,
    }
    return conditional_ok(request, data, etag_of(data))


async def get_task_result(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    expires_in = params.int_query(
        request, "expiresIn", settings.presign_expires_seconds, PRESIGN_MIN_SECONDS, settings.presign_max_seconds
    )
    fmt = params.format_query(request)
    row = await _own_task(request)
    if row["status"] != TaskStatus.COMPLETED or not row["s3_result_key"]:
        raise ApiError(409, "result_not_ready", f"the task is {row['status']}; the result exists once it is completed")
    stored = (row["result"] or {}).get("formats") or keys.LEGACY_RESULT_FORMATS
    if fmt not in stored:
        raise ApiError(
            404,
            "format_not_available",
            f"this task was completed before the {fmt} format existed; it has {', '.join(stored)} "
            "(upload the file again for every format)",
        )
    key = keys.result_variant(row["s3_result_key"], fmt)
    url = await storage.presign_result_url(request.app[S3], settings, key, expires_in)
    return ok({"taskId": str(row["task_id"]), "resultUrl": url, "expiresIn": expires_in, "format": fmt})


async def cancel_task(request: web.Request) -> web.Response:
    task_id, user_id = params.task_id(request), request[USER_ID]
    status = await db.request_cancel(request.app[DB], user_id, task_id)
    if status is None:
        await _refuse(request, task_id, "task_not_cancellable", "only queued or processing tasks can be cancelled")
    row = await _own_task(request)
    if status == TaskStatus.CANCELLED:
        await request.app[QUEUE].withdraw(task_id)
        event = TaskEvent(task_id, user_id, TaskStatus.CANCELLED, 0, "cancelled", tag=row["tag"])
        await request.app[QUEUE].announce(event)
    data = task_json(row)
    data["cancelRequested"] = True
    if status == TaskStatus.PROCESSING:
        return accepted(data, task_id)  # it stops at its next page boundary, not yet
    return ok(data)


async def retry_task(request: web.Request) -> web.Response:
    task_id, user_id = params.task_id(request), request[USER_ID]
    # A retry queues a job as an upload does, and pays the same token: no way around the limit.
    await take_token(request, user_id)
    try:
        retried = await db.retry_task(request.app[DB], user_id, task_id)
    except db.QuotaExceededError as over:
        raise quota_exceeded(over) from None
    if retried is None:
        await _refuse(request, task_id, "task_not_retryable", "only failed or cancelled tasks can be retried")
    message = JobMessage.new(
        task_id, str(retried["file_id"]), user_id, retried["language"], retried["priority"], retried["express"]
    )
    event = TaskEvent(task_id, user_id, TaskStatus.QUEUED, 0, "queued again", tag=retried["tag"])
    position = await request.app[QUEUE].enqueue(message, event)
    data = task_json(await _own_task(request))
    data["queuePosition"] = position
    return accepted(data, task_id)


async def delete_task(request: web.Request) -> web.Response:
    """The task, its file row, the upload and every result object; 409 while processing."""
    task_id = params.task_id(request)
    try:
        deleted = await remove_task(request.app, request[USER_ID], task_id)
    except TaskProcessingError:
        raise ApiError(409, "task_processing", "the task is being processed; cancel it first, then delete it") from None
    if deleted is None:
        raise _not_found()
    return ok({"taskId": task_id, "deleted": True, "objectsDeleted": deleted})
