"""Tesseract through tesserocr: a warm engine, reused for every page its process reads.

Loading a traineddata model costs a good part of recognising a page, so an engine is
initialised once per language set and kept (one per sandbox child, worker/pool.py).
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import tesserocr
from PIL import Image

from common.languages import UnsupportedLanguageError, check_language, installed_languages
from worker.errors import JobFailedError
from worker.results import Line, PageText, Paragraph, Word
from worker.upright import Recognition

ENGINE_NAME = "tesseract"
_TSV_WORD_LEVEL = 5
# Orientation detection reads glyph shapes; past this many pixels a page is sampled down first
# (a 9000 x 9000 px poster took 1.5 s at full size).
OSD_MAX_PIXELS = 12_000_000


def engine_version() -> str:
    return f"{ENGINE_NAME} {tesserocr.tesseract_version().split()[1]}"


def validate_language(language: str, tessdata_dir: str) -> str:
    """``eng``, ``vie``, ``eng+vie``...: every part must be an installed model."""
    try:
        return check_language(language, installed_languages(tessdata_dir))
    except UnsupportedLanguageError as exc:
        raise JobFailedError("unsupported_language", str(exc)) from exc


class OcrEngine:
    """Not thread-safe: each OCR thread owns one."""

    def __init__(self, tessdata_dir: str) -> None:
        # tesserocr wants the directory with a trailing separator.
        self._path = str(Path(tessdata_dir)) + "/"
        self._apis: dict[str, tesserocr.PyTessBaseAPI] = {}
        self._osd: tesserocr.PyTessBaseAPI | None = None
        self._owner: int | None = None  # the first thread to use the engine owns it

    def _api(self, language: str) -> tesserocr.PyTessBaseAPI:
        api = self._apis.get(language)
        if api is None:
            api = tesserocr.PyTessBaseAPI(path=self._path, lang=language)
            self._apis[language] = api
        return api

    def _check_owner(self) -> None:
        if self._owner is None:
            self._owner = threading.get_ident()
        assert threading.get_ident() == self._owner, "OcrEngine used from a thread that does not own it"

    def recognize(self, image: Image.Image, language: str, page_number: int, timeout_seconds: float = 0) -> Recognition:
        """Read one page as it is; ``timeout_seconds`` > 0 bounds Tesseract's time (JobFailedError "timeout")."""
        self._check_owner()
        started = time.perf_counter()
        api = self._api(language)
        _set_pixels(api, image)
        dpi = image.info.get("dpi")
        # Rounded, not truncated: a PNG stores 300 dpi as 11811 px/m, which reads back as 299.9994.
        if dpi and 70 <= round(dpi[0]) <= 2400:
            api.SetSourceResolution(round(dpi[0]))
        if not api.Recognize(timeout=max(1, int(timeout_seconds * 1000)) if timeout_seconds > 0 else 0):
            api.Clear()
            raise JobFailedError("timeout", f"page {page_number} took longer than {timeout_seconds:.0f}s to read")
        tsv = api.GetTSVText(0)
        skew = _measured_skew(api)
        page = PageText(number=page_number, width=image.width, height=image.height)
        page.paragraphs = _paragraphs_from_tsv(tsv)
        page.seconds = round(time.perf_counter() - started, 3)
        api.Clear()
        return Recognition(page, skew)

    def orientation(self, image: Image.Image) -> tuple[int, float] | None:
        """Tesseract's OSD: (clockwise degrees that turn the page upright, confidence), or None
        when it found too little text to tell."""
        self._check_owner()
        if self._osd is None:
            self._osd = tesserocr.PyTessBaseAPI(path=self._path, lang="osd", psm=tesserocr.PSM.OSD_ONLY)
        sample = image
        if image.width * image.height > OSD_MAX_PIXELS:
            factor = math.sqrt(OSD_MAX_PIXELS / (image.width * image.height))
            sample = image.resize((int(image.width * factor), int(image.height * factor)), Image.Resampling.BOX)
        _set_pixels(self._osd, sample)
        try:
            found = self._osd.DetectOrientationScript()
        finally:
            self._osd.Clear()
        if not found:
            return None
        # OSD names the page's counter-clockwise orientation; turning it back is clockwise.
        return (360 - int(found["orient_deg"])) % 360, float(found["orient_conf"])

    def close(self) -> None:
        for api in self._apis.values():
            api.End()
        self._apis.clear()
        if self._osd is not None:
            self._osd.End()
            self._osd = None


def _measured_skew(api: tesserocr.PyTessBaseAPI) -> float:
    """The clockwise degrees that would level the lines Tesseract found (0 if it found none)."""
    iterator = api.GetIterator()
    if iterator is None:
        return 0.0
    try:
        # Tesseract reports the counter-clockwise turn, in radians.
        return -math.degrees(iterator.Orientation()[3])
    except RuntimeError:
        return 0.0


def _set_pixels(api: tesserocr.PyTessBaseAPI, image: Image.Image) -> None:
    # Raw pixels: tesserocr's SetImage(PIL image) re-encodes the image for Leptonica while
    # holding the GIL (0.4 s for a 300 dpi page, 1.2 s for 80 MP), which serialised threads.
    # Colour stays colour (Tesseract thresholds each channel); anything else is 8-bit grey.
    pixels = image if image.mode in ("L", "RGB") else image.convert("L")
    depth = 3 if pixels.mode == "RGB" else 1
    api.SetImageBytes(pixels.tobytes(), pixels.width, pixels.height, depth, depth * pixels.width)


def _paragraphs_from_tsv(tsv: str) -> list[Paragraph]:
    """Group Tesseract's TSV word rows (already in reading order) into paragraphs and lines."""
    paragraphs: list[Paragraph] = []
    current_para: tuple[int, int] | None = None
    current_line: tuple[int, int, int] | None = None
    for row in tsv.splitlines():
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != str(_TSV_WORD_LEVEL):
            continue
        text = cols[11].strip()
        if not text:
            continue
        block, par, line = int(cols[2]), int(cols[3]), int(cols[4])
        if (block, par) != current_para:
            paragraphs.append(Paragraph())
            current_para = (block, par)
            current_line = None
        if (block, par, line) != current_line:
            paragraphs[-1].lines.append(Line())
            current_line = (block, par, line)
        paragraphs[-1].lines[-1].words.append(
            Word(
                text=text,
                confidence=max(0.0, float(cols[10])),
                left=int(cols[6]),
                top=int(cols[7]),
                width=int(cols[8]),
                height=int(cols[9]),
            )
        )
    return paragraphs
