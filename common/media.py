"""File types untxt accepts, decided by magic bytes, never by a name or a Content-Type."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

# How many leading bytes detect_mime_type needs to see.
SNIFF_BYTES = 16
# Enough for the header of almost every image (JPEG's can sit behind up to 64 KiB of EXIF).
HEADER_BYTES = 64 * 1024

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/tiff", "image/webp", "image/bmp", "image/gif"})
PDF_TYPE = "application/pdf"
SUPPORTED_TYPES = IMAGE_TYPES | {PDF_TYPE}
# SUPPORTED_TYPES as people name them (error messages, the API description).
SUPPORTED_NAMES = "PNG, JPEG, TIFF, WebP, BMP, GIF or PDF"


def detect_mime_type(head: bytes) -> str | None:
    """The MIME type for a file starting with ``head``, or None if untxt does not accept it."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"BM"):
        return "image/bmp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"%PDF-"):
        return PDF_TYPE
    return None


def image_dimensions(head: bytes) -> tuple[int, int] | None:
    """(width, height) as stated by the header within ``head``, the first bytes of an image;
    None if the header lies further in or cannot be read. Nothing is decoded.

    This is the cheap early look; the worker's decode stays the real guard (other frames, a
    header beyond ``head``, a lying header).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(head)) as image:
                return image.size
    except Image.DecompressionBombError:
        # Pillow's own ceiling, not ours: the configured limit may be higher. Leave it to the worker.
        return None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        return None
