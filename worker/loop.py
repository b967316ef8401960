"""A worker thread: fetch a job, process it, acknowledge it; repeat until told to stop."""

from __future__ import annotations

import logging
import threading

from worker.processor import JobProcessor
from worker.queue import JobQueue
from worker.state import WorkerState

log = logging.getLogger("untxt.worker.loop")

# BLMOVE wakes at least this often so the loop notices a shutdown request and heartbeats.
FETCH_TIMEOUT_SECONDS = 1.0
HEARTBEAT_TTL_SECONDS = 15
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
            try:
                self.queue.heartbeat(HEARTBEAT_TTL_SECONDS)
                self.state.tick(self.slot)
                raw = self.queue.fetch(FETCH_TIMEOUT_SECONDS)
            except Exception:  # Redis unreachable: keep trying, never die
                log.warning("queue unavailable; retrying", exc_info=True)
                self.stop.wait(ERROR_BACKOFF_SECONDS)
                continue
            if raw is None:
                continue
            self._process(raw)
        self.processor.tasks.close()
        self.processor.engine.close()
        log.info("worker loop stopped", extra={"slot": self.slot})

    def _process(self, raw: bytes) -> None:
        self.state.begin(self.slot, raw[:60].decode(errors="replace"))
        outcome, pages = "skipped", 0
        try:
            outcome, pages = self.processor.handle(raw)
        except Exception:  # outcome not recorded: leave the job in our processing list
            log.exception("could not record the job's outcome; it stays in the processing list")
            self.stop.wait(ERROR_BACKOFF_SECONDS)
            return
        finally:
            self.state.end(self.slot, outcome, pages)
        try:
            self.queue.ack(raw)
        except Exception:  # a re-delivered message is harmless: claims are conditional
            log.warning("could not acknowledge the job", exc_info=True)
