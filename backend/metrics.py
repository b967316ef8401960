"""The API's Prometheus metrics: requests by route and status, their latency, open WebSockets.

Routes are labelled by their template (``/api/tasks/{task_id}``), never the concrete path, so
the label set stays small and no task or user id leaves the process.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import Counter, Gauge, Histogram

from backend.auth import require_operator
from common.metrics import exposition, new_registry

# Upper bounds in seconds: a status read is around a millisecond, an upload tens of them, a slow
# client's large upload seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """One registry per app, so tests may build several apps in one process."""

    def __init__(self, open_websockets: Callable[[], int]) -> None:
        self.registry = new_registry()
        self.requests = Counter(
            "untxt_api_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "untxt_api_request_duration_seconds",
            "Time from request to response (for /ws: the socket's lifetime), by method and route.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        websockets = Gauge(
            "untxt_api_websocket_connections", "WebSockets open on this process.", registry=self.registry
        )
        # Read at scrape time from the relay, which knows its sockets; no count to keep in step.
        websockets.set_function(open_websockets)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


METRICS = web.AppKey("metrics", ApiMetrics)


def route_template(request: web.Request) -> str:
    route = request.match_info.route
    # Unmatched paths (404s) share one label: their paths are whatever a client typed.
    return route.resource.canonical if route.resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Outside the error middleware: sees the final status, including the error envelope's 4xx and 5xx."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[METRICS].observe(request.method, route_template(request), status, time.perf_counter() - started)


async def metrics_endpoint(request: web.Request) -> web.Response:
    """Operators only: the figures are every user's traffic, like queue stats' global part."""
    await require_operator(request)
    body, content_type = exposition(request.app[METRICS].registry, request.headers.get("Accept"))
    # content_type carries its charset; aiohttp's content_type= would refuse one.
    return web.Response(body=body, headers={"Content-Type": content_type})
