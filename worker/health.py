"""The worker's Flask app: GET /health, /status and /metrics, built around a WorkerState.

/health answers anyone (a load balancer's probe): dependency states and the worker id, no job.
/status and /metrics answer only callers on this host (a loopback peer): /status lists every
user's task ids in flight, and both show everybody's traffic. See docs/operations.md, Health.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator

from flask import Flask, Response, jsonify, request
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from common.metrics import exposition, new_registry
from worker.outcomes import JobOutcome
from worker.state import WorkerState

# An idle loop ticks every second (its Redis wait times out); one that has not ticked for this
# long and is not inside a job is stuck.
STALE_LOOP_SECONDS = 30.0


def create_app(
    state: WorkerState,
    checks: dict[str, Callable[[], None]],
    queue_report: Callable[[], dict[str, object]],
    job_timeout_seconds: float,
) -> Flask:
    """``checks`` maps a dependency name to a callable that raises when it is unreachable;
    ``queue_report`` gives the shared view from Redis (queue lengths, live workers);
    ``job_timeout_seconds`` is JOB_TIMEOUT_SECONDS (how long a loop may sit in one job)."""
    app = Flask("untxt-worker")

    @app.before_request
    def local_only():  # type: ignore[no-untyped-def]
        if request.path != "/health" and not _is_loopback(request.remote_addr):
            return jsonify({"error": "only from this host (a loopback address); see docs/operations.md"}), 403
        return None

    @app.get("/health")
    def health():  # type: ignore[no-untyped-def]
        report: dict[str, str] = {}
        healthy = True
        for name, check in checks.items():
            try:
                check()
                report[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - any failure means "down", with its reason
                healthy = False
                report[name] = f"down: {type(exc).__name__}: {exc}"[:300]
        # A job may run up to its timeout (plus a page's grace) before its loop counts as hung.
        stuck = state.stuck_loops(STALE_LOOP_SECONDS, job_timeout_seconds + 60)
        if stuck is None or stuck:
            healthy = False
            report["loop"] = "down: not started" if stuck is None else f"down: loops {', '.join(stuck)} stuck"
        else:
            report["loop"] = "ok"
        body = {"status": "ok" if healthy else "unavailable", "checks": report, "workerId": state.worker_id}
        return jsonify(body), 200 if healthy else 503

    registry = new_registry()
    registry.register(_WorkerCollector(state, queue_report))

    @app.get("/metrics")
    def metrics():  # type: ignore[no-untyped-def]
        """Prometheus: this process's counters and the shared queue lengths."""
        body, content_type = exposition(registry, request.headers.get("Accept"))
        return Response(body, headers={"Content-Type": content_type})

    @app.get("/status")
    def status():  # type: ignore[no-untyped-def]
        body = state.snapshot()
        try:
            body.update(queue_report())
        except Exception as exc:  # noqa: BLE001 - status must answer even with Redis down
            body["queues"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        return jsonify(body)

    return app


def _is_loopback(address: str | None) -> bool:
    """The socket's peer (WSGI REMOTE_ADDR; no X-Forwarded-For is trusted here)."""
    try:
        peer = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped  # ::ffff:127.0.0.1 on a dual-stack socket
    return peer.is_loopback


class _WorkerCollector(Collector):
    """Reads the figures at scrape time: the counts live in WorkerState (which /status shows
    too, so the two never disagree), the queue lengths in Redis."""

    def __init__(self, state: WorkerState, queue_report: Callable[[], dict[str, object]]) -> None:
        self.state = state
        self.queue_report = queue_report

    def collect(self) -> Iterator[Metric]:
        snap = self.state.snapshot()
        counters: dict[str, int] = snap["counters"]  # type: ignore[assignment]
        jobs = CounterMetricFamily(
            "untxt_worker_jobs", "Jobs finished by this worker process, by outcome.", labels=["outcome"]
        )
        for outcome in JobOutcome:
            jobs.add_metric([outcome.value], counters[outcome.value])
        yield jobs
        yield CounterMetricFamily("untxt_worker_pages", "Pages read by this worker process.", counters["pages"])
        yield GaugeMetricFamily(
            "untxt_worker_jobs_in_flight",
            "Jobs this worker process is working on.",
            len(snap["inFlight"]),  # type: ignore[arg-type]
        )
        lengths = GaugeMetricFamily("untxt_queue_length", "Jobs waiting in a Redis list.", labels=["list"])
        try:
            queues: dict[str, int] = self.queue_report().get("queues", {})  # type: ignore[assignment]
        except Exception:  # noqa: BLE001 - metrics must answer even with Redis down
            queues = {}
        for name, length in queues.items():
            lengths.add_metric([name], length)
        yield lengths
