"""Turning an uploaded file into page images, safely.

Every image is decoded by Pillow with its decompression-bomb guard raised to an error, and
Tesseract gets the decoded image, never a path: Leptonica reading a huge PNG itself would spend
tens of seconds and gigabytes before any check. PDFs are rasterised in memory by pypdfium2.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image, ImageSequence, UnidentifiedImageError

from common.media import IMAGE_TYPES, PDF_TYPE
from worker.errors import JobFailedError


def count_pages(path: Path, mime_type: str, max_pages: int) -> int:
    if mime_type == PDF_TYPE:
        with _open_pdf(path) as pdf:
            pages = len(pdf)
    elif mime_type in IMAGE_TYPES:
        with _open_image(path) as image:
            pages = getattr(image, "n_frames", 1)
    else:
        raise JobFailedError("unsupported_media_type", f"cannot process files of type {mime_type}")
    if pages < 1:
        raise JobFailedError("empty_document", "the document has no pages")
    if pages > max_pages:
        raise JobFailedError("too_many_pages", f"the document has {pages} pages; the limit is {max_pages}")
    return pages


def iter_pages(path: Path, mime_type: str, max_pixels: int, dpi: int) -> Iterator[Image.Image]:
    """Yield each page as an image Tesseract accepts (mode 1, L or RGB)."""
    if mime_type == PDF_TYPE:
        yield from _pdf_pages(path, max_pixels, dpi)
        return
    with _open_image(path) as image:
        for frame in ImageSequence.Iterator(image):
            yield _ocr_ready(frame)


class _BombGuard:
    """Turn Pillow's DecompressionBombWarning into an error for the duration of a decode."""

    def __enter__(self) -> None:
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error", Image.DecompressionBombWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def _open_image(path: Path) -> Image.Image:
    image: Image.Image | None = None
    try:
        with _BombGuard():
            image = Image.open(path)
            image.load()
            return image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        _close(image)
        raise JobFailedError("image_too_large", f"the image exceeds the pixel limit: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        _close(image)
        raise JobFailedError("corrupt_file", f"the image could not be decoded: {exc}") from exc


def _close(image: Image.Image | None) -> None:
    if image is not None:
        image.close()


def _ocr_ready(frame: Image.Image) -> Image.Image:
    try:
        with _BombGuard():
            frame.load()
            if frame.mode in ("1", "L", "RGB"):
                return frame.copy()
            if frame.mode in ("RGBA", "LA", "P", "PA"):
                # Transparent areas become white paper, not black ink.
                rgba = frame.convert("RGBA")
                background = Image.new("RGB", rgba.size, "white")
                background.paste(rgba, mask=rgba.getchannel("A"))
                return background
            if frame.mode.startswith("I") or frame.mode == "F":
                return frame.convert("L") if frame.mode != "I;16" else frame.point(lambda v: v / 256).convert("L")
            return frame.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise JobFailedError("image_too_large", f"the image exceeds the pixel limit: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise JobFailedError("corrupt_file", f"the image could not be decoded: {exc}") from exc


def _open_pdf(path: Path) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise JobFailedError("pdf_encrypted", "the PDF is password-protected") from exc
        raise JobFailedError("corrupt_file", f"the PDF could not be opened: {exc}") from exc


def _pdf_pages(path: Path, max_pixels: int, dpi: int) -> Iterator[Image.Image]:
    with _open_pdf(path) as pdf:
        for index in range(len(pdf)):
            page = pdf[index]
            try:
                width_pt, height_pt = page.get_size()
                scale = dpi / 72
                # Huge pages are rendered at a lower resolution rather than refused.
                pixels = width_pt * height_pt * scale * scale
                if pixels > max_pixels:
                    scale *= math.sqrt(max_pixels / pixels)
                bitmap = page.render(scale=scale, grayscale=True)
                yield bitmap.to_pil().convert("L")
            except pdfium.PdfiumError as exc:
                raise JobFailedError(
                    "corrupt_file", f"page {index + 1} of the PDF could not be rendered: {exc}"
                ) from exc
            finally:
                page.close()
