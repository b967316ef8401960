"""One job from claim to outcome: download, read page by page, render, store, record, announce."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from PIL import Image

from common import keys
from common.events import TaskEvent
from common.job import InvalidJobMessageError, JobMessage
from common.settings import Settings
from common.statuses import TaskStatus
from worker.db import ClaimedTask, TaskStore
from worker.documents import count_pages, is_blank, iter_pages
from worker.errors import JobFailedError
from worker.ocr import OcrPool, engine_version, validate_language
from worker.queue import JobQueue
from worker.render import render_html, render_json, render_text
from worker.results import DocumentText, PageText
from worker.retry import is_transient
from worker.storage import ObjectStore

log = logging.getLogger("untxt.worker.processor")

# Outcomes of handle(): the first three are final; "handed_back" means the job is queued again.
COMPLETED, FAILED, CANCELLED, SKIPPED, HANDED_BACK = "completed", "failed", "cancelled", "skipped", "handed_back"


class _Stop(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised at a page boundary to leave the job: cancelled by the caller, or worker shutdown."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class JobProcessor:
    """Owned by one worker thread (it holds that thread's OCR engine and DB connection)."""

    def __init__(
        self,
        settings: Settings,
        worker_id: str,
        tasks: TaskStore,
        store: ObjectStore,
        queue: JobQueue,
        pool: OcrPool,
        stop: threading.Event,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.tasks = tasks
        self.store = store
        self.queue = queue
        self.pool = pool
        self.stop = stop

    def handle(self, raw: bytes) -> tuple[str, int]:
        """Process one raw queue message; returns (outcome, pages read).

        Raises only when the outcome could not be recorded (e.g. PostgreSQL unreachable after
        retries); the caller then gives the message back to the queue.
        """
        try:
            message = JobMessage.from_json(raw)
        except InvalidJobMessageError as exc:
            log.error("dropping malformed queue message", extra={"error": str(exc), "raw": raw[:200]})
            return SKIPPED, 0
        task = self.tasks.claim(message.task_id, self.worker_id)
        if task is None:
            log.info(
                "task is not queued any more (duplicate, stale or cancelled message); skipping",
                extra={"task_id": message.task_id},
            )
            return SKIPPED, 0
        self._announce(task, TaskStatus.PROCESSING, 0, "processing started")
        workdir = Path(tempfile.mkdtemp(prefix=f"{task.task_id}-", dir=self.settings.work_dir))
        try:
            summary = self._run(task, workdir)
        except _Stop as stop:
            return self._stopped(task, stop.outcome), 0
        except JobFailedError as exc:
            return self._fail(task, exc.code, exc.message), 0
        except Exception as exc:
            # Infrastructure still failing after retries: queue the task again (if PostgreSQL
            # answers; otherwise the reconciler will) and let the caller return the message.
            if is_transient(exc):
                with contextlib.suppress(Exception):
                    self.tasks.hand_back(task.task_id, self.worker_id)
                raise
            # Anything else is a fault of ours with this input; the worker must survive it.
            log.exception("task crashed", extra={"task_id": task.task_id})
            return self._fail(task, "processing_error", f"processing error: {type(exc).__name__}: {exc}"), 0
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        self._announce(task, TaskStatus.COMPLETED, 100, "completed", result=summary)
        return COMPLETED, summary["pages"]

    def _fail(self, task: ClaimedTask, code: str, message: str) -> str:
        log.warning("task failed", extra={"task_id": task.task_id, "error_code": code, "error": message})
        if self.tasks.fail(task.task_id, self.worker_id, code, message):
            self._announce(task, TaskStatus.FAILED, 0, message, error_code=code)
        return FAILED

    def _stopped(self, task: ClaimedTask, outcome: str) -> str:
        if outcome == SKIPPED:
            log.info("task changed state while being processed; its outcome stands", extra={"task_id": task.task_id})
            return SKIPPED
        if outcome == CANCELLED:
            if self.tasks.cancel(task.task_id, self.worker_id):
                self._announce(task, TaskStatus.CANCELLED, 0, "cancelled")
            return CANCELLED
        if self.tasks.hand_back(task.task_id, self.worker_id):
            self._announce(task, TaskStatus.QUEUED, 0, "worker shutting down; queued again")
        log.info("handed a job back on shutdown", extra={"task_id": task.task_id})
        return HANDED_BACK

    def _run(self, task: ClaimedTask, workdir: Path) -> dict[str, Any]:
        started = time.perf_counter()
        deadline = time.monotonic() + self.settings.job_timeout_seconds
        language = validate_language(task.language, self.settings.tessdata_dir)
        source = workdir / "source"
        self.store.download(task.s3_key, source)
        downloaded = time.perf_counter()

        total = count_pages(source, task.mime_type, self.settings.max_pdf_pages)
        doc = DocumentText(filename=task.filename, language=language, engine=engine_version())
        # Pages go to the shared OCR pool as they are decoded, a few ahead of the one being
        # waited for, so one document keeps every engine busy; results are taken in page order.
        ahead: deque[PageText | Future[PageText]] = deque()
        try:
            pages = iter_pages(source, task.mime_type, self.settings.max_image_pixels, self.settings.pdf_dpi)
            for page in pages:
                ahead.append(self._start_page(page.number, page.image, page.text_layer, language, deadline))
                while len(ahead) > self.pool.size:
                    self._finish_page(task, doc, ahead.popleft(), total)
            while ahead:
                self._finish_page(task, doc, ahead.popleft(), total)
        finally:
            for pending in ahead:
                if isinstance(pending, Future):
                    pending.cancel()
        recognised = time.perf_counter()

        result_key = self._store_results(task, doc)
        stored = time.perf_counter()
        summary = _summary(
            doc,
            {
                "download": downloaded - started,
                "ocr": recognised - downloaded,
                "renderAndUpload": stored - recognised,
                "total": stored - started,
            },
        )
        if not self.tasks.complete(task, self.worker_id, result_key, summary):
            # Someone else changed the task meanwhile (cancelled, or reassigned after we were
            # presumed dead): their outcome stands and ours is not recorded twice.
            raise _Stop(SKIPPED)
        return summary

    def _start_page(
        self, number: int, image: Image.Image | None, layer: PageText | None, language: str, deadline: float
    ) -> PageText | Future[PageText]:
        if layer is not None:
            return layer
        assert image is not None
        if is_blank(image):
            image.close()
            return PageText(number=number, width=image.width, height=image.height, source="blank")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            image.close()
            raise JobFailedError("timeout", f"the job took longer than {self.settings.job_timeout_seconds}s")
        return self.pool.submit(image, language, number, min(float(self.settings.page_timeout_seconds), remaining))

    def _finish_page(
        self, task: ClaimedTask, doc: DocumentText, pending: PageText | Future[PageText], total: int
    ) -> None:
        page = pending.result() if isinstance(pending, Future) else pending
        doc.pages.append(page)
        self._page_done(task, page.number, total)

    def _page_done(self, task: ClaimedTask, number: int, total: int) -> None:
        """Page boundary: record progress, then honour a cancel request or a shutdown."""
        progress = min(99, number * 100 // total)
        still_wanted = self.tasks.set_progress(task.task_id, self.worker_id, progress)
        self._announce(
            task, TaskStatus.PROCESSING, progress, f"page {number} of {total} done", page=number, pages=total
        )
        if not still_wanted:
            raise _Stop(CANCELLED)
        if self.stop.is_set() and number < total:
            raise _Stop(HANDED_BACK)

    def _store_results(self, task: ClaimedTask, doc: DocumentText) -> str:
        def key(name: str) -> str:
            return keys.result_key(task.user_id, task.file_id, task.file_created_at, name)

        self.store.put(key(keys.RESULT_TXT), render_text(doc).encode("utf-8"), "text/plain; charset=utf-8")
        self.store.put(key(keys.RESULT_JSON), render_json(doc).encode("utf-8"), "application/json")
        # result.html last: its key in the files row is what marks the results complete.
        html_key = key(keys.RESULT_HTML)
        self.store.put(html_key, render_html(doc).encode("utf-8"), "text/html; charset=utf-8")
        return html_key

    def _announce(self, task: ClaimedTask, status: TaskStatus, progress: int, message: str, **extra: Any) -> None:
        event = TaskEvent(
            task_id=task.task_id, user_id=task.user_id, status=status, progress=progress, message=message, **extra
        )
        try:
            self.queue.publish(event)
        except Exception:
            # Events are best effort; PostgreSQL holds the truth.
            log.warning("could not publish task event", exc_info=True, extra={"task_id": task.task_id})


def _summary(doc: DocumentText, seconds: dict[str, float]) -> dict[str, Any]:
    return {
        "pages": len(doc.pages),
        "characters": doc.characters,
        "words": len(doc.words),
        "meanConfidence": doc.mean_confidence,
        "language": doc.language,
        "engine": doc.engine,
        "seconds": {name: round(value, 3) for name, value in seconds.items()},
        "pageStats": [
            {
                "page": page.number,
                "source": page.source,
                "words": len(page.words),
                "characters": len(page.text),
                "meanConfidence": page.mean_confidence,
                "seconds": page.seconds,
            }
            for page in doc.pages
        ],
    }
