"""A job slot's thread: fetch a job, process it, acknowledge it; repeat until told to stop."""

from __future__ import annotations

import logging
import threading

from common.jobqueue import JobQueue
from common.jobqueue.calls import OTHERS_WAIT
from worker.outcomes import JobOutcome
from worker.processor import JobProcessor
from worker.slotshare import SlotShare
from worker.state import WorkerState

log = logging.getLogger("untxt.worker.loop")

# An idle slot waits for work at most this long, so it notices a shutdown request and ticks.
FETCH_TIMEOUT_SECONDS = 1.0
# After an infrastructure error, wait before touching Redis/PostgreSQL again.
ERROR_BACKOFF_SECONDS = 2.0


class WorkerLoop(threading.Thread):
    def __init__(
        self,
        slot_id: str,
        queue: JobQueue,
        processor: JobProcessor,
        state: WorkerState,
        stop: threading.Event,
        share: SlotShare,
    ) -> None:
        super().__init__(name=f"slot-{slot_id.rsplit('-', 1)[-1]}", daemon=True)
        self.slot_id = slot_id
        self.queue = queue
        self.processor = processor
        self.state = state
        self.stop = stop
        self.share = share

    def run(self) -> None:
        log.info("slot started", extra={"slot_id": self.slot_id})
        while not self.stop.is_set():
            self.state.tick(self.slot_id)
            try:
                raw = self._next_job()
            except Exception:
                # Redis unreachable: keep trying; the job, if any, is safe in Redis or PostgreSQL.
                log.warning("queue unavailable; retrying", exc_info=True)
                self.stop.wait(ERROR_BACKOFF_SECONDS)
                continue
            if raw is not None:
                try:
                    self._process(raw)
                finally:
                    self.share.release(self.slot_id)
        self.processor.tasks.close()
        log.info("slot stopped", extra={"slot_id": self.slot_id})

    def _next_job(self) -> bytes | None:
        """A job for this slot (its user recorded as the slot's holder), waiting a while if none."""
        found = self.share.fetch(self.slot_id, self._look)
        if isinstance(found, bytes):
            return found
        if self.queue.wait_for_work(FETCH_TIMEOUT_SECONDS, others_wait=found == OTHERS_WAIT):
            found = self.share.fetch(self.slot_id, self._look)
        return found if isinstance(found, bytes) else None

    def _look(self, pass_over: frozenset[str]) -> bytes | str | None:
        return self.queue.try_fetch(self.slot_id, pass_over)

    def _process(self, raw: bytes) -> None:
        self.state.begin(self.slot_id, raw)
        outcome, pages = JobOutcome.ERROR, 0
        try:
            outcome, pages = self.processor.handle(raw)
        except Exception:
            log.exception("could not finish or record the job; handing it back to the queue")
            self._hand_back(raw)
            self.stop.wait(ERROR_BACKOFF_SECONDS)
            return
        finally:
            self.state.end(self.slot_id, outcome, pages)
        if outcome == JobOutcome.HANDED_BACK:
            self._hand_back(raw)
            return
        try:
            self.queue.ack(self.slot_id, raw)
        except Exception:
            # A re-delivered message is harmless: claims are conditional on the task's state.
            log.warning("could not acknowledge the job", exc_info=True)

    def _hand_back(self, raw: bytes) -> None:
        try:
            if not self.queue.hand_back(self.slot_id, raw):
                # Redis lost it (flushed), or a reaper took it while our heartbeat lapsed:
                # either way the reconciler re-enqueues the task from PostgreSQL if need be.
                log.warning("the job had left this slot's processing list; not handed back")
        except Exception:
            # Still in our processing list; the reaper returns it if this worker dies, and the
            # reconciler re-enqueues the task from PostgreSQL if the list is lost.
            log.error("could not hand the job back to the queue", exc_info=True)
