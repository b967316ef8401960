"""What the worker process is doing right now, shared with its Flask health app."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass

from worker.outcomes import JobOutcome


@dataclass
class InFlight:
    task_id: str
    started: float


class WorkerState:
    """Counters and in-flight jobs by slot id, safe to read from the health app's thread."""

    def __init__(self, worker_id: str, slots: int, engines: int) -> None:
        self.worker_id = worker_id
        self.slots = slots
        self.engines = engines
        self.started_at = time.time()
        self._lock = threading.Lock()
        self._in_flight: dict[str, InFlight] = {}
        self._ticks: dict[str, float] = {}
        self.outcomes: dict[JobOutcome, int] = {}
        self.pages = 0
        self._page_log: deque[tuple[float, int]] = deque()

    def tick(self, slot_id: str) -> None:
        with self._lock:
            self._ticks[slot_id] = time.monotonic()

    def stuck_loops(self, max_idle: float, max_job: float) -> list[str] | None:
        """Slots whose loop neither ticked within ``max_idle`` seconds nor is inside a job that
        started less than ``max_job`` seconds ago (a long PDF is not a hang); None before
        every loop has started."""
        now_mono, now = time.monotonic(), time.time()
        with self._lock:
            if len(self._ticks) < self.slots:
                return None
            stuck = []
            for slot_id, tick in self._ticks.items():
                job = self._in_flight.get(slot_id)
                busy = job is not None and now - job.started < max_job
                if now_mono - tick > max_idle and not busy:
                    stuck.append(slot_id)
            return stuck

    def begin(self, slot_id: str, raw_job: bytes) -> None:
        try:
            task_id = str(json.loads(raw_job).get("task_id"))
        except (ValueError, AttributeError):
            task_id = "?"
        with self._lock:
            self._in_flight[slot_id] = InFlight(task_id, time.time())

    def end(self, slot_id: str, outcome: JobOutcome, pages: int = 0) -> None:
        with self._lock:
            self._in_flight.pop(slot_id, None)
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            self.pages += pages
            now = time.monotonic()
            self._page_log.append((now, pages))
            while self._page_log and self._page_log[0][0] < now - 60:
                self._page_log.popleft()

    def current(self, slot_id: str) -> tuple[str, float] | None:
        """(task id, start time) of the job the slot is working on, if any."""
        with self._lock:
            job = self._in_flight.get(slot_id)
            return (job.task_id, job.started) if job else None

    def snapshot(self) -> dict[str, object]:
        now = time.time()
        with self._lock:
            counters: dict[str, int] = {outcome.value: self.outcomes.get(outcome, 0) for outcome in JobOutcome}
            counters["pages"] = self.pages
            return {
                "workerId": self.worker_id,
                "slots": self.slots,
                "engines": self.engines,
                "uptimeSeconds": round(now - self.started_at, 1),
                "inFlight": [
                    {"slot": slot_id, "taskId": job.task_id, "ageSeconds": round(now - job.started, 2)}
                    for slot_id, job in self._in_flight.items()
                ],
                "counters": counters,
                "pagesPerSecondLastMinute": round(sum(p for _, p in self._page_log) / 60, 3),
            }
