"""Request ids and traces from the API into the worker: the API in-process, the worker as an
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
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_trace_id

from backend.app import create_app
from common import tracing
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


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.install(None)
    provider.shutdown()


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


async def test_one_trace_from_the_upload_to_the_stored_results(
    api: Any, worker: Worker, settings: Settings, spans: InMemorySpanExporter, log_lines: Any
) -> None:
    _, auth = await user_headers(settings)
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{caller_trace}-00f067aa0ba902b7-01"
    resp = await api.post("/api/tasks", data=form(), headers={**auth, "traceparent": traceparent})
    assert resp.status == 202
    task_id = (await resp.json())["data"]["taskId"]

    def by_name() -> dict[str, ReadableSpan]:
        return {span.name: span for span in spans.get_finished_spans()}

    deadline = time.monotonic() + 60
    while "job" not in by_name():  # the job's span ends last, once the outcome is recorded
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    found = by_name()
    wanted = ["POST /api/tasks", "store upload", "enqueue", "job", "fetch upload", "read pages", "store results"]
    assert set(wanted) <= set(found), sorted(found)
    assert {format_trace_id(found[name].context.trace_id) for name in wanted} == {caller_trace}
    server, enqueue, job = found["POST /api/tasks"], found["enqueue"], found["job"]
    assert (server.kind, server.attributes["http.route"], server.attributes["http.response.status_code"]) == (
        SpanKind.SERVER,
        "/api/tasks",
        202,
    )
    assert server.parent.span_id == 0x00F067AA0BA902B7  # the caller's span
    assert enqueue.parent.span_id == server.context.span_id
    # Across Redis: the worker's job is the child of the enqueue span.
    assert (job.kind, job.parent.span_id) == (SpanKind.CONSUMER, enqueue.context.span_id)
    assert job.attributes["untxt.task_id"] == task_id
    assert job.attributes["untxt.outcome"] == "completed"
    for name in ("fetch upload", "read pages", "store results"):
        assert found[name].parent.span_id == job.context.span_id, name
    assert [event.name for event in found["read pages"].events] == ["page read"]
    completed = next(line for line in log_lines() if line["msg"] == "task completed" and line.get("task_id") == task_id)
    assert completed["trace_id"] == caller_trace
