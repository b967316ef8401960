"""Accepting uploads: parse the multipart body, stream each file to S3, record, enqueue.

Nothing is left half-done: if recording or enqueueing fails after an object was stored, the
rows are removed and the object deleted before the error is reported.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import unicodedata
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote

import aiohttp
from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from opentelemetry.trace import SpanKind

from backend import db, ratelimit, storage
from backend.errors import ApiError
from backend.resources import DB, QUEUE, REDIS, S3, SETTINGS
from backend.telemetry import stamped
from common import keys, tracing
from common.events import TaskEvent
from common.filenames import display_filename, safe_filename
from common.job import DEFAULT_PRIORITY, JobMessage
from common.jobqueue import PRIORITIES
from common.languages import BUNDLED_LANGUAGES, UnsupportedLanguageError, check_language, installed_languages
from common.media import HEADER_BYTES, IMAGE_TYPES, SUPPORTED_NAMES, detect_mime_type, image_dimensions
from common.statuses import TaskStatus

log = logging.getLogger("untxt.api.uploads")

CHUNK_BYTES = 256 * 1024
MAX_FIELD_BYTES = 1024
MAX_BATCH_FILES = 50
# Multipart framing around a file: boundaries, headers, small form fields.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
MAX_IDEMPOTENCY_KEY = 255
MAX_TAG_CHARS = 128  # Textract's JobTag limit
# Control characters and line/paragraph separators: a tag is shown in tables and logs.
_FORBIDDEN_IN_TAG = {"Cc", "Cs", "Zl", "Zp"}

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
    priority: int = DEFAULT_PRIORITY
    language: str | None = None
    files: list[StoredFile | ApiError] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    tags: list[str | None] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def tag_for(self, index: int) -> str | None:
        """One tag labels every file; as many tags as files label one file each."""
        if not self.tags:
            return None
        return self.tags[0] if len(self.tags) == 1 else self.tags[index]


FORM_FIELDS = ("file", "priority", "language", "tag")
QUOTA_EXCEEDED = "quota_exceeded"
_QUOTA_WORDS = {
    "active_tasks": ("queued or processing tasks", "wait for some of them to finish"),
    "active_pages": ("pages in queued or processing tasks", "wait for some of them to finish"),
    "stored_bytes": ("bytes of stored uploads", "delete tasks you no longer need"),
}


def quota_exceeded(over: db.QuotaExceededError) -> ApiError:
    what, remedy = _QUOTA_WORDS.get(over.quota, (over.quota, "ask an operator"))
    return ApiError(
        429,
        QUOTA_EXCEEDED,
        f"quota exceeded: at most {over.limit} {what} per user; {remedy}, or ask an operator for a higher limit",
    )


def parse_priority(raw: str) -> int:
    rule = f"priority must be an integer from {PRIORITIES[0]} to {PRIORITIES[-1]}"
    try:
        value = int(raw.strip())
    except ValueError:
        raise ApiError(400, "invalid_priority", rule) from None
    if value not in PRIORITIES:
        raise ApiError(400, "invalid_priority", rule)
    return value


def parse_language(raw: str, tessdata_dir: str) -> str:
    """Checked against the models installed on this host (the bundled set if it has none)."""
    try:
        return check_language(raw, installed_languages(tessdata_dir) or BUNDLED_LANGUAGES)
    except UnsupportedLanguageError as exc:
        raise ApiError(400, "invalid_language", str(exc)) from None


def parse_tag(raw: str) -> str | None:
    """The caller's label for an upload; empty means none (what a blank form input sends)."""
    if raw == "":
        return None
    if len(raw) > MAX_TAG_CHARS:
        raise ApiError(400, "invalid_tag", f"tag must be at most {MAX_TAG_CHARS} characters")
    if any(unicodedata.category(ch) in _FORBIDDEN_IN_TAG for ch in raw):
        raise ApiError(400, "invalid_tag", "tag must not contain control characters or line breaks")
    return raw


def idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ApiError(
            400, "invalid_idempotency_key", f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters"
        )
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
            f"the file is not a {SUPPORTED_NAMES} (judged by its content)",
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
        with tracing.span("store upload", attributes={"untxt.file_id": file_id}):
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
        elif part.name in ("priority", "language"):
            if part.name in form.seen:
                raise ApiError(400, "duplicate_field", f"send the form field {part.name!r} once")
            form.seen.add(part.name)
            if part.name == "priority":
                form.priority = parse_priority(await _read_field(part))
            else:
                form.language = parse_language(await _read_field(part), request.app[SETTINGS].tessdata_dir)
        elif part.name == "tag":
            if len(form.tags) >= max_files:
                raise ApiError(400, "invalid_tag", "send one 'tag' for all files, or one per file")
            form.tags.append(parse_tag(await _read_field(part)))
        else:
            # Refused, not skipped: a skipped part is read all the same, so junk of any size
            # would pass (every part is bounded: files by MAX_UPLOAD_BYTES, fields by 1 KiB
            # and by how many of each a form may hold).
            raise ApiError(
                400, "unknown_field", f"unknown form field {part.name!r}; the fields are {', '.join(FORM_FIELDS)}"
            )
    if not form.files:
        raise ApiError(400, "missing_file", "the multipart body has no 'file' field")
    if len(form.tags) > 1 and len(form.tags) != len(form.names):
        raise ApiError(
            400, "invalid_tag", f"{len(form.tags)} tags for {len(form.names)} files: send one for all, or one per file"
        )


