"""The reaper and the reconciler in-process, on the real PostgreSQL and Redis, in milliseconds
(the kill -9 and flush drills with real worker processes are in tests/e2e); and what a slot the
reaper took a job from does when it comes back (real pool, S3 and Tesseract)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from botocore.exceptions import EndpointConnectionError

from common import keys
from common.job import JobMessage
from common.jobqueue import JobQueue, RedisNames
from common.settings import Settings
from tests.support import stored_task, text_page_png
from worker.db import TaskStore
from worker.outcomes import JobOutcome
from worker.pool import OcrPool
from worker.processor import JobProcessor
from worker.recovery import Recovery
from worker.storage import ObjectStore

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


# ---- a slot the reaper presumed dead comes back --------------------------------------------
# The reaper takes the job of a slot whose heartbeat ran out: it was cut off or stalled, not
# necessarily dead. Its run goes on when it is back; these tests put the reaper (and another
# slot, and the user's delete) at the moments such a run can come back to, through hooks in the
# real pool and the real object store.


class _Hooked:
    """The real pool, with ``before`` run once when its ``method`` (survey, render) is first
    called."""

    def __init__(self, pool: OcrPool, before: Callable[[], None], method: str = "render") -> None:
        self._pool, self._before, self._method = pool, before, method

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._pool, name)
        if name != self._method:
            return real

        def hooked(*args: Any, **kwargs: Any) -> Any:
            before, self._before = self._before, lambda: None
            before()
            return real(*args, **kwargs)

        return hooked


class _RecordingStore(ObjectStore):
    """The real object store, recording every result PUT; ``before_put(fmt_filename)`` runs
    before each one (after the slot checked its claim: the moment the link could drop)."""

    def __init__(self, settings: Settings, before_put: Callable[[str], None] = lambda name: None) -> None:
        super().__init__(settings)
        self.puts: list[str] = []
        self._before_put = before_put

    def put(self, key: str, body: bytes, content_type: str) -> None:
        if key.startswith("results/"):
            self._before_put(key.rsplit("/", 1)[1])
            self.puts.append(key)
        super().put(key, body, content_type)


@pytest.fixture(scope="module")
def pool(settings: Settings) -> Iterator[OcrPool]:
    ocr = OcrPool(settings, size=1)
    yield ocr
    ocr.close()


def _processor(settings: Settings, slot_id: str, fresh: JobQueue, pool: Any, store: ObjectStore) -> JobProcessor:
    return JobProcessor(settings, slot_id, TaskStore(settings.database_url), store, fresh, pool, threading.Event())


def _result_objects(s3: Any, settings: Settings, message: JobMessage) -> list[str]:
    """Every object under the file's results prefix (every run's folder)."""
    listed = s3.list_objects_v2(Bucket=settings.s3_bucket, Prefix=f"results/{message.user_id}/")
    return sorted(o["Key"] for o in listed.get("Contents", []) if f"/{message.file_id}/" in o["Key"])


def _run_folder(pg: Any, message: JobMessage, attempt: int) -> str:
    """The folder of the run that claimed the task as ``attempt``."""
    with pg.cursor() as cur:
        cur.execute("SELECT created_at FROM files WHERE id = %s", (message.file_id,))
        (created_at,) = cur.fetchone()
    return keys.result_key(message.user_id, message.file_id, created_at, attempt).rsplit("/", 1)[0] + "/"


def _recorded(pg: Any, message: JobMessage) -> str | None:
    with pg.cursor() as cur:
        cur.execute("SELECT s3_result_key FROM files WHERE id = %s", (message.file_id,))
        return cur.fetchone()[0]


def _versions(s3: Any, settings: Settings, keys_: list[str]) -> dict[str, tuple[str, Any]]:
    """Each object's ETag and modification time: what an overwrite would change."""
    heads = {key: s3.head_object(Bucket=settings.s3_bucket, Key=key) for key in keys_}
    return {key: (head["ETag"], head["LastModified"]) for key, head in heads.items()}


