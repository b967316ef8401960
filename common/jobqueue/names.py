"""Every Redis name untxt uses, built from one prefix (``REDIS_KEY_PREFIX``, default ``ocr``).

With the default prefix the names are the public contract's (``ocr:task:queue…``,
``ocr:task:processing…``); another prefix lets tests, or two deployments, share one Redis
without seeing each other's jobs, events or rate limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PREFIX = "ocr"
PRIORITIES = range(1, 11)  # 10 is the most urgent
# Braces would start a Redis Cluster hash tag, spaces and globs would break SCAN patterns.
_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)*")


def check_prefix(prefix: str) -> str:
    if not _PREFIX_PATTERN.fullmatch(prefix):
        raise ValueError(f"REDIS_KEY_PREFIX must be letters, digits, '_', '.', '-' or ':' (got {prefix!r})")
    return prefix


@dataclass(frozen=True)
class RedisNames:
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        check_prefix(self.prefix)

    # The job queue: one list per priority band (LPUSH by the API, taken from the right), the
    # wake-up list for idle workers, each slot's processing list and the set naming those slots,
    # the dead letters, each task's cached state.
    @property
    def task_queue(self) -> str:
        return f"{self.prefix}:task:queue"

    def band(self, priority: int) -> str:
        return f"{self.task_queue}:p{min(10, max(1, priority)):02d}"

    @property
    def bands(self) -> tuple[str, ...]:
        """Most urgent first: the order in which workers look for work."""
        return tuple(self.band(p) for p in reversed(PRIORITIES))

    @property
    def signal(self) -> str:
        return f"{self.task_queue}:signal"

    @property
    def processing_slots(self) -> str:
        """The set of slot ids that have (or had) a processing list: what the reaper visits."""
        return f"{self.prefix}:task:processing"

    def processing(self, slot_id: str) -> str:
        return f"{self.processing_slots}:{slot_id}"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}:task:dead"

    def task_status(self, task_id: str) -> str:
        return f"{self.prefix}:task:status:{task_id}"

    # Workers: one heartbeat per job slot, and the lock of the recovery pass.
    @property
    def heartbeat_prefix(self) -> str:
        return f"{self.prefix}:worker:heartbeat"

    def heartbeat(self, slot_id: str) -> str:
        return f"{self.heartbeat_prefix}:{slot_id}"

    @property
    def recovery_lock(self) -> str:
        return f"{self.prefix}:worker:recovery-lock"

    # Pub/sub channels, and the API's upload rate limit buckets.
    @property
    def task_events(self) -> str:
        return f"{self.prefix}:task:events"

    @property
    def auth_revoked(self) -> str:
        """Revoked API key hashes (a JSON list), so every API process drops them from its cache."""
        return f"{self.prefix}:auth:revoked"

    def rate_limit(self, user_id: str) -> str:
        return f"{self.prefix}:ratelimit:{user_id}"

    def ws_ticket(self, ticket_hash: str) -> str:
        """A single-use WebSocket ticket (POST /api/ws-ticket), keyed by the ticket's SHA-256."""
        return f"{self.prefix}:auth:ws-ticket:{ticket_hash}"
