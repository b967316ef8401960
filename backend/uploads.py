"""Accepting uploads: parse the multipart body, stream each file to S3, record, enqueue.

Nothing is left half-done: if recording or enqueueing fails after an object was stored, the
rows are removed and the object deleted before the error is reported.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote

import aiohttp
from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from backend import db, queue, ratelimit, storage
from backend.errors import ApiError
from backend.resources import DB, REDIS, S3, SETTINGS
from common import keys
from common.events import TaskEvent
from common.filenames import display_filename, safe_filename
from common.job import JobMessage
from common.languages import BUNDLED_LANGUAGES, UnsupportedLanguageError, check_language, installed_languages
from common.media import HEADER_BYTES, IMAGE_TYPES, detect_mime_type, image_dimensions
from common.statuses import TaskStatus

log = logging.getLogger("untxt.api.uploads")

CHUNK_BYTES = 256 * 1024
MAX_FIELD_BYTES = 1024
MAX_BATCH_FILES = 50
# Multipart framing around a file: boundaries, headers, small form fields.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
MAX_IDEMPOTENCY_KEY = 255

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
class StoredFile:
    """A file streamed to S3, not yet recorded."""

    file_id: str
    original_filename: str
    safe_filename: str
    mime_type: str
    stored: storage.StoredObject


@dataclass(frozen=True)
class AcceptedUpload:
    record: db.NewUpload
    queue_position: int


@dataclass
class _Form:
    priority: int = 5
    language: str | None = None
    files: list[StoredFile | ApiError] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


def parse_priority(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ApiError(400, "invalid_priority", "priority must be an integer from 1 to 10") from None
    if not 1 <= value <= 10:
        raise ApiError(400, "invalid_priority", "priority must be an integer from 1 to 10")
    return value


def parse_language(raw: str, tessdata_dir: str) -> str:
    """Checked against the models installed on this host (the bundled set if it has none)."""
    try:
        return check_language(raw, installed_languages(tessdata_dir) or BUNDLED_LANGUAGES)
    except UnsupportedLanguageError as exc:
        raise ApiError(400, "invalid_language", str(exc)) from None


def idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 printable characters")
    return key


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
    while len(head) < HEADER_BYTES:
        chunk = await part.read_chunk(CHUNK_BYTES)
        if not chunk:
            break
        head += chunk
    return head


async def _store_file(request: web.Request, part: BodyPartReader, user_id: str, when: datetime) -> StoredFile:
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
    if mime_type in IMAGE_TYPES and (size := image_dimensions(head)) is not None:
        width, height = size
        if width * height > settings.max_image_pixels:
            raise ApiError(
                413,
                "image_too_large",
                f"the image is {width}×{height} pixels; the limit is {settings.max_image_pixels} pixels",
            )
    # RFC 7578 lets clients percent-encode non-ASCII names (aiohttp's client does; curl and
    # browsers send raw UTF-8): decode so both arrive as the same name.
    client_name = unquote(part.filename) if part.filename else None
    file_id = str(uuid.uuid4())
    safe = safe_filename(client_name)
    key = keys.upload_key(user_id, file_id, safe, when)
    try:
        stored = await storage.stream_to_s3(
            request.app[S3], settings, key, _file_chunks(part, head), mime_type, settings.max_upload_bytes
        )
    except storage.UploadTooLargeError:
        raise ApiError(413, "file_too_large", f"the file is larger than {settings.max_upload_bytes} bytes") from None
    return StoredFile(file_id, display_filename(client_name), safe, mime_type, stored)


async def _parse_form(request: web.Request, user_id: str, when: datetime, form: _Form, max_files: int) -> None:
    """Fill ``form`` as parts arrive, so the caller can clean up whatever was stored on failure.

    With ``max_files`` > 1 (batch), a bad file becomes that file's outcome; with 1, it fails
    the request.
    """
    # The raw header, not request.content_type: that one runs the email package's parser,
    # which costs more than the rest of the check; the multipart reader parses it anyway.
    if not request.headers.get(hdrs.CONTENT_TYPE, "").lstrip().lower().startswith("multipart/form-data"):
        raise ApiError(400, "invalid_request", "send files as multipart/form-data with a 'file' field")
    reader: MultipartReader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ApiError(400, "invalid_multipart", "nested multipart bodies are not accepted")
        if part.name in ("file", "files"):
            if len(form.files) >= max_files:
                if max_files == 1:
                    raise ApiError(400, "too_many_files", "send exactly one 'file' field")
                raise ApiError(400, "too_many_files", f"a batch holds at most {max_files} files")
            form.names.append(display_filename(unquote(part.filename) if part.filename else None))
            try:
                if form.files:
                    # The request's own token paid for its first file; each further one costs
                    # its own, so a batch is no way around the limit.
                    await take_token(request, user_id)
                form.files.append(await _store_file(request, part, user_id, when))
            except ApiError as err:
                if max_files == 1:
                    raise
                form.files.append(err)
        elif part.name == "priority":
            form.priority = parse_priority(await _read_field(part))
        elif part.name == "language":
            form.language = parse_language(await _read_field(part), request.app[SETTINGS].tessdata_dir)
        else:
            await part.release()
    if not form.files:
        raise ApiError(400, "missing_file", "the multipart body has no 'file' field")


async def take_token(request: web.Request, user_id: str) -> None:
    """One upload's worth of the caller's rate limit, or 429."""
    settings = request.app[SETTINGS]
    await ratelimit.take(request.app[REDIS], user_id, settings.rate_limit_per_minute, settings.rate_limit_burst)


async def _receive(request: web.Request, user_id: str, max_files: int) -> _Form:
    settings = request.app[SETTINGS]
    declared = request.content_length
    if declared is not None and declared > max_files * (settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES):
        raise ApiError(
            413, "file_too_large", f"the body is larger than {max_files} × {settings.max_upload_bytes} bytes"
        )
    form = _Form()
    try:
        await _parse_form(request, user_id, datetime.now(UTC), form, max_files)
    except BaseException as exc:
        for item in form.files:
            if isinstance(item, StoredFile):
                await _delete_object_quietly(request, item.stored.key)
        if isinstance(exc, _MALFORMED_BODY):
            raise ApiError(400, "invalid_multipart", f"the multipart body is malformed or truncated: {exc}") from None
        raise
    return form


async def accept_upload(request: web.Request, user_id: str, idem_key: str | None) -> AcceptedUpload | str:
    """One file. Returns the accepted upload, or the id of the original task when the
    idempotency key was already used."""
    form = await _receive(request, user_id, max_files=1)
    item = form.files[0]
    assert isinstance(item, StoredFile)
    return await _record(request, user_id, item, form, idem_key)


async def accept_batch(request: web.Request, user_id: str) -> list[tuple[str, AcceptedUpload | ApiError]]:
    """Up to MAX_BATCH_FILES files; each gets its own outcome, in the order sent."""
    form = await _receive(request, user_id, max_files=MAX_BATCH_FILES)
    outcomes: list[tuple[str, AcceptedUpload | ApiError]] = []
    for name, item in zip(form.names, form.files, strict=True):
        if isinstance(item, ApiError):
            outcomes.append((name, item))
            continue
        accepted = await _record(request, user_id, item, form, None)
        assert isinstance(accepted, AcceptedUpload)
        outcomes.append((name, accepted))
    return outcomes


async def _record(
    request: web.Request, user_id: str, item: StoredFile, form: _Form, idem_key: str | None
) -> AcceptedUpload | str:
    settings = request.app[SETTINGS]
    record = db.NewUpload(
        task_id=str(uuid.uuid4()),
        file_id=item.file_id,
        user_id=user_id,
        original_filename=item.original_filename,
        safe_filename=item.safe_filename,
        mime_type=item.mime_type,
        size_bytes=item.stored.size,
        sha256=item.stored.sha256,
        s3_key=item.stored.key,
        priority=form.priority,
        language=form.language or settings.default_language,
        created_at=datetime.now(UTC),
    )
    try:
        original = await db.insert_upload(request.app[DB], record, idem_key)
    except db.IdempotencyRaceError:
        original = None
        row = await db.task_for_idempotency_key(request.app[DB], user_id, idem_key or "")
        if row is not None:
            original = str(row["task_id"])
        await _delete_object_quietly(request, item.stored.key)
        if original is None:
            raise ApiError(409, "idempotency_conflict", "a request with this Idempotency-Key is in progress") from None
        return original
    except BaseException:
        await _delete_object_quietly(request, item.stored.key)
        raise
    if original is not None:
        # A repeat of an earlier request: the earlier task stands, this copy goes.
        await _delete_object_quietly(request, item.stored.key)
        return original
    message = JobMessage.new(record.task_id, record.file_id, user_id, record.language, record.priority)
    event = TaskEvent(record.task_id, user_id, TaskStatus.QUEUED, 0, "queued")
    try:
        position = await queue.enqueue(request.app[REDIS], message, event)
    except BaseException:
        await _undo_records(request, record.file_id, item.stored.key)
        raise
    return AcceptedUpload(record=record, queue_position=position)


async def _undo_records(request: web.Request, file_id: str, key: str) -> None:
    try:
        await db.delete_file(request.app[DB], file_id)
    except Exception:
        # The row stays 'queued'; the worker's reconciler re-enqueues it from PostgreSQL.
        log.error(
            "could not remove the rows of an upload that failed to enqueue", exc_info=True, extra={"file_id": file_id}
        )
        return
    await _delete_object_quietly(request, key)


async def _delete_object_quietly(request: web.Request, key: str) -> None:
    try:
        await storage.delete_object(request.app[S3], request.app[SETTINGS], key)
    except Exception:
        # Report the original failure; log this one.
        log.error("could not delete an orphaned upload", exc_info=True, extra={"s3_key": key})