def _reap(fresh: JobQueue, tasks: TaskStore) -> None:
    """The stale slot's heartbeat has run out (it never wrote one): the reaper takes its job."""
    assert _recovery(fresh, tasks).reap() == 1


def _reap_and_run_elsewhere(settings: Settings, fresh: JobQueue, tasks: TaskStore, pool: OcrPool) -> None:
    """The reaper requeues the stale slot's job, and another slot takes it and completes it."""
    _reap(fresh, tasks)
    raw = fresh.fetch("live-0", 0.1)
    assert raw is not None
    store = ObjectStore(settings)
    assert _processor(settings, "live-0", fresh, pool, store).handle(raw)[0] == JobOutcome.COMPLETED
    fresh.ack("live-0", raw)


def _delete_as_the_user(pg: Any, s3: Any, settings: Settings, task_id: str) -> None:
    """What DELETE /api/tasks/{id} does (backend/removal.py): under the row lock, refused while
    processing, the upload and everything under the file's results prefix, then the rows."""
    with pg.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(
            "SELECT t.status, f.id, f.user_id, f.created_at, f.s3_key FROM tasks t JOIN files f ON f.id = t.file_id"
            " WHERE t.id = %s FOR UPDATE OF t, f",
            (task_id,),
        )
        status, file_id, user_id, created_at, upload = cur.fetchone()
        assert status != "processing"
        s3.delete_object(Bucket=settings.s3_bucket, Key=upload)
        prefix = keys.results_prefix(str(user_id), str(file_id), created_at)
        for item in s3.list_objects_v2(Bucket=settings.s3_bucket, Prefix=prefix).get("Contents", []):
            s3.delete_object(Bucket=settings.s3_bucket, Key=item["Key"])
        cur.execute("DELETE FROM files WHERE id = %s", (file_id,))
        cur.execute("COMMIT")


def _take(fresh: JobQueue, message: JobMessage, slot_id: str) -> bytes:
    fresh.enqueue(message)
    raw = fresh.fetch(slot_id, 0.1)
    assert raw is not None
    return raw


def test_a_slot_that_lost_its_claim_before_storing_writes_nothing(own_settings, fresh, tasks, pool, pg, s3) -> None:
    """Cut off after its last page: the reaper requeued the task while it rendered."""
    message = stored_task(own_settings, PNG, "image/png")
    raw = _take(fresh, message, "stale-0")
    store = _RecordingStore(own_settings)
    reaped = _Hooked(pool, lambda: _reap(fresh, tasks))
    outcome, _ = _processor(own_settings, "stale-0", fresh, reaped, store).handle(raw)
    assert outcome == JobOutcome.SKIPPED
    assert store.puts == []
    assert _row(pg, message.task_id) == ("queued", 1, None, None)  # not completed: the reaper's outcome stands
    assert _result_objects(s3, own_settings, message) == []


def test_a_slot_that_lost_its_claim_mid_pages_counts_it_skipped_not_cancelled(
    own_settings, fresh, tasks, pool, pg, s3
) -> None:
    """Cut off while reading: its page boundary finds the task gone, which is no cancel."""
    message = stored_task(own_settings, PNG, "image/png")
    raw = _take(fresh, message, "stale-0")
    store = _RecordingStore(own_settings)
    reaped = _Hooked(pool, lambda: _reap(fresh, tasks), method="survey")
    assert _processor(own_settings, "stale-0", fresh, reaped, store).handle(raw)[0] == JobOutcome.SKIPPED
    assert store.puts == []
    assert _row(pg, message.task_id) == ("queued", 1, None, None)


