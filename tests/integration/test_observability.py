"""Request ids from the API into the worker's log lines: the API in-process, the worker as an
object in the same process (as in test_worker_inprocess.py), the real stores."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from backend.app import create_app
from common.logs import structured
from common.settings import Settings
from tests.integration.conftest import form, user_headers
from worker.daemon import Worker


@pytest.fixture
def own(settings: Settings) -> Settings:
    """A key prefix of the test's own: its worker takes no job other tests left queued."""
    return settings.replace(redis_key_prefix=f"t{uuid.uuid4().hex[:10]}", worker_concurrency=1, worker_job_slots=1)


@pytest.fixture
async def api(aiohttp_client: Any, own: Settings) -> Any:
    return await aiohttp_client(create_app(own))


@pytest.fixture
def worker(own: Settings) -> Iterator[Worker]:
    worker = Worker(own, serve_health=False, run_recovery=False)
    worker.start()
    yield worker
    worker.close()


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Every JSON line the process logs during the test, as the services' handlers write them."""
    buffer = io.StringIO()
    handler = structured(logging.StreamHandler(buffer), "test")
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(level)


async def _job_done(lines: Callable[[], list[dict[str, Any]]], task_id: str, timeout: float = 60) -> None:
    """Until the worker has logged the job's last line."""
    deadline = time.monotonic() + timeout
    while not any(line["msg"] == "task completed" and line.get("task_id") == task_id for line in lines()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("sent", "kept"), [(None, False), ("req-obs-7f3a", True), ("two words", False), ("x" * 200, False)]
)
async def test_every_answer_carries_a_request_id(api: Any, settings: Settings, sent: str | None, kept: bool) -> None:
    headers = {"X-Request-Id": sent} if sent is not None else {}
    for path in ("/health", "/api/tasks", "/no/such/path"):  # 200, 401 and 404 alike
        echoed = (await api.get(path, headers=headers)).headers["X-Request-Id"]
        if kept:
            assert echoed == sent
        else:
            assert uuid.UUID(echoed)  # a fresh one, not the caller's


async def test_the_request_id_reaches_every_worker_line_of_the_job(
    api: Any, worker: Worker, settings: Settings, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    _, auth = await user_headers(settings)
    resp = await api.post("/api/tasks", data=form(), headers={**auth, "X-Request-Id": "req-obs-upload-1"})
    assert resp.status == 202
    assert resp.headers["X-Request-Id"] == "req-obs-upload-1"
    task_id = (await resp.json())["data"]["taskId"]
    await _job_done(log_lines, task_id)
    processor_lines = [line for line in log_lines() if line["logger"] == "untxt.worker.processor"]
    assert processor_lines
    for line in processor_lines:
        assert (line.get("task_id"), line.get("request_id")) == (task_id, "req-obs-upload-1"), line
