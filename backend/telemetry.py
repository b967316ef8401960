"""What follows a request through the API and into the worker: its id and its trace.

The id is taken from a sane ``X-Request-Id`` or made here, echoed on the response, put on every
log line of the request and into the job message, so the worker's lines carry it too. The trace:
a server span per request (continuing a caller's ``traceparent``), whose context the job
message carries on to the worker's spans (common/tracing.py).
"""

from __future__ import annotations

import dataclasses
import uuid

from aiohttp import web
from opentelemetry.trace import SpanKind

from backend.metrics import route_template
from common import tracing
from common.job import JobMessage
from common.logs import log_context, sane_request_id

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID = web.RequestKey("request_id", str)


@web.middleware
async def telemetry_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Outermost, so the error envelope, the metrics and every log line are inside."""
    request_id = sane_request_id(request.headers.get(REQUEST_ID_HEADER)) or str(uuid.uuid4())
    request[REQUEST_ID] = request_id
    route = route_template(request)
    attributes = {"http.request.method": request.method, "http.route": route, "untxt.request_id": request_id}
    with (
        log_context(request_id=request_id),
        tracing.span(f"{request.method} {route}", SpanKind.SERVER, attributes, parent=request.headers) as span,
    ):
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects; errors are answers by now (error middleware)
            span.set_attribute("http.response.status_code", exc.status)
            raise
        span.set_attribute("http.response.status_code", response.status)
        return response


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer, WebSocket upgrades and static files included."""
    if REQUEST_ID in request:
        response.headers[REQUEST_ID_HEADER] = request[REQUEST_ID]


def stamped(request: web.Request, message: JobMessage) -> JobMessage:
    """The message as it is queued: with the request it came from and the current span's
    trace context (the worker's job span becomes its child)."""
    return dataclasses.replace(message, request_id=request.get(REQUEST_ID), trace=tracing.carrier())
