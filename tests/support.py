"""Helpers the tests share: fixture documents rendered here, users, polling."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import threading

from PIL import Image, ImageDraw, ImageFont

from backend.users import create_user_with_key


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
