"""Helpers the tests share: fixture documents rendered here, users, polling."""

from __future__ import annotations

import asyncio
import io

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
