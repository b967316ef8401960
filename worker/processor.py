"""One job from claim to outcome: download, read page by page, render, store, record, announce."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from opentelemetry.trace import SpanKind

from common import keys, tracing
from common.events import TaskEvent
from common.job import InvalidJobMessageError, JobMessage
from common.jobqueue import JobQueue
from common.logs import log_context
from common.settings import Settings
from common.statuses import TaskStatus
from worker.db import ClaimedTask, TaskStore
from worker.errors import JobFailedError
from worker.ocr import engine_version, validate_language
from worker.outcomes import JobOutcome
from worker.pool import OcrPool
from worker.reading import job_deadline, read_pages, survey, time_left
from worker.results import DocumentText
from worker.retry import is_transient
from worker.sandbox import SandboxCrashedError
from worker.storage import ObjectStore

log = logging.getLogger("untxt.worker.processor")


# Logged when a slot learns it lost the task only after writing results (a check between PUTs,
# or its completion refused); it has deleted its attempt's folder by then.
# scripts/drills/multihost_check.py counts these lines.
STALE_FINISH = "task changed state while being processed; its outcome stands"
# Logged when it learns so before writing any: nothing of its run was stored.
LOST_BEFORE_RESULTS = "task changed state while being processed; no results written"


class _Stop(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised to leave the job: cancelled by the caller or worker shutdown (at a page boundary),
    or the task lost to another slot (``note`` says how far this run got)."""

    def __init__(self, outcome: JobOutcome, note: str = STALE_FINISH, objects_written: int = 0) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.note = note
        self.objects_written = objects_written


