"""Webhooks end to end: real API and worker processes deliver every terminal state to a receiver
in the test, which verifies each signature with ``standardwebhooks`` and answers 500 to the first
two attempts of every message; then exactly one successful delivery per event follows, also when
the worker was killed with kill -9 in the middle of the job."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg2
import pytest
import redis
import requests
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from common.settings import Settings
from tests.e2e.conftest import ApiClient, service_env, start_service, stop_service

# Worker processes with fast crash recovery, as the reliability tests start them.
from tests.e2e.test_worker_reliability import Workers
from tests.support import dense_page_png, free_port, pdf_of, text_page_png

pytestmark = pytest.mark.e2e

FAILURES_FIRST = 2
# Retries within seconds instead of minutes: attempt 2 after 0.15-0.3 s, attempt 3 after 0.3-0.6 s.
FAST_WEBHOOKS = {
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
    "WEBHOOK_RETRY_BASE_SECONDS": "0.3",
    "WEBHOOK_POLL_SECONDS": "0.1",
    "WEBHOOK_TIMEOUT_SECONDS": "5",
    "WEBHOOK_CONCURRENCY": "8",
}


class Receiver:
    """A webhook endpoint on loopback. Each path is one registered webhook with its secret; every
    request is verified with standardwebhooks and recorded; the first FAILURES_FIRST attempts of
    each message (by webhook-id) are answered 500, later ones 200."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.record(self.path, dict(self.headers), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def record(self, path: str, headers: dict[str, str], body: bytes) -> int:
        secret = self.secrets.get(path)
        try:
            payload = Webhook(secret).verify(body, headers) if secret else None
        except WebhookVerificationError:
            payload = None
        with self._lock:
            message_id = headers.get("webhook-id")
            earlier = sum(1 for r in self.received if r["id"] == message_id)
            status = 500 if earlier < FAILURES_FIRST else 200
            self.received.append(
                {"path": path, "id": message_id, "verified": payload is not None, "payload": payload, "answer": status}
            )
        return status

    def at(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.received if r["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[str]:
    # Tasks earlier modules left queued would keep this module's workers busy: end them first.
    # Webhooks other modules registered (the fuzzer's) are dropped: this API delivers, and only
    # to this module's receiver.
    conn = psycopg2.connect(settings.database_url)
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM webhooks")
        cur.execute("UPDATE tasks SET status = 'cancelled' WHERE status IN ('queued', 'processing')")
    conn.close()
    redis.Redis.from_url(settings.redis_url).flushdb()
    port = free_port()
    env = service_env(settings, API_PORT=str(port), **FAST_WEBHOOKS)
    proc = start_service("backend", env, f"http://127.0.0.1:{port}/health")
    yield f"http://127.0.0.1:{port}"
    assert stop_service(proc) == 0  # the dispatcher stops with the app, cleanly


@pytest.fixture
def workers(settings: Settings) -> Iterator[Workers]:
    pool = Workers(settings)
    yield pool
    pool.stop_all()


def _register(client: ApiClient, receiver: Receiver, **body: Any) -> tuple[str, str]:
    """(webhook id, receiver path) of a new webhook of this client's user."""
    path = f"/hooks/{uuid.uuid4().hex}"
    resp = requests.post(
        f"{client.base}/api/webhooks", json={"url": receiver.url(path), **body}, headers=client.headers, timeout=10
    )
    assert resp.status_code == 201, resp.text
    data = resp.json()["data"]
    receiver.secrets[path] = data["secret"]
    return data["webhookId"], path


def _delivered(receiver: Receiver, path: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    """The path's requests once ``count`` messages were answered 200, and a moment longer, so
    any repeat that would follow a success is seen too."""
    deadline = time.monotonic() + timeout
    while sum(1 for r in receiver.at(path) if r["answer"] == 200) < count:
        assert time.monotonic() < deadline, receiver.at(path)
        time.sleep(0.1)
    time.sleep(1.5)
    return receiver.at(path)


def _one_success_each(requests_seen: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every request verified; each message tried 500, 500, then 200 once and never again."""
    assert all(r["verified"] for r in requests_seen), requests_seen
    by_message: dict[str, list[dict[str, Any]]] = {}
    for r in requests_seen:
        by_message.setdefault(r["id"], []).append(r)
    for attempts in by_message.values():
        assert [a["answer"] for a in attempts] == [500] * FAILURES_FIRST + [200]
        assert len({json.dumps(a["payload"], sort_keys=True) for a in attempts}) == 1  # the same message
    return {attempts[-1]["payload"]["data"]["taskId"]: attempts[-1]["payload"] for attempts in by_message.values()}


def test_each_terminal_state_is_delivered_once_after_two_failures(
    api: str, settings: Settings, receiver: Receiver, workers: Workers
) -> None:
    client = ApiClient(api, settings)
    webhook_id, path = _register(client, receiver)
    stranger = ApiClient(api, settings)
    _, stranger_path = _register(stranger, receiver)

    # No worker yet: this one is cancelled while queued (the API's path to a terminal state).
    cancelled = client.upload("later.png", text_page_png(["Never read"]), tag="to-cancel")["taskId"]
    assert client.post(f"/api/tasks/{cancelled}/cancel").status_code == 200
    workers.start()
    good = text_page_png(["Signed and delivered"])
    completed = client.upload("good.png", good, tag="batch-7")["taskId"]
    failed = client.upload("broken.png", good[:200])["taskId"]  # PNG magic, truncated body
    assert client.wait(completed)["status"] == "completed"
    assert client.wait(failed)["status"] == "failed"

    payloads = _one_success_each(_delivered(receiver, path, 3))
    assert set(payloads) == {completed, failed, cancelled}
    done = payloads[completed]
    assert done["type"] == "task.completed"
    assert done["data"]["status"] == "completed"
    assert done["data"]["tag"] == "batch-7"
    assert done["data"]["error"] is None
    assert set(done["data"]["formats"]) >= {"html", "txt", "json", "pdf"}
    assert client.task(completed)["result"]["formats"] == done["data"]["formats"]
    broken = payloads[failed]
    assert (broken["type"], broken["data"]["error"]["code"], broken["data"]["formats"]) == (
        "task.failed",
        "corrupt_file",
        None,
    )
    stopped = payloads[cancelled]
    assert (stopped["type"], stopped["data"]["tag"], stopped["data"]["error"]["code"]) == (
        "task.cancelled",
        "to-cancel",
        "cancelled",
    )
    assert receiver.at(stranger_path) == []  # another user's webhook hears nothing of these

    # The delivery log shows every attempt: two 500s, each with its next retry, then the 200.
    log = client.get(f"/api/webhooks/{webhook_id}/deliveries").json()["data"]
    assert log["next"] is None
    assert {d["taskId"]: d["event"] for d in log["deliveries"]} == {
        completed: "task.completed",
        failed: "task.failed",
        cancelled: "task.cancelled",
    }
    for delivery in log["deliveries"]:
        assert delivery["status"] == "delivered"
        assert delivery["nextAttemptAt"] is None
        attempts = delivery["attempts"]
        assert [a["statusCode"] for a in attempts] == [500, 500, 200]
        assert [a["attempt"] for a in attempts] == [1, 2, 3]
        assert all(a["nextAttemptAt"] for a in attempts[:2])
        assert attempts[-1]["nextAttemptAt"] is None
        assert attempts[0]["nextAttemptAt"] <= attempts[1]["attemptedAt"]
    other = stranger.get(f"/api/webhooks/{webhook_id}/deliveries")
    assert other.status_code == 404


def test_a_worker_killed_mid_job_still_ends_in_one_delivered_completion(
    api: str, settings: Settings, receiver: Receiver, workers: Workers, pg: Any
) -> None:
    client = ApiClient(api, settings)
    _, path = _register(client, receiver, events=["task.completed"])
    task_id = client.upload("long.pdf", pdf_of([dense_page_png(n) for n in range(1, 7)]))["taskId"]
    doomed, _ = workers.start()
    deadline = time.monotonic() + 60
    while client.task(task_id)["progress"] < 1:
        assert time.monotonic() < deadline, client.task(task_id)
        time.sleep(0.05)
    doomed.kill()  # SIGKILL: no hand-back, no outcome; the reaper requeues the job
    doomed.wait()
    workers.start()
    done = client.wait(task_id, timeout=120)
    assert done["status"] == "completed", done["error"]
    assert done["attempts"] == 2

    payloads = _one_success_each(_delivered(receiver, path, 1))
    assert list(payloads) == [task_id]
    with pg.cursor() as cur:
        cur.execute("SELECT event, status FROM webhook_deliveries WHERE task_id = %s", (task_id,))
        assert cur.fetchall() == [("task.completed", "delivered")]