def test_a_slot_that_lost_its_claim_leaves_the_winners_results_alone(own_settings, fresh, tasks, pool, pg, s3) -> None:
    message = stored_task(own_settings, PNG, "image/png")
    raw = _take(fresh, message, "stale-0")
    store = _RecordingStore(own_settings)
    taken_over = _Hooked(pool, lambda: _reap_and_run_elsewhere(own_settings, fresh, tasks, pool))
    assert _processor(own_settings, "stale-0", fresh, taken_over, store).handle(raw)[0] == JobOutcome.SKIPPED
    assert store.puts == []
    assert _row(pg, message.task_id) == ("completed", 1, "live-0", None)
    winner = _run_folder(pg, message, 2)
    assert _recorded(pg, message) == winner + "result.html"
    assert _result_objects(s3, own_settings, message) == sorted(
        winner + f.filename for f in keys.RESULT_FORMATS.values()
    )


@pytest.mark.parametrize("late", ["first-put", "last-put"])
def test_a_stale_put_landing_after_the_winner_completed_leaves_its_results_untouched(
    own_settings, fresh, tasks, pool, pg, s3, late: str
) -> None:
    """The window a claim check cannot close: run A (attempt 1) checks its claim ("still
    yours") and is cut off before its PUT reaches S3; meanwhile the reaper requeues the task and
    run B (attempt 2) completes it; then A's PUT lands. It lands in A's own folder, which no row
    names; B's objects are as B wrote them, and A deletes its folder when it learns it lost
    (the next check, or its refused completion)."""
    message = stored_task(own_settings, PNG, "image/png")
    raw = _take(fresh, message, "stale-0")
    winners: dict[str, tuple[str, Any]] = {}

    def take_over(name: str) -> None:
        if winners or (late == "last-put" and name != keys.RESULT_FORMATS[keys.RESULT_PRIMARY].filename):
            return
        _reap_and_run_elsewhere(own_settings, fresh, tasks, pool)
        winner = _run_folder(pg, message, 2)
        stored = [key for key in _result_objects(s3, own_settings, message) if key.startswith(winner)]
        winners.update(_versions(s3, own_settings, stored))

    store = _RecordingStore(own_settings, take_over)
    assert _processor(own_settings, "stale-0", fresh, pool, store).handle(raw)[0] == JobOutcome.SKIPPED

    loser, winner = _run_folder(pg, message, 1), _run_folder(pg, message, 2)
    # A's PUTs all went to its own folder, the last of them after B had completed.
    assert len(store.puts) == (1 if late == "first-put" else len(keys.RESULT_FORMATS))
    assert all(key.startswith(loser) for key in store.puts)
    assert _row(pg, message.task_id) == ("completed", 1, "live-0", None)
    assert _recorded(pg, message) == winner + "result.html"
    assert sorted(winners) == sorted(winner + f.filename for f in keys.RESULT_FORMATS.values())
    # Untouched, and A's folder gone.
    assert _result_objects(s3, own_settings, message) == sorted(winners)
    assert _versions(s3, own_settings, sorted(winners)) == winners


def test_a_completion_whose_answer_was_lost_keeps_its_results(own_settings, fresh, pool, pg, s3) -> None:
    """The UPDATE committed but its answer was lost, and the retry on a new connection found the
    task completed already (refused): the run must not delete the results its row now names."""

    class _LostAnswer(TaskStore):
        def complete(self, *args: Any) -> bool:
            assert super().complete(*args)
            return False

    message = stored_task(own_settings, PNG, "image/png")
    raw = _take(fresh, message, "slot-0")
    lost = _LostAnswer(own_settings.database_url)
    processor = JobProcessor(own_settings, "slot-0", lost, ObjectStore(own_settings), fresh, pool, threading.Event())
    try:
        assert processor.handle(raw)[0] == JobOutcome.SKIPPED
    finally:
        lost.close()
    assert _row(pg, message.task_id)[0] == "completed"
    folder = _run_folder(pg, message, 1)
    assert _recorded(pg, message) == folder + "result.html"
    assert _result_objects(s3, own_settings, message) == sorted(
        folder + f.filename for f in keys.RESULT_FORMATS.values()
    )