class JobProcessor:
    """Owned by one job slot (it holds the slot's DB connection; pages go to the process's
    shared OCR pool)."""

    def __init__(
        self,
        settings: Settings,
        slot_id: str,
        tasks: TaskStore,
        store: ObjectStore,
        queue: JobQueue,
        pool: OcrPool,
        stop: threading.Event,
    ) -> None:
        self.settings = settings
        self.slot_id = slot_id
        self.tasks = tasks
        self.store = store
        self.queue = queue
        self.pool = pool
        self.stop = stop

    def handle(self, raw: bytes) -> tuple[JobOutcome, int]:
        """Process one raw queue message; returns (outcome, pages read).

        Raises only when the outcome could not be recorded (e.g. PostgreSQL unreachable after
        retries); the caller then gives the message back to the queue.
        """
        try:
            message = JobMessage.from_json(raw)
        except InvalidJobMessageError as exc:
            log.error("dropping malformed queue message", extra={"error": str(exc), "raw": raw[:200]})
            return JobOutcome.SKIPPED, 0
        with (
            log_context(task_id=message.task_id, request_id=message.request_id),
            tracing.span("job", SpanKind.CONSUMER, {"untxt.task_id": message.task_id}, parent=message.trace) as span,
        ):
            outcome, pages = self._handle(message)
            span.set_attribute("untxt.outcome", outcome.value)
            return outcome, pages

    def _handle(self, message: JobMessage) -> tuple[JobOutcome, int]:
        task = self.tasks.claim(message.task_id, self.slot_id)
        if task is None:
            log.info(
                "task is not queued any more (duplicate, stale or cancelled message); skipping",
                extra={"task_id": message.task_id},
            )
            return JobOutcome.SKIPPED, 0
        self._announce(task, TaskStatus.PROCESSING, 0, "processing started")
        workdir = Path(tempfile.mkdtemp(prefix=f"{task.task_id}-", dir=self.settings.work_dir))
        try:
            summary = self._run(task, workdir)
        except _Stop as stop:
            return self._stopped(task, stop), 0
        except JobFailedError as exc:
            return self._fail(task, exc.code, exc.message, exc.detail), 0
        except SandboxCrashedError as exc:
            return self._reader_crashed(task, exc), 0
        except Exception as exc:
            # Infrastructure still failing after retries: queue the task again (if PostgreSQL
            # answers; otherwise the reconciler will) and let the caller return the message.
            if is_transient(exc):
                with contextlib.suppress(Exception):
                    self.tasks.hand_back(task.task_id, self.slot_id)
                raise
            # Anything else is a fault of ours with this input; the worker must survive it.
            log.exception("task crashed", extra={"task_id": task.task_id})
            message = "the file could not be processed (an error of ours; the operators have the details)"
            return self._fail(task, "processing_error", message, f"{type(exc).__name__}: {exc}"), 0
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        self._announce(task, TaskStatus.COMPLETED, 100, "completed", result=summary)
        log.info("task completed", extra={"pages": summary["pages"], "seconds": summary["seconds"]["total"]})
        return JobOutcome.COMPLETED, summary["pages"]

    def _fail(self, task: ClaimedTask, code: str, message: str, detail: str | None = None) -> JobOutcome:
        log.warning(
            "task failed", extra={"task_id": task.task_id, "error_code": code, "error": message, "detail": detail}
        )
        if self.tasks.fail(task.task_id, self.slot_id, code, message):
            self._announce(task, TaskStatus.FAILED, 0, message, error_code=code)
        return JobOutcome.FAILED

    def _reader_crashed(self, task: ClaimedTask, exc: SandboxCrashedError) -> JobOutcome:
        """The file killed the child reading it. That counts toward the poison limit, as a dead
        worker does: the task is queued again, or failed ``worker_crashed`` at the limit."""
        log.error("the file crashed its reader", extra={"task_id": task.task_id, "exit_code": exc.exit_code})
        status = self.tasks.release_dead(task.task_id, self.slot_id, self.settings.max_worker_crashes)
        if status == TaskStatus.FAILED:
            self._announce(
                task, TaskStatus.FAILED, 0, "reading this file crashed repeatedly", error_code="worker_crashed"
            )
            return JobOutcome.FAILED
        if status == TaskStatus.QUEUED:
            self._announce(task, TaskStatus.QUEUED, 0, "the reader stopped unexpectedly; queued again")
            return JobOutcome.HANDED_BACK
        return JobOutcome.SKIPPED

    def _stopped(self, task: ClaimedTask, stop: _Stop) -> JobOutcome:
        outcome = stop.outcome
        if outcome == JobOutcome.SKIPPED:
            log.info(stop.note, extra={"task_id": task.task_id, "objects_written": stop.objects_written})
            return JobOutcome.SKIPPED
        if outcome == JobOutcome.CANCELLED:
            if not self.tasks.cancel(task.task_id, self.slot_id):
                # Not a cancel request: the page boundary found the task no longer ours.
                log.info(LOST_BEFORE_RESULTS, extra={"task_id": task.task_id})
                return JobOutcome.SKIPPED
            self._announce(task, TaskStatus.CANCELLED, 0, "cancelled")
            return JobOutcome.CANCELLED
        if self.tasks.hand_back(task.task_id, self.slot_id):
            self._announce(task, TaskStatus.QUEUED, 0, "worker shutting down; queued again")
        log.info("handed a job back on shutdown", extra={"task_id": task.task_id})
        return JobOutcome.HANDED_BACK

    def _run(self, task: ClaimedTask, workdir: Path) -> dict[str, Any]:
        started = time.perf_counter()
        deadline = time.monotonic() + self.settings.job_timeout_seconds
        language = validate_language(task.language, self.settings.tessdata_dir)
        source = workdir / "source"
        with tracing.span("fetch upload"):
            self.store.download(task.s3_key, source)
        downloaded = time.perf_counter()

        page_sizes = survey(source, task.mime_type, self.pool, self.settings, deadline)
        total = len(page_sizes)
        self.tasks.set_pages(task.task_id, self.slot_id, total)
        doc = DocumentText(filename=task.filename, language=language, engine=engine_version())
        pages = read_pages(
            source, task.mime_type, language, self.pool, self.settings, deadline, page_sizes, task.user_id
        )
        with contextlib.closing(pages), tracing.span("read pages", attributes={"untxt.pages": total}) as span:
            for page in pages:
                span.add_event("page read", {"untxt.page": page.number, "untxt.source": page.source})
                doc.pages.append(page)
                self._page_done(task, page.number, total)
        recognised = time.perf_counter()

        with tracing.span("store results"):
            result_key, written = self._store_results(task, doc, source, deadline)
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
        try:
            recorded = self.tasks.complete(task, self.slot_id, result_key, summary)
        except Exception:
            # PostgreSQL away past the retries: the folder goes if PostgreSQL answers in time to
            # tell that the completion did not commit; otherwise it stays (at worst unreferenced,
            # until the task's removal deletes the file's results prefix).
            with contextlib.suppress(Exception):
                self._discard_attempt(task, written, completion_sent=True)
            raise
        if not recorded:
            # Someone else changed the task meanwhile (reassigned after we were presumed dead,
            # maybe completed by another run or deleted since): their outcome stands, ours is
            # not recorded twice, and what this run wrote goes.
            self._discard_attempt(task, written, completion_sent=True)
            raise _Stop(JobOutcome.SKIPPED, objects_written=len(written))
        return summary

    def _page_done(self, task: ClaimedTask, number: int, total: int) -> None:
        """Page boundary: record progress, then honour a cancel request or a shutdown."""
        progress = min(99, number * 100 // total)
        still_wanted = self.tasks.set_progress(task.task_id, self.slot_id, progress)
        self._announce(
            task, TaskStatus.PROCESSING, progress, f"page {number} of {total} done", page=number, pages=total
        )
        if not still_wanted:  # cancel requested, or the task is not ours any more
            raise _Stop(JobOutcome.CANCELLED)
        if self.stop.is_set() and number < total:
            raise _Stop(JobOutcome.HANDED_BACK)

    def _store_results(
        self, task: ClaimedTask, doc: DocumentText, source: Path, deadline: float
    ) -> tuple[str, list[str]]:
        """Every format, rendered from the one reading (in a sandbox child: the PDF is parsed
        again), into this run's own folder; result.html last, since its key in the files row
        marks the results complete. Returns the primary key and the keys written."""
        with job_deadline(self.settings, deadline):
            rendered = self.pool.render(source, task.mime_type, doc, time_left(self.settings, deadline))
        written: list[str] = []  # every key a PUT was sent for, landed or not
        try:
            for fmt in sorted(rendered, key=lambda f: f == keys.RESULT_PRIMARY):
                # A slot cut off or stalled since its last page boundary for longer than its
                # heartbeat TTL has lost the task to the reaper; another slot may be reading it,
                # or have completed it, or its user deleted it. The claim is checked before each
                # PUT, so such a run stops without more work. A check cannot close the window
                # between its "still yours" and the PUT landing (TCP delivers a request once the
                # link is back, botocore waits up to 60 s an attempt): the keys do. Each run
                # writes under its own attempt's folder (the claim's tasks.attempts, never the
                # same for two runs), so a late PUT can only land in the loser's own folder,
                # which no row points to: never over the winner's objects, which are in the
                # folder the winner's completion recorded. The loser then deletes its folder
                # (_discard_attempt), and a removal of the task deletes the file's whole
                # results prefix, so what a loser killed before that left goes too.
                if not self.tasks.holds(task.task_id, self.slot_id):
                    raise _Stop(JobOutcome.SKIPPED, STALE_FINISH if written else LOST_BEFORE_RESULTS, len(written))
                key = self._result_key(task, fmt)
                written.append(key)
                put_started = time.monotonic()
                self.store.put(key, rendered[fmt], keys.content_type(fmt))
                if (put_seconds := time.monotonic() - put_started) > self.settings.heartbeat_ttl_seconds:
                    log.warning(
                        "a result PUT outlasted the heartbeat TTL: the task may have gone to another slot meanwhile",
                        extra={"task_id": task.task_id, "format": fmt, "seconds": round(put_seconds, 3)},
                    )
        except _Stop:
            self._discard_attempt(task, written, completion_sent=False)
            raise
        except Exception:
            # A PUT failed past botocore's retries (the task is handed back, and its next run
            # writes a folder of its own): nothing will point at this one. Best effort, with
            # the store likely away; a removal of the task deletes whatever is left.
            with contextlib.suppress(Exception):
                self._discard_attempt(task, written, completion_sent=False)
            raise
        return self._result_key(task, keys.RESULT_PRIMARY), written

    @staticmethod
    def _result_key(task: ClaimedTask, fmt: str) -> str:
        return keys.result_key(task.user_id, task.file_id, task.file_created_at, task.attempts, fmt)

    def _discard_attempt(self, task: ClaimedTask, written: list[str], completion_sent: bool) -> None:
        """This run ends without its results recorded: delete what it wrote. Only this run ever
        writes under its attempt's folder, so no other run's objects are at stake and the task's
        state does not matter. The one exception is a completion whose answer was lost
        (``completion_sent``: refused on the retry, or no answer at all), which may have
        committed: the folder stays if the files row records it. The upload is not touched."""
        if not written:
            return
        if completion_sent and self.tasks.records_result(task.task_id, self._result_key(task, keys.RESULT_PRIMARY)):
            return
        for key in written:
            self.store.delete(key)
        log.info(
            "removed the results of a run whose completion was not recorded",
            extra={"task_id": task.task_id, "objects": len(written), "attempt": task.attempts},
        )

    def _announce(self, task: ClaimedTask, status: TaskStatus, progress: int, message: str, **extra: Any) -> None:
        event = TaskEvent(
            task_id=task.task_id,
            user_id=task.user_id,
            status=status,
            progress=progress,
            message=message,
            tag=task.tag,
            **extra,
        )
        try:
            self.queue.announce(event)
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
        "formats": list(keys.RESULT_FORMATS),
        "seconds": {name: round(value, 3) for name, value in seconds.items()},
        "pageStats": [
            {
                "page": page.number,
                "source": page.source,
                "rotation": page.rotation,
                "skew": page.skew,
                "words": len(page.words),
                "characters": len(page.text),
                "meanConfidence": page.mean_confidence,
                "seconds": page.seconds,
            }
            for page in doc.pages
        ],
    }
