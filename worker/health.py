"""The worker's Flask app: GET /health, /status and /metrics, built around a WorkerState."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, jsonify

from common import prometheus
from worker.state import WorkerState

# An idle loop ticks every second (its Redis wait times out); one that has not ticked for this
# long and is not inside a job is stuck.
STALE_LOOP_SECONDS = 30.0


def create_app(
    state: WorkerState,
    checks: dict[str, Callable[[], None]],
    queue_report: Callable[[], dict[str, object]],
    job_timeout_seconds: float = 1800.0,
) -> Flask:
    """``checks`` maps a dependency name to a callable that raises when it is unreachable;
    ``queue_report`` gives the shared view from Redis (queue lengths, live workers)."""
    app = Flask("untxt-worker")

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

    @app.get("/metrics")
    def metrics():  # type: ignore[no-untyped-def]
        """Prometheus text format: this process's counters and the shared queue lengths."""
        snap = state.snapshot()
        try:
            queues = queue_report().get("queues", {})
        except Exception:  # noqa: BLE001 - metrics must answer even with Redis down
            queues = {}
        outcomes = [({"outcome": k}, v) for k, v in snap["counters"].items() if k != "pages"]
        body = prometheus.render(
            [
                prometheus.family(
                    "untxt_worker_jobs_total", "counter", "Jobs finished by this worker process, by outcome.", outcomes
                ),
                prometheus.family(
                    "untxt_worker_pages_total",
                    "counter",
                    "Pages read by this worker process.",
                    [({}, snap["counters"]["pages"])],
                ),
                prometheus.family(
                    "untxt_worker_jobs_in_flight",
                    "gauge",
                    "Jobs this worker process is working on.",
                    [({}, len(snap["inFlight"]))],
                ),
                prometheus.family(
                    "untxt_queue_length",
                    "gauge",
                    "Jobs waiting in a Redis list.",
                    [({"list": name}, length) for name, length in queues.items()],
                ),
            ]
        )
        return Response(body, content_type=prometheus.CONTENT_TYPE)

    @app.get("/status")
    def status():  # type: ignore[no-untyped-def]
        body = state.snapshot()
        try:
            body.update(queue_report())
        except Exception as exc:  # noqa: BLE001 - status must answer even with Redis down
            body["queues"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        return jsonify(body)

    return app
