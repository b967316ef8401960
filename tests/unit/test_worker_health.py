"""The worker's Flask app, built around a WorkerState without a running worker."""

from worker.health import create_app
from worker.outcomes import JobOutcome
from worker.state import WorkerState


def _app(state: WorkerState, redis_ok: bool = True):  # type: ignore[no-untyped-def]
    def redis_check() -> None:
        if not redis_ok:
            raise ConnectionError("refused")

    return create_app(state, {"redis": redis_check, "database": lambda: None}, lambda: {"queues": {}}).test_client()


def test_healthy_only_once_every_loop_ticked() -> None:
    state = WorkerState("w", slots=2, engines=1)
    assert _app(state).get("/health").status_code == 503
    state.tick("0")
    state.tick("1")
    body = _app(state).get("/health").get_json()
    assert body["checks"] == {"redis": "ok", "database": "ok", "loop": "ok"}


def test_a_dependency_down_is_503_with_the_reason() -> None:
    state = WorkerState("w", slots=1, engines=1)
    state.tick("0")
    resp = _app(state, redis_ok=False).get("/health")
    assert resp.status_code == 503
    assert resp.get_json()["checks"]["redis"].startswith("down: ConnectionError")


def test_a_loop_inside_a_long_job_is_not_stuck(monkeypatch) -> None:
    state = WorkerState("w", slots=1, engines=1)
    state.tick("0")
    state.begin("0", b'{"task_id": "t"}')
    import worker.state as module

    later = module.time.monotonic() + 300
    monkeypatch.setattr(module.time, "monotonic", lambda: later)
    assert state.stuck_loops(30, 1800) == []
    state.end("0", JobOutcome.COMPLETED, 3)
    assert state.stuck_loops(30, 1800) == ["0"]
    assert state.snapshot()["counters"]["completed"] == 1


def test_metrics_are_prometheus_text() -> None:
    state = WorkerState("w", slots=1, engines=1)
    state.begin("0", b'{"task_id": "t"}')
    state.end("0", JobOutcome.COMPLETED, 3)
    app = create_app(state, {}, lambda: {"queues": {"ocr:task:queue:p05": 2}}).test_client()
    resp = app.get("/metrics")
    assert resp.content_type.startswith("text/plain; version=0.0.4")
    lines = resp.get_data(as_text=True).splitlines()
    assert 'untxt_worker_jobs_total{outcome="completed"} 1' in lines
    assert "untxt_worker_pages_total 3" in lines
    assert "untxt_worker_jobs_in_flight 0" in lines
    assert 'untxt_queue_length{list="ocr:task:queue:p05"} 2' in lines
    assert "# TYPE untxt_worker_jobs_total counter" in lines
