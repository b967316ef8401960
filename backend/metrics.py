"""The API's Prometheus metrics: requests by route and status, their latency, open WebSockets.

Routes are labelled by their template (``/api/tasks/{task_id}``), never the concrete path, so
the label set stays small and no task or user id leaves the process.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from dataclasses import dataclass, field

from aiohttp import web

from backend.live import RELAY
from common import prometheus

# Upper bounds in seconds: a status read is around a millisecond, an upload tens of them, a slow
# client's large upload seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds


@dataclass
class ApiMetrics:
    requests: dict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    latency: dict[tuple[str, str], _Histogram] = field(default_factory=lambda: defaultdict(_Histogram))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        self.latency[(method, route)].observe(seconds)

    def render(self, websockets: int) -> str:
        return prometheus.render(
            [
                prometheus.family(
                    "untxt_api_requests_total",
                    "counter",
                    "HTTP requests answered, by method, route template and status.",
                    [
                        ({"method": m, "route": r, "status": str(s)}, n)
                        for (m, r, s), n in sorted(self.requests.items())
                    ],
                ),
                self._latency_lines(),
                prometheus.family(
                    "untxt_api_websocket_connections", "gauge", "WebSockets open on this process.", [({}, websockets)]
                ),
            ]
        )

    def _latency_lines(self) -> list[str]:
        name = "untxt_api_request_duration_seconds"
        lines = prometheus.header(
            name, "histogram", "Time from request to response (for /ws: the socket's lifetime), by method and route."
        )
        for (method, route), hist in sorted(self.latency.items()):
            labels = {"method": method, "route": route}
            running = 0
            for bound, count in zip((*LATENCY_BUCKETS, None), hist.counts, strict=True):
                running += count
                le = "+Inf" if bound is None else f"{bound:g}"
                lines.append(prometheus.sample(f"{name}_bucket", {**labels, "le": le}, running))
            lines.append(prometheus.sample(f"{name}_sum", labels, hist.total))
            lines.append(prometheus.sample(f"{name}_count", labels, running))
        return lines


METRICS = web.AppKey("metrics", ApiMetrics)


def _route(request: web.Request) -> str:
    route = request.match_info.route
    # Unmatched paths (404s) share one label: their paths are whatever a client typed.
    return route.resource.canonical if route.resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Outermost: sees the final status, including the error envelope's 4xx and 5xx."""
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
        request.app[METRICS].observe(request.method, _route(request), status, time.perf_counter() - started)


async def metrics_endpoint(request: web.Request) -> web.Response:
    body = request.app[METRICS].render(len(request.app[RELAY].connections()))
    return web.Response(body=body.encode(), headers={"Content-Type": prometheus.CONTENT_TYPE})
