"""Tesseract through tesserocr: a pool of warm engines, one per thread, reused for every page.

Loading a traineddata model costs a good part of recognising a page, so each engine is
initialised once per language set and kept; tesserocr releases the GIL while recognising, so
the pool's threads give real parallelism. Pages, not documents, are the unit of work: one
multi-page PDF keeps every core busy instead of one.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import NamedTuple

import tesserocr
from PIL import Image

from common.languages import UnsupportedLanguageError, check_language, installed_languages
from worker.errors import JobFailedError
from worker.results import Line, PageText, Paragraph, Word

ENGINE_NAME = "tesseract"
_TSV_WORD_LEVEL = 5


def engine_version() -> str:
    return f"{ENGINE_NAME} {tesserocr.tesseract_version().split()[1]}"


def validate_language(language: str, tessdata_dir: str) -> str:
    """``eng``, ``vie``, ``eng+vie``...: every part must be an installed model."""
    try:
        return check_language(language, installed_languages(tessdata_dir))
    except UnsupportedLanguageError as exc:
        raise JobFailedError("unsupported_language", str(exc)) from exc


class OcrEngine:
    """Not thread-safe: each worker thread owns one."""

    def __init__(self, tessdata_dir: str) -> None:
        # tesserocr wants the directory with a trailing separator.
        self._path = str(Path(tessdata_dir)) + "/"
        self._apis: dict[str, tesserocr.PyTessBaseAPI] = {}
        self._owner: int | None = None  # the first thread to use the engine owns it

    def _api(self, language: str) -> tesserocr.PyTessBaseAPI:
        api = self._apis.get(language)
        if api is None:
            api = tesserocr.PyTessBaseAPI(path=self._path, lang=language)
            self._apis[language] = api
        return api

    def recognize(self, image: Image.Image, language: str, page_number: int, timeout_seconds: float = 0) -> PageText:
        """Read one page; ``timeout_seconds`` > 0 bounds Tesseract's time (JobFailedError "timeout")."""
        if self._owner is None:
            self._owner = threading.get_ident()
        assert threading.get_ident() == self._owner, "OcrEngine used from a thread that does not own it"
        started = time.perf_counter()
        api = self._api(language)
        gray = image if image.mode == "L" else image.convert("L")
        # Raw pixels: tesserocr's SetImage(PIL image) re-encodes the image for Leptonica while
        # holding the GIL (0.4 s for a 300 dpi page, 1.2 s for 80 MP), which serialised threads.
        api.SetImageBytes(gray.tobytes(), gray.width, gray.height, 1, gray.width)
        dpi = image.info.get("dpi")
        if dpi and 70 <= int(dpi[0]) <= 2400:
            api.SetSourceResolution(int(dpi[0]))
        if not api.Recognize(timeout=max(1, int(timeout_seconds * 1000)) if timeout_seconds > 0 else 0):
            api.Clear()
            raise JobFailedError("timeout", f"page {page_number} took longer than {timeout_seconds:.0f}s to read")
        tsv = api.GetTSVText(0)
        page = PageText(number=page_number, width=image.width, height=image.height)
        page.paragraphs = _paragraphs_from_tsv(tsv)
        page.seconds = round(time.perf_counter() - started, 3)
        api.Clear()
        return page

    def close(self) -> None:
        for api in self._apis.values():
            api.End()
        self._apis.clear()


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


class _PageJob(NamedTuple):
    future: Future[PageText]
    image: Image.Image
    language: str
    number: int
    timeout: float


class OcrPool:
    """``size`` threads, each owning an OcrEngine, reading pages submitted by any job.

    Among the pages waiting, the largest goes first (longest-processing-time-first): a big
    scan started early overlaps the small ones instead of running alone at the end. Only the
    few pages each job has in flight wait here, so no page waits behind more than those.
    """

    def __init__(self, tessdata_dir: str, size: int) -> None:
        self._pages: queue.PriorityQueue[tuple[int, int, _PageJob | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._threads = [
            threading.Thread(target=self._serve, args=(tessdata_dir,), name=f"ocr-{i}", daemon=True)
            for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def size(self) -> int:
        return len(self._threads)

    def submit(self, image: Image.Image, language: str, page_number: int, timeout_seconds: float) -> Future[PageText]:
        """Queue a page; the pool closes ``image`` once it is read (or the future is cancelled)."""
        future: Future[PageText] = Future()
        job = _PageJob(future, image, language, page_number, timeout_seconds)
        self._pages.put((-image.width * image.height, next(self._order), job))
        return future

    def _serve(self, tessdata_dir: str) -> None:
        engine = OcrEngine(tessdata_dir)
        try:
            while (job := self._pages.get()[2]) is not None:
                future, image, language, number, timeout = job
                try:
                    if future.set_running_or_notify_cancel():
                        try:
                            future.set_result(engine.recognize(image, language, number, timeout))
                        except Exception as exc:  # noqa: BLE001 - handed to the waiting job
                            future.set_exception(exc)
                finally:
                    image.close()
        finally:
            engine.close()

    def close(self) -> None:
        for _ in self._threads:
            # Sorts after every page: the threads finish the queued work first.
            self._pages.put((1, next(self._order), None))
        for thread in self._threads:
            thread.join()
