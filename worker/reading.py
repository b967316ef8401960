"""A document's pages, read in page order: the one path from a file to its text, used by the job
processor and by the parity tests and benchmarks that hold it to the ``tesseract`` CLI.

The pool's sandbox children do the reading (worker/sandbox_work.py): a PDF page's own text
layer is taken as it is; a page with no ink (``worker/ink.py``) is recorded without OCR;
anything else is read upright (``worker/upright.py``). Pages are submitted a few ahead of the one
being waited for, so one document keeps every child busy; results come back in page order.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

from common.settings import Settings
from worker.errors import JobFailedError
from worker.pool import OcrPool
from worker.results import PageText


def time_left(settings: Settings, deadline: float) -> float:
    """What one request may take: the page timeout, or what is left of the job's time."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise JobFailedError("timeout", f"the job took longer than {settings.job_timeout_seconds}s")
    return min(float(settings.page_timeout_seconds), remaining)


def survey(source: Path, mime_type: str, pool: OcrPool, settings: Settings, deadline: float) -> list[int]:
    """Each page's pixel count; refuses documents over MAX_PDF_PAGES (or with none)."""
    with job_deadline(settings, deadline):
        return pool.survey(source, mime_type, settings.max_pdf_pages, time_left(settings, deadline))


@contextlib.contextmanager
def job_deadline(settings: Settings, deadline: float) -> Iterator[None]:
    """A request that ran out of time because the job did is the job's timeout, and says so
    (not "page 3 took longer than 0s")."""
    try:
        yield
    except JobFailedError as exc:
        if exc.code == "timeout" and time.monotonic() >= deadline - 1:
            raise JobFailedError("timeout", f"the job took longer than {settings.job_timeout_seconds}s") from exc
        raise


def read_pages(
    source: Path,
    mime_type: str,
    language: str,
    pool: OcrPool,
    settings: Settings,
    deadline: float,
    pages: list[int] | None = None,
    owner: str | None = None,
) -> Iterator[PageText]:
    """Yield each page's text in order; ``deadline`` (time.monotonic) bounds the whole document,
    ``pages`` is its survey if the caller has it already, ``owner`` the user (for the pool's
    fair shares).

    Close the iterator (``contextlib.closing``) when leaving early: pages still waiting in the
    pool are then withdrawn.
    """
    if pages is None:
        pages = survey(source, mime_type, pool, settings, deadline)
    ahead: deque[Future[PageText]] = deque()
    try:
        for number, pixels in enumerate(pages, start=1):
            timeout = time_left(settings, deadline)
            ahead.append(pool.submit_page(source, mime_type, number, language, timeout, pixels, owner))
            while len(ahead) > pool.size:
                with job_deadline(settings, deadline):
                    page = ahead.popleft().result()
                yield page
        while ahead:
            with job_deadline(settings, deadline):
                page = ahead.popleft().result()
            yield page
    finally:
        for pending in ahead:
            pending.cancel()
