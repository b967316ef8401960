"""Every Redis name untxt uses, built from one prefix (``REDIS_KEY_PREFIX``, default ``ocr``).

With the default prefix the names begin as the public contract says (``ocr:task:queue…``,
``ocr:task:processing…``); another prefix lets tests, or two deployments, share one Redis
without seeing each other's jobs, events or rate limits.

Every key that a job-protocol script touches carries the hash tag ``{<prefix>}``, so on Redis
Cluster they all hash to one slot and each script (one scheduling decision) runs on one node.
The scripts build a user's list names from ``user_queue_root`` themselves (the ring of waiting
users tells them whose lists to look at); the tag in that root keeps those keys in the same slot.
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

    @property
    def tag(self) -> str:
        """The Redis Cluster hash tag shared by every key of the job protocol."""
        return "{" + self.prefix + "}"

    # The job queue. Fair lane: each user's jobs wait in that user's own list per priority band
    # (LPUSH by the API, taken from the right), and the ring lists the users who have jobs
    # waiting, in the order they get their next turn. Express lane: one list per band for
    # priorities above PRIORITY_CEILING from users an operator allowed them; taken before the
    # ring. Then the wake-up list for idle workers, each slot's processing list and the set
    # naming those slots, the dead letters, each task's cached state.
    @property
    def task_queue(self) -> str:
        return f"{self.prefix}:task:queue:{self.tag}"

    @property
    def user_queue_root(self) -> str:
        """``user_band`` is this + ``<user id>:pNN`` (the Lua scripts build it the same way)."""
        return f"{self.task_queue}:user:"

    def user_band(self, user_id: str, priority: int) -> str:
        return f"{self.user_queue_root}{user_id}:p{_band_number(priority)}"

    def user_bands(self, user_id: str) -> tuple[str, ...]:
        """Most urgent first: the order in which a user's jobs are taken."""
        return tuple(self.user_band(user_id, p) for p in reversed(PRIORITIES))

    @property
    def express_root(self) -> str:
        return f"{self.task_queue}:express:"

    def express_band(self, priority: int) -> str:
        return f"{self.express_root}p{_band_number(priority)}"

    @property
    def express_bands(self) -> tuple[str, ...]:
        return tuple(self.express_band(p) for p in reversed(PRIORITIES))

    def band(self, user_id: str, priority: int, express: bool) -> str:
        """The list a job waits in."""
        return self.express_band(priority) if express else self.user_band(user_id, priority)

    @property
    def ring(self) -> str:
        """Users with jobs waiting in the fair lane; the right end is the next to be served."""
        return f"{self.task_queue}:users"

    @property
    def signal(self) -> str:
        return f"{self.task_queue}:signal"

    @property
    def processing_slots(self) -> str:
        """The set of slot ids that have (or had) a processing list: what the reaper visits."""
        return f"{self.prefix}:task:processing:{self.tag}"

    def processing(self, slot_id: str) -> str:
        return f"{self.processing_slots}:{slot_id}"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}:task:dead:{self.tag}"

    def task_status(self, task_id: str) -> str:
        return f"{self.prefix}:task:status:{self.tag}:{task_id}"

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


def _band_number(priority: int) -> str:
    return f"{min(PRIORITIES[-1], max(PRIORITIES[0], priority)):02d}"
