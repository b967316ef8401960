"""What the worker process is doing right now, shared with its Flask health app."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass
class InFlight:
    task_id: str
    started: float


class WorkerState:
    """Counters and in-flight jobs, safe to read from the health app's thread."""

    def __init__(self, worker_id: str, slots: int, engines: int) -> None:
        self.worker_id = worker_id
        self.slots = slots
        self.engines = engines
        self.started_at = time.time()
        self._lock = threading.Lock()
        self._in_flight: dict[str, InFlight] = {}
        self._ticks: dict[str, float] = {}
        self.outcomes: dict[str, int] = {}
        self.pages = 0
        self._page_log: deque[tuple[float, int]] = deque()

    def tick(self, slot: str) -> None:
        with self._lock:
            self._ticks[slot] = time.monotonic()

    def stuck_loops(self, max_idle: float, max_job: float) -> list[str] | None:
        """Slots whose loop neither ticked within ``max_idle`` seconds nor is inside a job that
        started less than ``max_job`` seconds ago (a long PDF is not a hang); None before
        every loop has started."""
        now_mono, now = time.monotonic(), time.time()
        with self._lock:
            if len(self._ticks) < self.slots:
                return None
            stuck = []
            for slot, tick in self._ticks.items():
                job = self._in_flight.get(slot)
                busy = job is not None and now - job.started < max_job
                if now_mono - tick > max_idle and not busy:
                    stuck.append(slot)
            return stuck

    def begin(self, slot: str, raw_job: bytes) -> None:
        try:
            task_id = str(json.loads(raw_job).get("task_id"))
        except (ValueError, AttributeError):
            task_id = "?"
        with self._lock:
            self._in_flight[slot] = InFlight(task_id, time.time())

    def end(self, slot: str, outcome: str, pages: int = 0) -> None:
        with self._lock:
            self._in_flight.pop(slot, None)
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            self.pages += pages
            now = time.monotonic()
            self._page_log.append((now, pages))
            while self._page_log and self._page_log[0][0] < now - 60:
                self._page_log.popleft()

    def current(self, slot: str) -> tuple[str, float] | None:
        """(task id, start time) of the job the slot is working on, if any."""
        with self._lock:
            job = self._in_flight.get(slot)
            return (job.task_id, job.started) if job else None

    def snapshot(self) -> dict[str, object]:
        now = time.time()
        with self._lock:
            return {
                "workerId": self.worker_id,
                "slots": self.slots,
                "engines": self.engines,
                "uptimeSeconds": round(now - self.started_at, 1),
                "inFlight": [
                    {"slot": slot, "taskId": job.task_id, "ageSeconds": round(now - job.started, 2)}
                    for slot, job in self._in_flight.items()
                ],
                "counters": {
                    "completed": self.outcomes.get("completed", 0),
                    "failed": self.outcomes.get("failed", 0),
                    "cancelled": self.outcomes.get("cancelled", 0),
                    "skipped": self.outcomes.get("skipped", 0),
                    "handedBack": self.outcomes.get("handed_back", 0),
                    "errors": self.outcomes.get("error", 0),
                    "pages": self.pages,
                },
                "pagesPerSecondLastMinute": round(sum(p for _, p in self._page_log) / 60, 3),
            }
