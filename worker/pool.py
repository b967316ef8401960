"""The pool that reads pages for every job of a worker process: ``size`` threads, each driving
one sandbox child (worker/sandbox.py) with its own warm Tesseract engine.

Pages, not documents, are the unit of work: one multi-page PDF keeps every child busy instead
of one. Among the pages waiting, the largest goes first (longest-processing-time-first): a big
scan started early overlaps the small ones instead of running alone at the end. Only the few
pages each job has in flight wait here, so no page waits behind more than those. A job's own
small requests (counting its pages, rendering its results) go before any page.

One more child than engines serves only those small requests: otherwise a job's survey and its
render each wait for a child to finish a page of some other job (a page-time each, measured:
a one-page job behind another user's backlog waited 6 page-times, most of it for children).
Its engine sits idle; a small one-page job's whole path then waits for one page at most.

Fair shares between users: a page whose user has fewer pages in this pool than its share of
the children (children / users with pages here, at least one) goes before the pages of users
over their share. So a user with one page waiting is read next, however many pages another
user's jobs keep here, while one user alone still gets longest-first order.
"""

from __future__ import annotations

import heapq
import itertools
import logging
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

# Pages within their user's share first, then the rest; largest first within each.
_WITHIN_SHARE, _OVER_SHARE = 0, 1
Rank = tuple[int, int]


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
        # Surveys and renders (few, short, and a job waits on each), oldest first; pages by rank.
        self._small: list[tuple[int, _Work]] = []
        self._pages: list[tuple[Rank, int, _Work]] = []
        self._ready = threading.Condition()
        self._closing = False
        self._order = itertools.count()
        self._pages_by_owner: Counter[str] = Counter()
        self._engines = size or settings.worker_concurrency
        self._threads = [
            threading.Thread(target=self._serve, args=(True,), name=f"reader-{i}", daemon=True)
            for i in range(self._engines)
        ]
        self._threads.append(threading.Thread(target=self._serve, args=(False,), name="reader-small", daemon=True))
        for thread in self._threads:
            thread.start()

    @property
    def size(self) -> int:
        """Children that read pages (the spare one for small requests not counted)."""
        return self._engines

    def _put(self, request: Survey | ReadPage | Render, timeout: float, rank: Rank | None = None) -> Future[Any]:
        """Queue a small request (``rank`` None) or a page."""
        future: Future[Any] = Future()
        work = _Work(future, request, timeout)
        with self._ready:
            if rank is None:
                heapq.heappush(self._small, (next(self._order), work))
            else:
                heapq.heappush(self._pages, (rank, next(self._order), work))
            self._ready.notify_all()
        return future

    def _take(self, pages_too: bool) -> _Work | None:
        """The next request for a reader thread; None once the pool closes and nothing is left."""
        with self._ready:
            while True:
                if self._small:
                    return heapq.heappop(self._small)[1]
                if pages_too and self._pages:
                    return heapq.heappop(self._pages)[2]
                if self._closing:
                    return None
                self._ready.wait()

    def survey(self, path: Path, mime_type: str, max_pages: int, timeout: float) -> list[int]:
        """Each page's pixel count (the page limit checked); raises what the child found wrong."""
        return self._put(Survey(str(path), mime_type, max_pages), timeout).result()

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
            return self._put(request, timeout, (_OVER_SHARE, -pixels))
        with self._ready:
            owners = len(self._pages_by_owner) + (owner not in self._pages_by_owner)
            within = self._pages_by_owner[owner] < max(1, self.size // owners)
            self._pages_by_owner[owner] += 1
        future = self._put(request, timeout, (_WITHIN_SHARE if within else _OVER_SHARE, -pixels))
        future.add_done_callback(lambda _: self._page_left(owner))
        return future

    def _page_left(self, owner: str) -> None:
        with self._ready:
            self._pages_by_owner[owner] -= 1
            if self._pages_by_owner[owner] <= 0:
                del self._pages_by_owner[owner]

    def render(self, path: Path, mime_type: str, doc: DocumentText, timeout: float) -> dict[str, bytes]:
        """Every result format's bytes (rendering parses the upload again, for the PDF)."""
        return self._put(Render(str(path), mime_type, doc), timeout).result()

    def _serve(self, pages_too: bool) -> None:
        child = Child(self._limits, self._setup)
        try:
            while (work := self._take(pages_too)) is not None:
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
        """The threads finish what is queued first, then stop."""
        with self._ready:
            self._closing = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()