def test_a_run_whose_put_fails_hands_the_task_back_without_leaving_its_folder(
    own_settings, fresh, tasks, pool, pg, s3
) -> None:
    """The store fails the primary PUT past botocore's retries: the task goes back to the queue
    (its next run writes a folder of its own), and what this run had written is deleted."""
    message = stored_task(own_settings, PNG, "image/png")
    raw = _take(fresh, message, "slot-0")
    primary = keys.RESULT_FORMATS[keys.RESULT_PRIMARY].filename

    def store_away(name: str) -> None:
        if name == primary:
            raise EndpointConnectionError(endpoint_url=own_settings.s3_endpoint_url or "s3")

    store = _RecordingStore(own_settings, store_away)
    with pytest.raises(EndpointConnectionError):
        _processor(own_settings, "slot-0", fresh, pool, store).handle(raw)
    assert len(store.puts) == len(keys.RESULT_FORMATS) - 1  # the primary's never went out
    assert _row(pg, message.task_id) == ("queued", 0, None, None)
    assert _recorded(pg, message) is None
    assert _result_objects(s3, own_settings, message) == []


@pytest.mark.parametrize("winner", [False, True], ids=["requeued", "completed-elsewhere"])
@pytest.mark.parametrize("moment", ["render", "last-put"])
def test_a_task_deleted_while_a_stale_slot_worked_leaves_no_results(
    own_settings, fresh, tasks, pool, pg, s3, moment: str, winner: bool
) -> None:
    """The task is reaped (and maybe completed by another slot) and then deleted by its user,
    either before the stale slot checks its claim (it writes nothing) or in the window after its
    last check, so that its PUT lands after the delete (in its own folder, which the delete had
    found empty): its refused completion deletes that folder."""
    message = stored_task(own_settings, PNG, "image/png")
    raw = _take(fresh, message, "stale-0")

    def take_over_and_delete() -> None:
        if winner:
            _reap_and_run_elsewhere(own_settings, fresh, tasks, pool)
            folder = _run_folder(pg, message, 2)
            stored = [key for key in _result_objects(s3, own_settings, message) if key.startswith(folder)]
            assert len(stored) == len(keys.RESULT_FORMATS)
        else:
            _reap(fresh, tasks)
        _delete_as_the_user(pg, s3, own_settings, message.task_id)

    primary = keys.RESULT_FORMATS[keys.RESULT_PRIMARY].filename
    store = _RecordingStore(
        own_settings, lambda name: take_over_and_delete() if moment == "last-put" and name == primary else None
    )
    hooked = _Hooked(pool, take_over_and_delete if moment == "render" else lambda: None)
    assert _processor(own_settings, "stale-0", fresh, hooked, store).handle(raw)[0] == JobOutcome.SKIPPED
    assert len(store.puts) == (len(keys.RESULT_FORMATS) if moment == "last-put" else 0)
    assert _result_objects(s3, own_settings, message) == []
    with pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM tasks WHERE id = %s", (message.task_id,))
        assert cur.fetchone() == (0,)


def test_results_over_a_task_failed_meanwhile_are_removed(own_settings, fresh, tasks, pool, pg, s3) -> None:
    """The reaper's second strike for this task fails it (``worker_crashed``) after the stale
    slot's last check: its refused completion deletes what it wrote."""
    message = stored_task(own_settings, PNG, "image/png")
    with pg.cursor() as cur:
        cur.execute("UPDATE tasks SET crash_count = 1 WHERE id = %s", (message.task_id,))
    raw = _take(fresh, message, "stale-0")
    primary = keys.RESULT_FORMATS[keys.RESULT_PRIMARY].filename
    store = _RecordingStore(own_settings, lambda name: _reap(fresh, tasks) if name == primary else None)
    assert _processor(own_settings, "stale-0", fresh, pool, store).handle(raw)[0] == JobOutcome.SKIPPED
    assert len(store.puts) == len(keys.RESULT_FORMATS)
    assert _row(pg, message.task_id) == ("failed", 2, None, "worker_crashed")
    assert _result_objects(s3, own_settings, message) == []
