"""Accepting one upload: parse the multipart body, stream the file to S3, record, enqueue.

Nothing is left half-done: if recording or enqueueing fails after the object was stored, the
rows are removed and the object deleted before the error is reported.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

import aiohttp
from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from backend import db, queue, storage
from backend.errors import ApiError
from backend.resources import DB, REDIS, S3, SETTINGS
from common import keys
from common.events import TaskEvent
from common.filenames import display_filename, safe_filename
from common.job import JobMessage
from common.media import SNIFF_BYTES, detect_mime_type
from common.statuses import TaskStatus

log = logging.getLogger("untxt.api.uploads")

CHUNK_BYTES = 256 * 1024
MAX_FIELD_BYTES = 1024
# Multipart framing around the file: boundaries, headers, small form fields.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
SUPPORTED_LANGUAGES = ("eng", "vie", "eng+vie", "vie+eng")


# What aiohttp raises on a broken, truncated or nonsensical multipart body.
_MALFORMED_BODY = (
    ValueError,
    AssertionError,
    LookupError,
    HttpProcessingError,
    aiohttp.ClientPayloadError,
    asyncio.IncompleteReadError,
)


@dataclass(frozen=True)
class AcceptedUpload:
    record: db.NewUpload
    queue_position: int


@dataclass
class _Form:
    priority: int = 5
    language: str | None = None
    stored: storage.StoredObject | None = None
    original_filename: str = ""
    safe_name: str = ""
    mime_type: str = ""


def parse_priority(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ApiError(400, "invalid_priority", "priority must be an integer from 1 to 10") from None
    if not 1 <= value <= 10:
        raise ApiError(400, "invalid_priority", "priority must be an integer from 1 to 10")
    return value


def parse_language(raw: str) -> str:
    value = raw.strip().lower()
    if value not in SUPPORTED_LANGUAGES:
        raise ApiError(400, "invalid_language", f"language must be one of {', '.join(SUPPORTED_LANGUAGES)}")
    return value


async def _read_field(part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(256):
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            raise ApiError(400, "invalid_field", f"form field {part.name!r} is too long")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_field", f"form field {part.name!r} is not UTF-8 text") from None


async def _file_chunks(part: BodyPartReader, head: bytes) -> AsyncIterator[bytes]:
    yield head
    while chunk := await part.read_chunk(CHUNK_BYTES):
        yield chunk


async def _read_head(part: BodyPartReader) -> bytes:
    head = b""
    while len(head) < SNIFF_BYTES:
        chunk = await part.read_chunk(CHUNK_BYTES)
        if not chunk:
            break
        head += chunk
    return head


async def _store_file(
    request: web.Request, part: BodyPartReader, user_id: str, file_id: str, when: datetime, form: _Form
) -> None:
    settings = request.app[SETTINGS]
    head = await _read_head(part)
    if not head:
        raise ApiError(400, "empty_file", "the uploaded file is empty")
    mime_type = detect_mime_type(head)
    if mime_type is None:
        raise ApiError(
            415,
            "unsupported_media_type",
            "the file is not a PNG, JPEG, TIFF, WebP, BMP, GIF or PDF (judged by its content)",
        )
    # RFC 7578 lets clients percent-encode non-ASCII names (aiohttp's client does; curl and
    # browsers send raw UTF-8): decode so both arrive as the same name.
    client_name = unquote(part.filename) if part.filename else None
    form.original_filename = display_filename(client_name)
    form.safe_name = safe_filename(client_name)
    form.mime_type = mime_type
    key = keys.upload_key(user_id, file_id, form.safe_name, when)
    try:
        form.stored = await storage.stream_to_s3(
            request.app[S3], settings, key, _file_chunks(part, head), mime_type, settings.max_upload_bytes
        )
    except storage.UploadTooLargeError:
        raise ApiError(413, "file_too_large", f"the file is larger than {settings.max_upload_bytes} bytes") from None


async def _parse_form(request: web.Request, user_id: str, file_id: str, when: datetime, form: _Form) -> None:
    """Fill ``form`` as parts arrive, so the caller can clean up whatever was stored on failure."""
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(400, "invalid_request", "send the file as multipart/form-data with a 'file' field")
    reader: MultipartReader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ApiError(400, "invalid_multipart", "nested multipart bodies are not accepted")
        if part.name == "file":
            if form.stored is not None:
                raise ApiError(400, "too_many_files", "send exactly one 'file' field")
            await _store_file(request, part, user_id, file_id, when, form)
        elif part.name == "priority":
            form.priority = parse_priority(await _read_field(part))
        elif part.name == "language":
            form.language = parse_language(await _read_field(part))
        else:
            await part.release()
    if form.stored is None:
        raise ApiError(400, "missing_file", "the multipart body has no 'file' field")


async def accept_upload(request: web.Request, user_id: str) -> AcceptedUpload:
    settings = request.app[SETTINGS]
    declared = request.content_length
    if declared is not None and declared > settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES:
        raise ApiError(413, "file_too_large", f"the file is larger than {settings.max_upload_bytes} bytes")
    file_id, task_id = str(uuid.uuid4()), str(uuid.uuid4())
    when = datetime.now(UTC)
    form = _Form()
    try:
        await _parse_form(request, user_id, file_id, when, form)
    except BaseException as exc:
        if form.stored is not None:
            await _delete_object_quietly(request, form.stored.key)
        if isinstance(exc, _MALFORMED_BODY):
            raise ApiError(400, "invalid_multipart", f"the multipart body is malformed or truncated: {exc}") from None
        raise

    assert form.stored is not None
    record = db.NewUpload(
        task_id=task_id,
        file_id=file_id,
        user_id=user_id,
        original_filename=form.original_filename,
        safe_filename=form.safe_name,
        mime_type=form.mime_type,
        size_bytes=form.stored.size,
        sha256=form.stored.sha256,
        s3_key=form.stored.key,
        priority=form.priority,
        language=form.language or settings.default_language,
        created_at=when,
    )
    try:
        await db.insert_upload(request.app[DB], record)
    except BaseException:
        await _delete_object_quietly(request, form.stored.key)
        raise
    message = JobMessage.new(task_id, file_id, user_id, record.language, record.priority)
    try:
        position = await queue.enqueue(request.app[REDIS], message)
    except BaseException:
        await _undo_records(request, file_id, form.stored.key)
        raise
    await _announce_queued(request, record)
    return AcceptedUpload(record=record, queue_position=position)


async def _announce_queued(request: web.Request, record: db.NewUpload) -> None:
    event = TaskEvent(
        task_id=record.task_id, user_id=record.user_id, status=TaskStatus.QUEUED, progress=0, message="queued"
    )
    try:
        await queue.announce(request.app[REDIS], event)
    except Exception:  # the job is queued; a missed event is repaired by the DB
        log.warning("could not announce queued task", exc_info=True, extra={"task_id": record.task_id})


async def _undo_records(request: web.Request, file_id: str, key: str) -> None:
    try:
        await db.delete_file(request.app[DB], file_id)
    except Exception:  # the row stays 'queued'; recovery re-enqueues it from PostgreSQL
        log.error(
            "could not remove the rows of an upload that failed to enqueue", exc_info=True, extra={"file_id": file_id}
        )
        return
    await _delete_object_quietly(request, key)


async def _delete_object_quietly(request: web.Request, key: str) -> None:
    try:
        await storage.delete_object(request.app[S3], request.app[SETTINGS], key)
    except Exception:  # report the original failure, log this one
        log.error("could not delete an orphaned upload", exc_info=True, extra={"s3_key": key})
