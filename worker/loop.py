"""A worker thread: fetch a job, process it, acknowledge it; repeat until told to stop."""

from __future__ import annotations

import logging
import threading

from worker.processor import HANDED_BACK, JobProcessor
from worker.queue import JobQueue
from worker.state import WorkerState

log = logging.getLogger("untxt.worker.loop")

# BLMOVE wakes at least this often so the loop notices a shutdown request.
FETCH_TIMEOUT_SECONDS = 1.0
# After an infrastructure error, wait before touching Redis/PostgreSQL again.
ERROR_BACKOFF_SECONDS = 2.0


class WorkerLoop(threading.Thread):
    def __init__(
        self, slot: str, queue: JobQueue, processor: JobProcessor, state: WorkerState, stop: threading.Event
    ) -> None:
        super().__init__(name=f"worker-{slot}", daemon=True)
        self.slot = slot
        self.queue = queue
        self.processor = processor
        self.state = state
        self.stop = stop

    def run(self) -> None:
        log.info("worker loop started", extra={"slot": self.slot, "processing_list": self.queue.processing})
        while not self.stop.is_set():
            self.state.tick(self.slot)
            try:
                raw = self.queue.fetch(FETCH_TIMEOUT_SECONDS)
            except Exception:
                # Redis unreachable: keep trying; the job, if any, is safe in Redis or PostgreSQL.
                log.warning("queue unavailable; retrying", exc_info=True)
                self.stop.wait(ERROR_BACKOFF_SECONDS)
                continue
            if raw is not None:
                self._process(raw)
        self.processor.tasks.close()
        log.info("worker loop stopped", extra={"slot": self.slot})

    def _process(self, raw: bytes) -> None:
        self.state.begin(self.slot, raw)
        outcome, pages = "error", 0
        try:
            outcome, pages = self.processor.handle(raw)
        except Exception:
            log.exception("could not finish or record the job; giving it back to the queue")
            self._give_back(raw)
            self.stop.wait(ERROR_BACKOFF_SECONDS)
            return
        finally:
            self.state.end(self.slot, outcome, pages)
        if outcome == HANDED_BACK:
            self._give_back(raw)
            return
        try:
            self.queue.ack(raw)
        except Exception:
            # A re-delivered message is harmless: claims are conditional on the task's state.
            log.warning("could not acknowledge the job", exc_info=True)

    def _give_back(self, raw: bytes) -> None:
        try:
            self.queue.give_back(raw)
        except Exception:
            # Still in our processing list; the reaper returns it if this worker dies, and the
            # reconciler re-enqueues the task from PostgreSQL if the list is lost.
            log.error("could not give the job back to the queue", exc_info=True)
