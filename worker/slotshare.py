"""Which users hold a worker process's job slots, so a free slot can pass over a user who holds
its share already.

One user's backlog would otherwise fill every slot of every worker: the next job of another
user (a single page, say) then waits for a slot to free, i.e. for one of those jobs to end.
So one user holds at most ``slots - 1`` of a process's slots: the last one stays open for
anyone else. Alone, a user loses nothing by it — the default is one slot more than the pages
need to keep every engine busy (common/settings.py).

The choice and the taking are one step under a lock: free slots that looked at the same moment
would otherwise each see the user under its share and together give it every slot (measured:
at start-up a backlog took all four, and another user's page waited 14 s for one to free).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable


class SlotShare:
    def __init__(self, slots: int) -> None:
        self.cap = max(1, slots - 1)
        self._lock = threading.Lock()
        self._holder: dict[str, str] = {}  # slot id -> user id

    def fetch(self, slot_id: str, attempt: Callable[[frozenset[str]], bytes | str | None]) -> bytes | str | None:
        """Run ``attempt`` (one non-blocking look at the queue, given the users to pass over) and
        record the job's user as the slot's holder, as one step."""
        with self._lock:
            found = attempt(self._pass_over())
            if isinstance(found, bytes):
                self._hold(slot_id, found)
            return found

    def _pass_over(self) -> frozenset[str]:
        held: dict[str, int] = {}
        for user in self._holder.values():
            held[user] = held.get(user, 0) + 1
        return frozenset(user for user, count in held.items() if count >= self.cap)

    def _hold(self, slot_id: str, raw_job: bytes) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):  # not a job: the processor drops it
            self._holder[slot_id] = str(json.loads(raw_job)["user_id"])

    def release(self, slot_id: str) -> None:
        with self._lock:
            self._holder.pop(slot_id, None)
