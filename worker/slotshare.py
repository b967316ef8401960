"""Which users hold a worker process's job slots, so a free slot can pass over a user who holds
its share already.

One user's backlog would otherwise fill every slot of every worker: the next job of another
user (a single page, say) then waits for a slot to free, i.e. for one of those jobs to end.
So one user holds at most ``slots - 1`` of a process's slots: the last one stays open for
anyone else. Alone, a user loses nothing by it — the default is one slot more than the pages
need to keep every engine busy (common/settings.py).
"""

from __future__ import annotations

import json
import threading


class SlotShare:
    def __init__(self, slots: int) -> None:
        self.cap = max(1, slots - 1)
        self._lock = threading.Lock()
        self._holder: dict[str, str] = {}  # slot id -> user id

    def pass_over(self) -> frozenset[str]:
        """The users a free slot must not serve now."""
        with self._lock:
            held: dict[str, int] = {}
            for user in self._holder.values():
                held[user] = held.get(user, 0) + 1
        return frozenset(user for user, count in held.items() if count >= self.cap)

    def take(self, slot_id: str, raw_job: bytes) -> None:
        try:
            user = str(json.loads(raw_job)["user_id"])
        except (ValueError, KeyError, TypeError):
            return  # not a job: the processor drops it
        with self._lock:
            self._holder[slot_id] = user

    def release(self, slot_id: str) -> None:
        with self._lock:
            self._holder.pop(slot_id, None)
