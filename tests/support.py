"""Helpers the tests share: fixture documents rendered here, users, polling."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import socket
import threading
import uuid
from datetime import UTC, datetime

import asyncpg
from PIL import Image, ImageDraw, ImageFont

from backend.db import NewUpload, insert_upload
from backend.users import create_user_with_key
from common.job import JobMessage
from common.keys import upload_key
from common.settings import Settings
from worker.storage import ObjectStore


def text_page_png(lines: list[str], size: int = 40, fmt: str = "PNG") -> bytes:
    """A clean page with ``lines`` of text, rendered with Pillow's bundled scalable font."""
    font = ImageFont.load_default(size=size)
    width = 200 + max(int(font.getlength(line)) for line in lines)
    height = 120 + len(lines) * int(size * 1.6)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((100, 60 + index * int(size * 1.6)), line, font=font, fill=0)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def free_port() -> int:
    """A TCP port nobody listens on now, so several checkouts can run their tests side by side."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def new_user(database_url: str, email: str) -> tuple[str, str]:
    """(user_id, api_key) for a fresh key of ``email``."""
    return asyncio.run(create_user_with_key(database_url, email))


def dense_page_png(page: int, lines: int = 20) -> bytes:
    """A page with enough text that Tesseract needs about a second for it."""
    return text_page_png(
        [f"Page {page} line {i}: the quick brown fox jumps over the lazy dog {i * 7}" for i in range(lines)],
        size=36,
    )


def pdf_of(pages_png: list[bytes]) -> bytes:
    """A scanned-style PDF (images only, no text layer) with one page per PNG."""
    images = [Image.open(io.BytesIO(data)).convert("RGB") for data in pages_png]
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:], resolution=150)
    return out.getvalue()


class CuttableProxy:
    """A TCP relay on loopback to a real server, which a test can cut and restore: what a
    network partition or a store restart looks like to a client. Cut, it drops every open
    connection and resets each new one at once; restored, it relays again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._cut = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            for sock in self._open:
                _close(sock)
            self._open.clear()

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self.cut()
        _close(self._listener)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self._cut.is_set():
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src)
            _close(dst)


def _close(sock: socket.socket) -> None:
    # shutdown first: close() alone does not wake a thread blocked in recv() on this socket.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def stored_task(
    settings: Settings, data: bytes, mime_type: str, priority: int = 5, user_id: str | None = None
) -> JobMessage:
    """A task as the API leaves it (upload in S3, files and tasks rows 'queued'), without the
    API; returns its job message, not enqueued."""
    if user_id is None:
        user_id, _ = new_user(settings.database_url, f"{uuid.uuid4().hex}@example.com")
    file_id, now = str(uuid.uuid4()), datetime.now(UTC)
    key = upload_key(user_id, file_id, "doc", now)
    ObjectStore(settings).put(key, data, mime_type)
    upload = NewUpload(
        task_id=str(uuid.uuid4()),
        file_id=file_id,
        user_id=user_id,
        original_filename="doc",
        safe_filename="doc",
        mime_type=mime_type,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        s3_key=key,
        priority=priority,
        language="eng",
        tag=None,
        created_at=now,
    )

    async def insert() -> None:
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
        try:
            await insert_upload(pool, upload, priority_ceiling=10)
        finally:
            await pool.close()

    asyncio.run(insert())
    return JobMessage.new(upload.task_id, file_id, user_id, "eng", priority)
