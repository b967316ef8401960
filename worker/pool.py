"""The pool that reads pages for every job of a worker process: ``size`` threads, each driving
one sandbox child (worker/sandbox.py) with its own warm Tesseract engine.

Pages, not documents, are the unit of work: one multi-page PDF keeps every child busy instead
of one. Among the pages waiting, the largest goes first (longest-processing-time-first): a big
scan started early overlaps the small ones instead of running alone at the end. Only the few
pages each job has in flight wait here, so no page waits behind more than those. A job's own
small requests (counting its pages, rendering its results) go before any page.

Fair shares between users: a page whose user has fewer pages in this pool than its share of
the children (children / users with pages here, at least one) goes before the pages of users
over their share. So a user with one page waiting is read next, however many pages another
user's jobs keep here, while one user alone still gets longest-first order.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.settings import Settings
from worker.results import DocumentText, PageText
from worker.sandbox import Child, SandboxCrashedError, SandboxLimits
from worker.sandbox_work import ChildSetup, ReadPage, Render, Survey
from worker.upright import upright_policy

log = logging.getLogger("untxt.worker.pool")

# Surveys and renders first (few, short, and a job waits on them), then pages: those within
# their user's share first, then the rest; largest first within each.
_URGENT, _PAGE = 0, 1
_WITHIN_SHARE, _OVER_SHARE = 0, 1
Rank = tuple[int, int, int]


@dataclass(frozen=True)
class _Work:
    future: Future[Any]
    request: Survey | ReadPage | Render
    timeout: float


class OcrPool:
    def __init__(self, settings: Settings, size: int | None = None) -> None:
        self._setup = ChildSetup(
            tessdata_dir=settings.tessdata_dir,
            max_image_pixels=settings.max_image_pixels,
            pdf_dpi=settings.pdf_dpi,
            policy=upright_policy(settings),
        )
        self._limits = SandboxLimits(
            memory_bytes=settings.sandbox_memory_mb * 1024 * 1024, isolate_network=settings.sandbox_isolate_network
        )
        self._work: queue.PriorityQueue[tuple[Rank, int, _Work | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._pages_by_owner: Counter[str] = Counter()
        self._owners_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._serve, name=f"reader-{i}", daemon=True)
            for i in range(size or settings.worker_concurrency)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def size(self) -> int:
        return len(self._threads)

    def _put(self, rank: Rank, request: Survey | ReadPage | Render, timeout: float) -> Future[Any]:
        future: Future[Any] = Future()
        self._work.put((rank, next(self._order), _Work(future, request, timeout)))
        return future

    def survey(self, path: Path, mime_type: str, max_pages: int, timeout: float) -> list[int]:
        """Each page's pixel count (the page limit checked); raises what the child found wrong."""
        return self._put((_URGENT, 0, 0), Survey(str(path), mime_type, max_pages), timeout).result()

    def submit_page(
        self,
        path: Path,
        mime_type: str,
        number: int,
        language: str,
        timeout: float,
        pixels: int,
        owner: str | None = None,
    ) -> Future[PageText]:
        """``owner``: the user whose page it is, for fair shares (None: no share, longest first)."""
        request = ReadPage(str(path), mime_type, number, language, timeout)
        if owner is None:
            return self._put((_PAGE, _OVER_SHARE, -pixels), request, timeout)
        with self._owners_lock:
            owners = len(self._pages_by_owner) + (owner not in self._pages_by_owner)
            within = self._pages_by_owner[owner] < max(1, self.size // owners)
            self._pages_by_owner[owner] += 1
        future = self._put((_PAGE, _WITHIN_SHARE if within else _OVER_SHARE, -pixels), request, timeout)
        future.add_done_callback(lambda _: self._page_left(owner))
        return future

    def _page_left(self, owner: str) -> None:
        with self._owners_lock:
            self._pages_by_owner[owner] -= 1
            if self._pages_by_owner[owner] <= 0:
                del self._pages_by_owner[owner]

    def render(self, path: Path, mime_type: str, doc: DocumentText, timeout: float) -> dict[str, bytes]:
        """Every result format's bytes (rendering parses the upload again, for the PDF)."""
        return self._put((_URGENT, 0, 0), Render(str(path), mime_type, doc), timeout).result()

    def _serve(self) -> None:
        child = Child(self._limits, self._setup)
        try:
            while (work := self._work.get()[2]) is not None:
                if not work.future.set_running_or_notify_cancel():
                    continue
                try:
                    work.future.set_result(child.call(work.request, work.timeout))
                except SandboxCrashedError as exc:
                    log.error("a sandbox process died reading a file", extra={"exit_code": exc.exit_code})
                    work.future.set_exception(exc)
                except Exception as exc:  # noqa: BLE001 - handed to the waiting job
                    work.future.set_exception(exc)
        finally:
            child.close()

    def close(self) -> None:
        for _ in self._threads:
            # Sorts after all work: the threads finish what is queued first.
            self._work.put(((2, 0, 0), next(self._order), None))
        for thread in self._threads:
            thread.join()
