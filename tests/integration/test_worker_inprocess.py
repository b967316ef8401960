"""The worker as an object inside the test process: real Redis, PostgreSQL, S3 and Tesseract,
no subprocess, no health port."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from common.settings import Settings
from tests.support import dense_page_png, pdf_of, stored_task, text_page_png
from worker.daemon import Worker


@pytest.fixture
def worker(settings: Settings) -> Iterator[Worker]:
    own = settings.replace(redis_key_prefix=f"t{uuid.uuid4().hex[:10]}", worker_concurrency=1, worker_job_slots=2)
    worker = Worker(own, serve_health=False, run_recovery=False)
    yield worker
    worker.close()


def _status(pg: Any, task_id: str) -> tuple[str, int]:
    with pg.cursor() as cur:
        cur.execute("SELECT status, progress FROM tasks WHERE id = %s", (task_id,))
        return cur.fetchone()


def _wait(pg: Any, task_id: str, until: set[str], min_progress: int = 0, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (row := _status(pg, task_id))[0] not in until or row[1] < min_progress:
        assert time.monotonic() < deadline, row
        time.sleep(0.02)


def test_a_job_goes_through_and_is_acknowledged(worker: Worker, pg) -> None:
    message = stored_task(worker.settings, text_page_png(["in process"]), "image/png")
    worker.start()
    assert all(worker.client.exists(worker.queue.names.heartbeat(s)) for s in worker.slot_ids)
    worker.queue.enqueue(message)
    _wait(pg, message.task_id, {"completed"})
    deadline = time.monotonic() + 5
    while worker.state.snapshot()["counters"]["completed"] < 1:  # type: ignore[index]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert worker.queue.holdings() == set()  # acknowledged: in no list
    worker.close()
    assert worker.queue.stats().processing == {}  # retired slots are forgotten
    assert not any(worker.client.exists(worker.queue.names.heartbeat(s)) for s in worker.slot_ids)


def test_close_mid_job_hands_the_job_back_to_the_front(worker: Worker, pg) -> None:
    message = stored_task(worker.settings, pdf_of([dense_page_png(n) for n in range(1, 5)]), "application/pdf")
    worker.start()
    worker.queue.enqueue(message)
    _wait(pg, message.task_id, {"processing"}, min_progress=1)
    waiting = stored_task(worker.settings, text_page_png(["behind"]), "image/png")
    worker.stop.set()  # what SIGTERM does: no new jobs, stop at the next page boundary
    worker.queue.enqueue(waiting)
    worker.close()
    assert _status(pg, message.task_id) == ("queued", 0)
    assert worker.state.snapshot()["counters"]["handedBack"] == 1  # type: ignore[index]
    raw = worker.queue.fetch("next", 0.1)
    assert raw is not None
    assert json.loads(raw)["task_id"] == message.task_id  # ahead of ``waiting``
