"""The reaper and the reconciler in-process, on the real PostgreSQL and Redis, in milliseconds
(the kill -9 and flush drills with real worker processes are in tests/e2e)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from common.job import JobMessage
from common.jobqueue import JobQueue, RedisNames
from common.settings import Settings
from tests.support import stored_task, text_page_png
from worker.db import TaskStore
from worker.recovery import Recovery

PNG = text_page_png(["recovered"])


@pytest.fixture
def own_settings(settings: Settings) -> Settings:
    """A key prefix of the test's own: no other test's jobs in its lists."""
    return settings.replace(redis_key_prefix=f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture
def fresh(own_settings: Settings) -> Iterator[JobQueue]:
    client = redis.Redis.from_url(own_settings.redis_url)
    yield JobQueue(client, RedisNames(own_settings.redis_key_prefix))
    client.close()


@pytest.fixture
def tasks(own_settings: Settings) -> Iterator[TaskStore]:
    store = TaskStore(own_settings.database_url)
    yield store
    store.close()


@pytest.fixture
def only_ours(pg: Any) -> None:
    """The reconciler looks at every live task in the database: end those other tests left."""
    with pg.cursor() as cur:
        cur.execute("UPDATE tasks SET status = 'cancelled' WHERE status IN ('queued', 'processing')")


def _recovery(fresh: JobQueue, tasks: TaskStore, own: frozenset[str] = frozenset()) -> Recovery:
    # Grace 0: every live task untouched since an earlier transaction is a candidate.
    return Recovery(fresh, tasks, max_crashes=2, grace_seconds=0, own_slots=own)


def _row(pg: Any, task_id: str) -> tuple[str, int, str | None, str | None]:
    with pg.cursor() as cur:
        cur.execute("SELECT status, crash_count, worker_id, error_code FROM tasks WHERE id = %s", (task_id,))
        return cur.fetchone()


def _in_progress(fresh: JobQueue, tasks: TaskStore, message: JobMessage, slot_id: str) -> bytes:
    """The job taken by ``slot_id`` and its task claimed, as a worker would have it mid-job."""
    fresh.enqueue(message)
    raw = fresh.fetch(slot_id, 0.1)
    assert raw is not None
    assert tasks.claim(message.task_id, slot_id) is not None
    return raw


def test_reaper_requeues_a_dead_slots_job_and_counts_the_crash(own_settings, fresh, tasks, pg) -> None:
    message = stored_task(own_settings, PNG, "image/png")
    _in_progress(fresh, tasks, message, "dead-0")
    assert _recovery(fresh, tasks).reap() == 1
    assert _row(pg, message.task_id) == ("queued", 1, None, None)
    assert fresh.stats().processing == {}  # the dead slot is forgotten
    raw = fresh.fetch("live-0", 0.1)
    assert raw is not None
    assert json.loads(raw)["task_id"] == message.task_id


def test_reaper_buries_a_job_that_killed_too_many_workers(own_settings, fresh, tasks, pg) -> None:
    message = stored_task(own_settings, PNG, "image/png")
    with pg.cursor() as cur:
        cur.execute("UPDATE tasks SET crash_count = 1 WHERE id = %s", (message.task_id,))
    _in_progress(fresh, tasks, message, "dead-0")
    pubsub = fresh.client.pubsub()
    pubsub.subscribe(fresh.names.task_events)
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    assert _recovery(fresh, tasks).reap() == 1
    assert _row(pg, message.task_id) == ("failed", 2, None, "worker_crashed")
    assert fresh.stats().dead == 1
    event = json.loads(pubsub.get_message(timeout=2)["data"])
    assert (event["taskId"], event["status"], event["errorCode"]) == (message.task_id, "failed", "worker_crashed")
    pubsub.close()


def test_reaper_spares_live_slots_and_its_own(own_settings, fresh, tasks, pg) -> None:
    beating, own = stored_task(own_settings, PNG, "image/png"), stored_task(own_settings, PNG, "image/png")
    _in_progress(fresh, tasks, beating, "other-0")
    fresh.heartbeat("other-0", 5, None)
    # Our own slot, its heartbeat not (yet, or no longer) written: we are alive, so it is too.
    # This was the flaky kill -9 test: a worker's first recovery pass ran between one of its
    # slots taking a job and that slot's first heartbeat, and put the job back on the queue.
    _in_progress(fresh, tasks, own, "mine-0")
    assert _recovery(fresh, tasks, own=frozenset({"mine-0"})).reap() == 0
    assert _row(pg, beating.task_id)[:2] == ("processing", 0)
    assert _row(pg, own.task_id)[:2] == ("processing", 0)


def test_reaper_returns_a_job_whose_task_was_never_claimed(own_settings, fresh, tasks, pg) -> None:
    """The slot died between taking the message and claiming the task: nothing to undo in
    PostgreSQL, the message goes back all the same."""
    message = stored_task(own_settings, PNG, "image/png")
    fresh.enqueue(message)
    assert fresh.fetch("dead-0", 0.1) is not None
    assert _recovery(fresh, tasks).reap() == 1
    assert _row(pg, message.task_id) == ("queued", 0, None, None)
    assert fresh.holdings() == {message.task_id}


def test_reconciler_restores_every_live_task_after_a_flush(own_settings, fresh, tasks, pg, only_ours) -> None:
    queued = stored_task(own_settings, PNG, "image/png", priority=8)
    processing = stored_task(own_settings, PNG, "image/png")
    fresh.enqueue(queued)
    _in_progress(fresh, tasks, processing, "dead-0")
    fresh.client.delete(*fresh.client.keys(fresh.names.prefix + ":*"))  # this prefix's FLUSHDB
    assert _recovery(fresh, tasks).reconcile() == 2
    assert _row(pg, processing.task_id) == ("queued", 0, None, None)
    assert fresh.holdings() == {queued.task_id, processing.task_id}
    assert fresh.stats().waiting[8] == 1
    assert _recovery(fresh, tasks).reconcile() == 0  # held now: nothing twice


def test_reconciler_leaves_tasks_held_by_any_list_alone(own_settings, fresh, tasks, pg, only_ours) -> None:
    waiting, taken, dead = (stored_task(own_settings, PNG, "image/png") for _ in range(3))
    fresh.enqueue(waiting)
    _in_progress(fresh, tasks, taken, "slot-0")
    raw = _in_progress(fresh, tasks, dead, "slot-1")
    fresh.bury("slot-1", raw)
    assert _recovery(fresh, tasks).reconcile() == 0
    assert _row(pg, taken.task_id)[0] == "processing"
