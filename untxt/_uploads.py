"""Files to send: where their bytes come from, and the multipart body that streams them with
progress reports."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import aiohttp

from untxt.models import UploadProgress

# What upload() takes: a path (streamed from disk), bytes, or a binary file object (read once).
FileInput = str | os.PathLike[str] | bytes | BinaryIO
ProgressCallback = Callable[[UploadProgress], None]

CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class FileSource:
    """A file's name and size, and a way to open it again (each retry sends it anew)."""

    filename: str
    size: int
    open: Callable[[], BinaryIO]


def file_source(value: FileInput, filename: str | None = None) -> FileSource:
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return FileSource(filename or "upload", len(data), lambda: io.BytesIO(data))
    if isinstance(value, str | os.PathLike):
        path = Path(value)
        return FileSource(filename or path.name, path.stat().st_size, lambda: path.open("rb"))
    # A file object may not seek (a pipe), and is the caller's to close: keep its bytes instead.
    name = getattr(value, "name", None)
    return file_source(value.read(), filename or (Path(name).name if isinstance(name, str) else None))


async def _chunks(source: FileSource, index: int, on_progress: ProgressCallback | None) -> AsyncIterator[bytes]:
    def report(sent: int) -> None:
        if on_progress is not None:
            on_progress(UploadProgress(index, source.filename, sent, source.size))

    sent = 0
    report(sent)
    with source.open() as stream:
        # Disk reads off the event loop, so a slow disk does not stall other requests.
        while chunk := await asyncio.to_thread(stream.read, CHUNK_BYTES):
            yield chunk  # resumes once the connection has taken the chunk
            sent += len(chunk)
            report(sent)


def multipart(
    sources: Sequence[FileSource], fields: Sequence[tuple[str, str]], on_progress: ProgressCallback | None
) -> aiohttp.FormData:
    """The form: fields first, then each file as a ``file`` part, streamed in chunks."""
    form = aiohttp.FormData()
    for name, value in fields:
        form.add_field(name, value)
    for index, source in enumerate(sources):
        form.add_field(
            "file",
            _chunks(source, index, on_progress),
            filename=source.filename,
            content_type="application/octet-stream",
        )
    return form
