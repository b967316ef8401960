"""Turning an uploaded file into page images, safely.

Every image is decoded by Pillow with its decompression-bomb guard raised to an error, and
Tesseract gets the decoded image, never a path: Leptonica reading a huge PNG itself would spend
tens of seconds and gigabytes before any check. PDFs are rasterised in memory by pypdfium2.
"""

from __future__ import annotations

import math
import threading
import unicodedata
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image, ImageSequence, UnidentifiedImageError

from common.media import IMAGE_TYPES, PDF_TYPE
from worker.errors import JobFailedError
from worker.results import Line, PageText, Paragraph, Word

# A page counts as blank when its darkest pixel is at least this light, or when the whole page
# spans less contrast than this (a uniformly grey scan).
BLANK_MIN_LEVEL = 200
BLANK_MIN_CONTRAST = 40
# Fewer visible characters than this in a PDF's text layer and the page is OCR'd instead.
MIN_TEXT_LAYER_CHARS = 20
# PDFium is not thread-safe, not even across documents: one call at a time per process.
PDFIUM_LOCK = threading.Lock()


def count_pages(path: Path, mime_type: str, max_pages: int) -> int:
    if mime_type == PDF_TYPE:
        with PDFIUM_LOCK, _open_pdf(path) as pdf:
            pages = len(pdf)
    elif mime_type in IMAGE_TYPES:
        # Header only: Pillow checks the pixel count on open; decoding waits for iter_pages.
        with _open_image(path, decode=False) as image:
            pages = getattr(image, "n_frames", 1)
    else:
        raise JobFailedError("unsupported_media_type", f"cannot process files of type {mime_type}")
    if pages < 1:
        raise JobFailedError("empty_document", "the document has no pages")
    if pages > max_pages:
        raise JobFailedError("too_many_pages", f"the document has {pages} pages; the limit is {max_pages}")
    return pages


@dataclass
class PageInput:
    """One page to read: an image for OCR, or text already taken from the PDF's text layer."""

    number: int
    image: Image.Image | None = None
    text_layer: PageText | None = None


def iter_pages(path: Path, mime_type: str, max_pixels: int, dpi: int) -> Iterator[PageInput]:
    """Yield each page in order; images come as mode 1, L or RGB, ready for Tesseract."""
    if mime_type == PDF_TYPE:
        yield from _pdf_pages(path, max_pixels, dpi)
        return
    with _open_image(path) as image:
        for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
            yield PageInput(number, image=_ocr_ready(frame))


def is_blank(image: Image.Image) -> bool:
    """No ink anywhere: the darkest pixel is light, or the page has almost no contrast.

    A few milliseconds on a 300 dpi page, against the hundreds Tesseract spends finding nothing.
    """
    low, high = image.convert("L").getextrema()
    return low >= BLANK_MIN_LEVEL or high - low < BLANK_MIN_CONTRAST


class _BombGuard:
    """Turn Pillow's DecompressionBombWarning into an error for the duration of a decode."""

    def __enter__(self) -> None:
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error", Image.DecompressionBombWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def _open_image(path: Path, decode: bool = True) -> Image.Image:
    image: Image.Image | None = None
    try:
        with _BombGuard():
            image = Image.open(path)
            if decode:
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
            # Grey levels, not colour: Tesseract binarises anyway, and on colour input it does so
            # per channel, about a third slower for the same text on document scans.
            if frame.mode in ("1", "L"):
                return frame.copy()
            if frame.mode in ("RGBA", "LA", "P", "PA"):
                # Transparent areas become white paper, not black ink.
                rgba = frame.convert("RGBA")
                background = Image.new("RGB", rgba.size, "white")
                background.paste(rgba, mask=rgba.getchannel("A"))
                return background.convert("L")
            if frame.mode == "I;16":
                return frame.point(lambda v: v / 256).convert("L")
            return frame.convert("L")
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


