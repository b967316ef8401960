"""What the request-id and tracing instrumentation costs an upload, with tracing off and on.

    .venv/bin/python -m scripts.bench.tracing_off [--calls N]

No stack needed: it drives the API's real ``telemetry_middleware`` (request id, log context,
server span with the caller's traceparent extracted) around a handler that opens the upload's
two inner spans as ``backend/uploads.py`` does and stamps the job message (``stamped``: request
id and trace context), and the worker's side as ``worker/processor.py`` does it for a one-page
job. Prints µs per upload (and per job) for:

* bare: the same handler without any of it (the floor);
* tracing off: the default (``common.tracing``'s shared do-nothing span), and one such span alone;
* tracing on: the SDK's provider and batch processor, with an exporter that drops the spans
  (the export itself runs in the processor's thread, off the request's path).

For scale: an upload costs the API about 2.85 ms of CPU (docs/benchmarks.md, api_latency.py).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
import timeit
import uuid
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from backend.telemetry import stamped, telemetry_middleware
from common import tracing
from common.job import JobMessage
from common.logs import log_context

API_CPU_PER_UPLOAD_US = 2850.0


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _message() -> JobMessage:
    return JobMessage.new(*(str(uuid.uuid4()) for _ in range(3)), "eng", 5)


async def _request() -> web.Request:
    app = web.Application()
    app.router.add_post("/api/tasks", lambda _: web.Response())
    request = make_mocked_request("POST", "/api/tasks", headers={"Content-Type": "multipart/form-data"}, app=app)
    # The route as the router resolves it (the helper leaves a mock), so http.route is real.
    request._match_info = await app.router.resolve(request)
    return request


def _upload_handler(message: JobMessage) -> Callable[[web.Request], Awaitable[web.Response]]:
    response = web.Response(status=202)

    async def handler(request: web.Request) -> web.Response:
        with tracing.span("store upload", attributes={"untxt.file_id": message.file_id}):
            pass
        with tracing.span("enqueue", SpanKind.PRODUCER, {"untxt.task_id": message.task_id}):
            stamped(request, message)
        return response

    return handler


async def _bare_handler(_request: web.Request) -> web.Response:
    return web.Response(status=202)


def _job(message: JobMessage) -> None:
    """The worker's instrumentation of a one-page job (processor.handle and _run)."""
    with (
        log_context(task_id=message.task_id, request_id=message.request_id),
        tracing.span("job", SpanKind.CONSUMER, {"untxt.task_id": message.task_id}, parent=message.trace) as job,
    ):
        with tracing.span("fetch upload"):
            pass
        with tracing.span("read pages", attributes={"untxt.pages": 1}) as pages:
            pages.add_event("page read", {"untxt.page": 1, "untxt.source": "ocr"})
        with tracing.span("store results"):
            pass
        job.set_attribute("untxt.outcome", "completed")


async def _per_upload_us(calls: int, instrumented: bool) -> float:
    request, message = await _request(), _message()
    handler = _upload_handler(message)
    best = float("inf")
    for _ in range(5):  # best of five runs: the least disturbed by the rest of the machine
        started = time.perf_counter()
        if instrumented:
            for _ in range(calls):
                await telemetry_middleware(request, handler)
        else:
            for _ in range(calls):
                await _bare_handler(request)
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    return best


def _per_job_us(calls: int) -> float:
    message = dataclasses.replace(_message(), request_id="req-1")
    with tracing.span("enqueue"):
        message = dataclasses.replace(message, trace=tracing.carrier())
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            _job(message)
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    return best


def _per_off_span_us(calls: int) -> float:
    def one() -> None:
        with tracing.span(
            "x", SpanKind.SERVER, {"a": 1}, parent={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
        ):
            pass

    return min(timeit.repeat(one, number=calls, repeat=5)) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    calls = parser.parse_args().calls
    bare = asyncio.run(_per_upload_us(calls, instrumented=False))
    tracing.install(None)
    off, off_job = asyncio.run(_per_upload_us(calls, instrumented=True)), _per_job_us(calls)
    off_span = _per_off_span_us(calls)
    provider = TracerProvider()
    # The default queue (2048 spans) drains every 5 s; this loop would fill it in a blink.
    provider.add_span_processor(BatchSpanProcessor(_Drop(), max_queue_size=1_000_000))
    tracing.install(provider)
    on, on_job = asyncio.run(_per_upload_us(calls, instrumented=True)), _per_job_us(calls)
    tracing.install(None)
    provider.shutdown()
    print(f"per upload, bare handler:   {bare:7.2f} µs")
    for label, upload, job in (("tracing off", off, off_job), ("tracing on ", on, on_job)):
        added = upload - bare
        print(
            f"per upload, {label}:  {upload:7.2f} µs (+{added:.2f} µs, {added / API_CPU_PER_UPLOAD_US:.2%} of the "
            f"API's CPU per upload); per one-page job: {job:6.2f} µs"
        )
    print(f"one span with tracing off: {off_span:.2f} µs (the rest of 'off' is the request id and log context)")


if __name__ == "__main__":
    main()