async def take_token(request: web.Request, user_id: str) -> None:
    """One upload's worth of the caller's rate limit, or 429."""
    settings = request.app[SETTINGS]
    bucket = request.app[QUEUE].names.rate_limit(user_id)
    await ratelimit.take(request.app[REDIS], bucket, settings.rate_limit_per_minute, settings.rate_limit_burst)


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
    idempotency key was already used for this same request (422 if for a different one)."""
    form = await _receive(request, user_id, max_files=1)
    item = form.files[0]
    assert isinstance(item, StoredFile)
    return await _record(request, user_id, item, form, 0, idem_key)


async def accept_batch(request: web.Request, user_id: str) -> list[tuple[str, AcceptedUpload | ApiError]]:
    """Up to MAX_BATCH_FILES files; each gets its own outcome, in the order sent."""
    form = await _receive(request, user_id, max_files=MAX_BATCH_FILES)
    outcomes: list[tuple[str, AcceptedUpload | ApiError]] = []
    for index, (name, item) in enumerate(zip(form.names, form.files, strict=True)):
        if isinstance(item, ApiError):
            outcomes.append((name, item))
            continue
        try:
            accepted = await _record(request, user_id, item, form, index, None)
        except ApiError as err:
            if err.code != QUOTA_EXCEEDED:
                raise
            outcomes.append((name, err))  # this file's outcome; the next, smaller one may fit
            continue
        assert isinstance(accepted, AcceptedUpload)
        outcomes.append((name, accepted))
    return outcomes


def request_fingerprint(record: db.NewUpload) -> str:
    """What an upload asks for: the file's content and name and every form field. A repeated
    Idempotency-Key must come with the same, or it is a different request (IETF
    draft-ietf-httpapi-idempotency-key-header: 422)."""
    asked = {
        "sha256": record.sha256,
        "filename": record.original_filename,
        "priority": record.priority,
        "language": record.language,
        "tag": record.tag,
    }
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode("utf-8")).hexdigest()


def _replayed(earlier: db.EarlierRequest, fingerprint: str) -> str:
    """The task of the earlier request, if this one asks for the same thing."""
    if earlier.fingerprint is not None and earlier.fingerprint != fingerprint:
        raise ApiError(
            422,
            "idempotency_key_mismatch",
            "this Idempotency-Key was used for a different file or different fields; use a new key",
        )
    return earlier.task_id


async def _record(
    request: web.Request, user_id: str, item: StoredFile, form: _Form, index: int, idem_key: str | None
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
        tag=form.tag_for(index),
        created_at=datetime.now(UTC),
    )
    idempotency = db.IdempotencyKey(idem_key, request_fingerprint(record)) if idem_key else None
    try:
        earlier = await db.insert_upload(request.app[DB], record, settings.priority_ceiling, idempotency)
    except db.QuotaExceededError as over:
        await _delete_object_quietly(request, item.stored.key)
        raise quota_exceeded(over) from None
    except db.IdempotencyRaceError as race:
        earlier = await db.earlier_request(request.app[DB], user_id, str(race))
        if earlier is None:
            await _delete_object_quietly(request, item.stored.key)
            raise ApiError(409, "idempotency_conflict", "a request with this Idempotency-Key is in progress") from None
    except BaseException:
        await _delete_object_quietly(request, item.stored.key)
        raise
    if isinstance(earlier, db.EarlierRequest):
        assert idempotency is not None
        # A repeat of an earlier request (or of a concurrent one that won the race): the
        # earlier task stands, this copy goes.
        await _delete_object_quietly(request, item.stored.key)
        return _replayed(earlier, idempotency.fingerprint)
    express = earlier
    message = JobMessage.new(record.task_id, record.file_id, user_id, record.language, record.priority, express)
    event = TaskEvent(record.task_id, user_id, TaskStatus.QUEUED, 0, "queued", tag=record.tag)
    try:
        with tracing.span("enqueue", SpanKind.PRODUCER, {"untxt.task_id": record.task_id}):
            position = await request.app[QUEUE].enqueue(stamped(request, message), event)
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
