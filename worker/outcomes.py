"""How a job ended for the slot that took it."""

from __future__ import annotations

from enum import StrEnum


class JobOutcome(StrEnum):
    """The values are the names published in the worker's /status counters and as the
    ``outcome`` label of ``untxt_worker_jobs_total``."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # The task was not this slot's to run (a duplicate, stale or cancelled message; or it was
    # reassigned while we worked): nothing recorded, the message dropped.
    SKIPPED = "skipped"
    # Unfinished and queued again (shutdown, or a store down past the retries).
    HANDED_BACK = "handedBack"
    # The outcome could not be recorded (a store down past the retries); the job was handed back.
    ERROR = "errors"
