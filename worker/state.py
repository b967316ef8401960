"""What the worker process is doing right now, shared with its Flask health app."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class InFlight:
    task_id: str
    started: float


class WorkerState:
    """Counters and in-flight jobs, safe to read from the health app's thread."""

    def __init__(self, worker_id: str, slots: int) -> None:
        self.worker_id = worker_id
        self.slots = slots
        self.started_at = time.time()
        self._lock = threading.Lock()
        self._in_flight: dict[str, InFlight] = {}
        self._ticks: dict[str, float] = {}
        self.completed = 0
        self.failed = 0
        self.skipped = 0
        self.pages = 0

    def tick(self, slot: str) -> None:
        with self._lock:
            self._ticks[slot] = time.monotonic()

    def oldest_tick_age(self) -> float | None:
        """Seconds since the least recently active loop last ticked (None before any tick)."""
        with self._lock:
            if len(self._ticks) < self.slots:
                return None
            return time.monotonic() - min(self._ticks.values())

    def begin(self, slot: str, task_id: str) -> None:
        with self._lock:
            self._in_flight[slot] = InFlight(task_id, time.time())

    def end(self, slot: str, outcome: str, pages: int = 0) -> None:
        with self._lock:
            self._in_flight.pop(slot, None)
            if outcome == "completed":
                self.completed += 1
            elif outcome == "failed":
                self.failed += 1
            else:
                self.skipped += 1
            self.pages += pages

    def snapshot(self) -> dict[str, object]:
        now = time.time()
        with self._lock:
            return {
                "workerId": self.worker_id,
                "slots": self.slots,
                "uptimeSeconds": round(now - self.started_at, 1),
                "inFlight": [
                    {"slot": slot, "taskId": job.task_id, "ageSeconds": round(now - job.started, 2)}
                    for slot, job in self._in_flight.items()
                ],
                "counters": {
                    "completed": self.completed,
                    "failed": self.failed,
                    "skipped": self.skipped,
                    "pages": self.pages,
                },
            }
