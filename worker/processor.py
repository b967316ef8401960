"""One job from claim to outcome: download, OCR page by page, render, store, record, announce."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from common import keys
from common.events import TaskEvent
from common.job import InvalidJobMessageError, JobMessage
from common.settings import Settings
from common.statuses import TaskStatus
from worker.db import ClaimedTask, TaskStore
from worker.documents import count_pages, iter_pages
from worker.errors import JobFailedError
from worker.ocr import OcrEngine, engine_version, validate_language
from worker.queue import JobQueue
from worker.render import render_html
from worker.results import DocumentText
from worker.storage import ObjectStore

log = logging.getLogger("untxt.worker.processor")


class JobProcessor:
    """Owned by one worker thread (it holds that thread's OCR engine and DB connection)."""

    def __init__(
        self,
        settings: Settings,
        worker_id: str,
        tasks: TaskStore,
        store: ObjectStore,
        queue: JobQueue,
        engine: OcrEngine,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.tasks = tasks
        self.store = store
        self.queue = queue
        self.engine = engine

    def handle(self, raw: bytes) -> tuple[str, int]:
        """Process one raw queue message; returns (outcome, pages) where outcome is
        ``completed``, ``failed`` or ``skipped``. Raises only when the outcome could not be
        recorded (e.g. PostgreSQL unreachable), in which case the message must stay unacked."""
        try:
            message = JobMessage.from_json(raw)
        except InvalidJobMessageError as exc:
            log.error("dropping malformed queue message", extra={"error": str(exc), "raw": raw[:200]})
            return "skipped", 0
        task = self.tasks.claim(message.task_id, self.worker_id)
        if task is None:
            log.info(
                "task is not queued any more (duplicate or stale message); skipping", extra={"task_id": message.task_id}
            )
            return "skipped", 0
        self._announce(task, TaskStatus.PROCESSING, 0, "processing started")
        workdir = Path(tempfile.mkdtemp(prefix=f"{task.task_id}-", dir=self.settings.work_dir))
        try:
            summary = self._run(task, workdir)
        except JobFailedError as exc:
            log.warning("task failed", extra={"task_id": task.task_id, "error_code": exc.code, "error": exc.message})
            if self.tasks.fail(task.task_id, self.worker_id, exc.code, exc.message):
                self._announce(task, TaskStatus.FAILED, 0, exc.message, error_code=exc.code)
            return "failed", 0
        except Exception as exc:
            # An unexpected fault must not kill the worker; the task ends failed with the reason.
            log.exception("task crashed", extra={"task_id": task.task_id})
            message_text = f"processing error: {type(exc).__name__}: {exc}"
            if self.tasks.fail(task.task_id, self.worker_id, "processing_error", message_text):
                self._announce(task, TaskStatus.FAILED, 0, message_text, error_code="processing_error")
            return "failed", 0
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        self._announce(task, TaskStatus.COMPLETED, 100, "completed", result=summary)
        return "completed", summary["pages"]

    def _run(self, task: ClaimedTask, workdir: Path) -> dict[str, Any]:
        started = time.perf_counter()
        language = validate_language(task.language, self.settings.tessdata_dir)
        source = workdir / "source"
        self.store.download(task.s3_key, source)
        downloaded = time.perf_counter()

        total = count_pages(source, task.mime_type, self.settings.max_pdf_pages)
        doc = DocumentText(filename=task.filename, language=language, engine=engine_version())
        pages = iter_pages(source, task.mime_type, self.settings.max_image_pixels, self.settings.pdf_dpi)
        for number, image in enumerate(pages, start=1):
            doc.pages.append(self.engine.recognize(image, language, number))
            image.close()
            progress = min(99, number * 100 // total)
            self.tasks.set_progress(task.task_id, self.worker_id, progress)
            self._announce(
                task, TaskStatus.PROCESSING, progress, f"page {number} of {total} done", page=number, pages=total
            )
        recognised = time.perf_counter()

        result_key = keys.result_key(task.user_id, task.file_id, task.file_created_at)
        self.store.put(result_key, render_html(doc).encode("utf-8"), "text/html; charset=utf-8")
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
            # Someone else changed the task meanwhile (e.g. it was cancelled): theirs stands.
            raise JobFailedError("superseded", "the task changed state while it was being processed")
        return summary

    def _announce(self, task: ClaimedTask, status: TaskStatus, progress: int, message: str, **extra: Any) -> None:
        event = TaskEvent(
            task_id=task.task_id, user_id=task.user_id, status=status, progress=progress, message=message, **extra
        )
        try:
            self.queue.publish(event)
        except Exception:  # events are best effort; PostgreSQL holds the truth
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
                "words": len(page.words),
                "characters": len(page.text),
                "meanConfidence": page.mean_confidence,
                "seconds": page.seconds,
            }
            for page in doc.pages
        ],
    }
