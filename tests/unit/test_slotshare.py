"""The open slot: one user never holds every job slot of a worker process."""

from __future__ import annotations

import json
import threading
import time

from worker.slotshare import SlotShare


def _job(user: str) -> bytes:
    return json.dumps({"task_id": "t", "user_id": user}).encode()


def test_free_slots_looking_at_once_leave_one_open_for_other_users() -> None:
    share = SlotShare(4)
    taken: dict[str, bytes | str | None] = {}
    start = threading.Barrier(4)

    def backlog_of_a(pass_over: frozenset[str]) -> bytes | str | None:
        time.sleep(0.01)  # the Redis round trip, during which the others look too
        return "others-wait" if "a" in pass_over else _job("a")

    def slot(n: int) -> None:
        start.wait()
        taken[f"s{n}"] = share.fetch(f"s{n}", backlog_of_a)

    threads = [threading.Thread(target=slot, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    holders = [slot for slot, found in taken.items() if isinstance(found, bytes)]
    assert len(holders) == 3
    # The open slot serves another user; a is served again once one of its slots frees.
    assert share.fetch("s9", lambda passed: _job("b") if passed == {"a"} else None) == _job("b")
    share.release(holders[0])
    seen: list[frozenset[str]] = []
    share.fetch(holders[0], lambda passed: seen.append(passed))
    assert seen == [frozenset()]


def test_a_message_that_is_not_a_job_holds_nothing() -> None:
    share = SlotShare(2)
    assert share.fetch("s0", lambda _: b"not json") == b"not json"
    seen: list[frozenset[str]] = []
    share.fetch("s1", lambda passed: seen.append(passed))
    assert seen == [frozenset()]
