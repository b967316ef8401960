"""The API's S3 access: stream an upload in (hashing it on the way), presign, list, delete."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from common.s3config import sse_kms_params
from common.settings import Settings

# S3 parts must be at least 5 MiB (but the last); 8 MiB keeps memory per upload small.
PART_SIZE = 8 * 1024 * 1024
# One store call, all its attempts together, may take this long: the body is in memory by then
# (at most one part), so the time is the store's alone. A store that accepts connections and
# never answers otherwise cost an upload 2 attempts x the 5 s read timeout, plus connecting.
STORE_DEADLINE_SECONDS = 5.0

T = TypeVar("T")


class StoreTimeoutError(Exception):
    """The object store did not answer one call within STORE_DEADLINE_SECONDS."""


async def _within_deadline(call: Awaitable[T]) -> T:
    try:
        async with asyncio.timeout(STORE_DEADLINE_SECONDS):
            return await call
    except TimeoutError:
        raise StoreTimeoutError(f"the object store did not answer within {STORE_DEADLINE_SECONDS:.0f}s") from None


class UploadTooLargeError(Exception):
    """The stream went past the size limit; nothing was kept."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str


async def stream_to_s3(
    s3: Any, settings: Settings, key: str, chunks: AsyncIterator[bytes], content_type: str, max_bytes: int
) -> StoredObject:
    """Upload ``chunks`` under ``key`` with SSE-KMS, never holding more than one part in memory.

    Small files go up in a single PUT; larger ones as a multipart upload, which is aborted on
    any failure (including the size limit) so no partial object or orphan parts remain.
    """
    sse = sse_kms_params(settings)
    hasher = hashlib.sha256()
    size = 0
    buffer = bytearray()
    upload_id: str | None = None
    parts: list[dict[str, Any]] = []
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise UploadTooLargeError(f"file exceeds the {max_bytes}-byte limit")
            hasher.update(chunk)
            buffer += chunk
            if len(buffer) >= PART_SIZE:
                if upload_id is None:
                    created = await _within_deadline(
                        s3.create_multipart_upload(Bucket=settings.s3_bucket, Key=key, ContentType=content_type, **sse)
                    )
                    upload_id = created["UploadId"]
                parts.append(await _upload_part(s3, settings.s3_bucket, key, upload_id, len(parts) + 1, buffer))
                buffer = bytearray()
        if upload_id is None:
            # Our SHA-256 goes along as the object's checksum: S3 verifies it on arrival (BadDigest
            # otherwise), so the hash recorded in PostgreSQL is the one the store checked, and
            # botocore need not compute a CRC32 of its own over the body.
            await _within_deadline(
                s3.put_object(
                    Bucket=settings.s3_bucket,
                    Key=key,
                    Body=bytes(buffer),
                    ContentType=content_type,
                    ChecksumSHA256=base64.b64encode(hasher.digest()).decode(),
                    **sse,
                )
            )
        else:
            if buffer:
                parts.append(await _upload_part(s3, settings.s3_bucket, key, upload_id, len(parts) + 1, buffer))
            await _within_deadline(
                s3.complete_multipart_upload(
                    Bucket=settings.s3_bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
            )
            upload_id = None
    finally:
        if upload_id is not None:
            await _abort_quietly(s3, settings.s3_bucket, key, upload_id)
    return StoredObject(key=key, size=size, sha256=hasher.hexdigest())


async def _upload_part(s3: Any, bucket: str, key: str, upload_id: str, number: int, data: bytearray) -> dict[str, Any]:
    response = await _within_deadline(
        s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=bytes(data))
    )
    return {"PartNumber": number, "ETag": response["ETag"]}


async def _abort_quietly(s3: Any, bucket: str, key: str, upload_id: str) -> None:
    # Best effort: on AWS a lifecycle rule for incomplete multipart uploads reaps leftovers.
    with contextlib.suppress(Exception):
        await s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)


async def delete_object(s3: Any, settings: Settings, key: str) -> None:
    await _within_deadline(s3.delete_object(Bucket=settings.s3_bucket, Key=key))


async def list_keys(s3: Any, settings: Settings, prefix: str) -> list[str]:
    """Every key under ``prefix``, page by page (each page within the deadline)."""
    found: list[str] = []
    token: dict[str, str] = {}
    while True:
        page = await _within_deadline(s3.list_objects_v2(Bucket=settings.s3_bucket, Prefix=prefix, **token))
        found += [item["Key"] for item in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return found
        token = {"ContinuationToken": page["NextContinuationToken"]}


async def presign_result_url(s3: Any, settings: Settings, key: str, expires_in: int) -> str:
    return await s3.generate_presigned_url(
        "get_object", Params={"Bucket": settings.s3_bucket, "Key": key}, ExpiresIn=expires_in
    )


async def ping(s3: Any, settings: Settings) -> None:
    await _within_deadline(s3.head_bucket(Bucket=settings.s3_bucket))