def _pdf_pages(path: Path, max_pixels: int, dpi: int) -> Iterator[PageInput]:
    with PDFIUM_LOCK:
        pdf = _open_pdf(path)
        count = len(pdf)
    try:
        for index in range(count):
            # The lock is held per page, never across a yield: other jobs' pages interleave.
            with PDFIUM_LOCK:
                item = _pdf_page(pdf, index, max_pixels, dpi)
            yield item
    finally:
        with PDFIUM_LOCK:
            pdf.close()


def _pdf_page(pdf: pdfium.PdfDocument, index: int, max_pixels: int, dpi: int) -> PageInput:
    page = pdf[index]
    try:
        width_pt, height_pt = page.get_size()
        scale = dpi / 72
        # Huge pages are rendered at a lower resolution rather than refused.
        pixels = width_pt * height_pt * scale * scale
        if pixels > max_pixels:
            scale *= math.sqrt(max_pixels / pixels)
        layer = text_layer(page, index + 1, scale)
        if layer is not None:
            return PageInput(index + 1, text_layer=layer)
        bitmap = page.render(scale=scale, grayscale=True)
        try:
            image = bitmap.to_pil().convert("L")
            image.info["dpi"] = (round(72 * scale), round(72 * scale))
            return PageInput(index + 1, image=image)
        finally:
            bitmap.close()
    except pdfium.PdfiumError as exc:
        raise JobFailedError("corrupt_file", f"page {index + 1} of the PDF could not be read: {exc}") from exc
    finally:
        page.close()


def text_layer(page: pdfium.PdfPage, number: int, scale: float) -> PageText | None:
    """The page's own text, if it is usable; None means "OCR this page".

    Usable = at least MIN_TEXT_LAYER_CHARS visible characters, of which nearly all are proper
    characters (no U+FFFD or private-use glyph codes, which is what broken font encodings
    produce) and at least half are letters or digits. A scanned page has no text layer and
    fails the first test; a PDF whose fonts lack a Unicode map fails the second.
    """
    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        text = textpage.get_text_range(0, count) if count else ""
        visible = [ch for ch in text if not ch.isspace()]
        if len(visible) < MIN_TEXT_LAYER_CHARS:
            return None
        bad = sum(1 for ch in visible if ch == "\ufffd" or unicodedata.category(ch) in ("Co", "Cn", "Cc"))
        alnum = sum(1 for ch in visible if ch.isalnum())
        if bad > 0.02 * len(visible) or alnum < 0.5 * len(visible):
            return None
        _, height_pt = page.get_size()
        boxes = [textpage.get_charbox(i) for i in range(len(text))] if len(text) == count else None
        result = PageText(
            number=number, width=round(page.get_width() * scale), height=round(height_pt * scale), source="text-layer"
        )
        result.paragraphs = _layout(text, boxes, height_pt, scale)
        return result
    finally:
        textpage.close()


def _layout(
    text: str, boxes: list[tuple[float, float, float, float]] | None, height_pt: float, scale: float
) -> list[Paragraph]:
    """Split text-layer text into paragraphs (blank lines), lines and words with pixel boxes."""
    paragraphs: list[Paragraph] = [Paragraph()]
    line = Line()
    word_chars: list[int] = []

    def flush_word() -> None:
        if not word_chars:
            return
        left = top = width = height = 0
        if boxes is not None:
            lefts, bottoms, rights, tops = zip(*(boxes[i] for i in word_chars), strict=True)
            left, top = round(min(lefts) * scale), round((height_pt - max(tops)) * scale)
            width, height = round((max(rights) - min(lefts)) * scale), round((max(tops) - min(bottoms)) * scale)
        line.words.append(Word("".join(text[i] for i in word_chars), 100.0, left, top, width, height))
        word_chars.clear()

    for index, ch in enumerate(text):
        if ch in "\r\n":
            flush_word()
            if ch == "\n":
                if line.words:
                    paragraphs[-1].lines.append(line)
                elif paragraphs[-1].lines:
                    paragraphs.append(Paragraph())
                line = Line()
        elif ch.isspace():
            flush_word()
        else:
            word_chars.append(index)
    flush_word()
    if line.words:
        paragraphs[-1].lines.append(line)
    return [p for p in paragraphs if p.lines]
