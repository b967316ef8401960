"""The worker's Flask app, built around a WorkerState without a running worker."""

import pytest

from tests.scrape import Scrape
from worker.health import create_app
from worker.outcomes import JobOutcome
from worker.state import WorkerState

JOB_TIMEOUT_SECONDS = 1800.0


def _app(state: WorkerState, redis_ok: bool = True):  # type: ignore[no-untyped-def]
    def redis_check() -> None:
        if not redis_ok:
            raise ConnectionError("refused")

    return create_app(
        state, {"redis": redis_check, "database": lambda: None}, lambda: {"queues": {}}, JOB_TIMEOUT_SECONDS
    ).test_client()


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


def test_metrics_are_prometheus_and_move_with_the_work() -> None:
    state = WorkerState("w", slots=1, engines=1)
    app = create_app(state, {}, lambda: {"queues": {"waiting:p05": 2}}, JOB_TIMEOUT_SECONDS).test_client()
    before = Scrape(app.get("/metrics").get_data(as_text=True))
    state.begin("0", b'{"task_id": "t"}')
    during = Scrape(app.get("/metrics").get_data(as_text=True))
    state.end("0", JobOutcome.COMPLETED, 3)
    resp = app.get("/metrics")
    assert resp.content_type.startswith("text/plain; version=0.0.4")
    after = Scrape(resp.get_data(as_text=True))
    assert after.types["untxt_worker_jobs"] == "counter"
    assert after.types["untxt_queue_length"] == "gauge"
    assert before.value("untxt_worker_jobs_total", outcome="completed") == 0
    assert after.value("untxt_worker_jobs_total", outcome="completed") == 1
    assert after.value("untxt_worker_jobs_total", outcome="handedBack") == 0
    assert (before.value("untxt_worker_pages_total"), after.value("untxt_worker_pages_total")) == (0, 3)
    assert (during.value("untxt_worker_jobs_in_flight"), after.value("untxt_worker_jobs_in_flight")) == (1, 0)
    assert after.value("untxt_queue_length", list="waiting:p05") == 2
    assert "process_cpu_seconds_total" in after.names()  # the library's process collector
    assert not any(name.endswith("_created") for name in after.names())


def test_metrics_answer_with_redis_down() -> None:
    def down() -> dict[str, object]:
        raise ConnectionError("refused")

    scrape = Scrape(
        create_app(WorkerState("w", 1, 1), {}, down, JOB_TIMEOUT_SECONDS)
        .test_client()
        .get("/metrics")
        .get_data(as_text=True)
    )
    assert scrape.value("untxt_worker_pages_total") == 0
    assert not any(name == "untxt_queue_length" for name in scrape.names())


def test_apps_of_one_process_keep_their_own_figures() -> None:
    first, second = WorkerState("a", 1, 1), WorkerState("b", 1, 1)
    first.end("0", JobOutcome.FAILED)
    apps = [
        create_app(state, {}, lambda: {"queues": {}}, JOB_TIMEOUT_SECONDS).test_client() for state in (first, second)
    ]
    failed = [
        Scrape(app.get("/metrics").get_data(as_text=True)).value("untxt_worker_jobs_total", outcome="failed")
        for app in apps
    ]
    assert failed == [1, 0]


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"])
def test_status_and_metrics_answer_this_host(peer: str) -> None:
    app = _app(WorkerState("w", slots=1, engines=1))
    for path in ("/status", "/metrics"):
        assert app.get(path, environ_base={"REMOTE_ADDR": peer}).status_code == 200, (path, peer)


@pytest.mark.parametrize("peer", ["10.0.0.7", "192.168.1.20", "::ffff:10.0.0.7", "2001:db8::1", "not-an-address"])
def test_status_and_metrics_refuse_other_hosts_while_health_answers(peer: str) -> None:
    state = WorkerState("w", slots=1, engines=1)
    state.tick("0")
    state.begin("0", b'{"task_id": "7d3c3a52-0d7e-4a57-9a43-5d1a3f1f0b9e"}')
    app = _app(state)
    for path in ("/status", "/metrics"):
        resp = app.get(path, environ_base={"REMOTE_ADDR": peer}, headers={"X-Forwarded-For": "127.0.0.1"})
        assert resp.status_code == 403, (path, peer)
        assert "7d3c3a52" not in resp.get_data(as_text=True)
    health = app.get("/health", environ_base={"REMOTE_ADDR": peer})
    assert health.status_code == 200
    assert "7d3c3a52" not in health.get_data(as_text=True)  # no job ids for anyone who asks
