"""The worker never loses a job: kill -9, Redis flush, duplicates, shutdown, cancel, poison jobs.

Workers here are real ``python -m worker`` processes with short heartbeat and recovery
intervals, so a dead worker is noticed in seconds rather than the production default.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import pytest
import redis
import requests

from common import keys
from common.job import JobMessage
from common.jobqueue import JobQueue
from common.settings import Settings
from tests.conftest import corpus_file
from tests.e2e.conftest import API_PORT, ApiClient, service_env, start_service, stop_service
from tests.support import CuttableProxy, dense_page_png, free_port, pdf_of, text_page_png

pytestmark = pytest.mark.e2e
FAST_RECOVERY = {
    "WORKER_CONCURRENCY": "1",
    "WORKER_HEARTBEAT_TTL_SECONDS": "2",
    "RECOVERY_INTERVAL_SECONDS": "1",
    "RECONCILE_GRACE_SECONDS": "2",
}


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[str]:
    # Earlier test modules leave queued tasks that nobody processes; start from an empty queue.
    conn = psycopg2.connect(settings.database_url)
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE tasks SET status = 'cancelled' WHERE status IN ('queued', 'processing')")
    conn.close()
    redis.Redis.from_url(settings.redis_url).flushdb()
    proc = start_service("backend", service_env(settings), f"http://127.0.0.1:{API_PORT}/health")
    yield f"http://127.0.0.1:{API_PORT}"
    stop_service(proc)


class Workers:
    """Start and kill worker processes; every one is stopped at the end of the test."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, **overrides: str) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        env = service_env(self.settings, WORKER_HEALTH_PORT=str(port), **{**FAST_RECOVERY, **overrides})
        health = f"http://127.0.0.1:{port}"
        proc = start_service("worker", env, f"{health}/health")
        self.procs.append(proc)
        return proc, health

    def stop_all(self) -> None:
        for proc in self.procs:
            stop_service(proc)


@pytest.fixture
def workers(settings: Settings) -> Iterator[Workers]:
    pool = Workers(settings)
    yield pool
    pool.stop_all()


def _task_row(pg: Any, task_id: str) -> dict[str, Any]:
    with pg.cursor() as cur:
        cur.execute("SELECT status, attempts, crash_count, error_code FROM tasks WHERE id = %s", (task_id,))
        status, attempts, crashes, code = cur.fetchone()
    return {"status": status, "attempts": attempts, "crashes": crashes, "code": code}


def _sections(html: str) -> list[str]:
    return re.findall(r'<section class="page" id="page-(\d+)"', html)


def _kill_mid_job(workers: Workers, client: ApiClient, task_id: str, attempt: int) -> None:
    proc, _ = workers.start()
    deadline = time.monotonic() + 60
    while _attempts(client, task_id) < attempt or client.task(task_id)["progress"] < 1:
        assert time.monotonic() < deadline, f"attempt {attempt} never got going: {client.task(task_id)}"
        time.sleep(0.05)
    proc.kill()
    proc.wait()


def _attempts(client: ApiClient, task_id: str) -> int:
    return client.task(task_id)["attempts"]


LONG_PDF = pdf_of([dense_page_png(n) for n in range(1, 7)])


def test_kill_9_mid_job_completes_once_on_another_worker(api, settings, workers, pg, queue) -> None:
    client = ApiClient(api, settings)
    task_id = client.upload("long.pdf", LONG_PDF)["taskId"]
    _kill_mid_job(workers, client, task_id, attempt=1)
    workers.start()
    done = client.wait(task_id, timeout=120)
    assert done["status"] == "completed", done["error"]
    assert done["result"]["pages"] == 6
    assert _task_row(pg, task_id) == {"status": "completed", "attempts": 2, "crashes": 1, "code": None}
    assert _sections(client.result(task_id)) == ["1", "2", "3", "4", "5", "6"]
    assert [slot for slot, n in queue.stats().processing.items() if n] == []


def test_redis_flush_with_jobs_queued_loses_nothing(api, settings, workers, redis_client, queue) -> None:
    client = ApiClient(api, settings)
    ids = [client.upload(f"p{n}.png", text_page_png([f"Flushed job number {n}"]))["taskId"] for n in range(3)]
    redis_client.flushdb()  # the tests' own Redis database: FLUSHALL without touching a dev's data
    assert sum(queue.stats().waiting.values()) == 0
    workers.start()
    for n, task_id in enumerate(ids):
        assert client.wait(task_id, timeout=60)["status"] == "completed"
        assert f"Flushed job number {n}" in client.result(task_id, "txt")


def test_duplicate_message_gives_one_result(api, settings, workers, redis_client, pg, names) -> None:
    client = ApiClient(api, settings)
    task_id = client.upload("dup.png", text_page_png(["Only once"]))["taskId"]
    band = names.user_band(client.user_id, 5)
    raw = next(m for m in redis_client.lrange(band, 0, -1) if json.loads(m)["task_id"] == task_id)
    redis_client.lpush(band, raw)
    _, health = workers.start()
    assert client.wait(task_id)["status"] == "completed"
    deadline = time.monotonic() + 20
    while requests.get(f"{health}/status", timeout=5).json()["counters"]["skipped"] < 1:
        assert time.monotonic() < deadline, "the duplicate was never taken"
        time.sleep(0.1)
    assert _task_row(pg, task_id)["attempts"] == 1
    assert requests.get(f"{health}/status", timeout=5).json()["counters"]["completed"] == 1


def test_multipage_pdf_reports_progress_page_by_page(api, settings, workers, redis_client, names) -> None:
    workers.start()
    client = ApiClient(api, settings)
    pubsub = redis_client.pubsub()
    pubsub.subscribe(names.task_events)
    pdf = pdf_of([text_page_png([f"Section marker {n}"]) for n in range(1, 5)])
    task_id = client.upload("four.pdf", pdf)["taskId"]
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while not events or events[-1]["status"] != "completed":
        assert time.monotonic() < deadline, events
        message = pubsub.get_message(timeout=1)
        if message and message["type"] == "message":
            event = json.loads(message["data"])
            if event["taskId"] == task_id:
                events.append(event)
    pubsub.close()
    pages = [e["page"] for e in events if e["status"] == "processing" and e["page"]]
    assert pages == [1, 2, 3, 4]
    assert [e["progress"] for e in events if e["page"]] == [25, 50, 75, 99]
    assert events[-1]["result"]["pages"] == 4
    html = client.result(task_id)
    assert _sections(html) == ["1", "2", "3", "4"]
    for n in range(1, 5):
        assert f"Section marker {n}" in re.sub(r"<[^>]+>", "", html.split(f'id="page-{n}"')[1])


def test_vietnamese_diacritics_survive_to_the_html(api, settings, workers) -> None:
    scan = corpus_file("vie_p1.png")
    truth = set(scan.with_suffix(".txt").read_text(encoding="utf-8").split())
    workers.start()
    client = ApiClient(api, settings)
    task_id = client.upload("vie_p1.png", scan.read_bytes(), language="vie")["taskId"]
    assert client.wait(task_id, timeout=120)["status"] == "completed"
    html = client.result(task_id)
    words = set(re.findall(r"<span[^>]*>([^<]*)</span>", html))
    accented = {w for w in truth if any(ord(ch) > 0x7F for ch in w)}
    assert len(accented & words) / len(accented) > 0.8
    assert "Tiếng" in html or "tiếng" in html


def test_born_digital_pdf_uses_its_text_layer(api, settings, workers) -> None:
    pdf = corpus_file("vie_born_digital_2p.pdf")
    workers.start()
    client = ApiClient(api, settings)
    task = client.wait(client.upload("digital.pdf", pdf.read_bytes(), language="vie")["taskId"])
    assert task["status"] == "completed"
    assert {p["source"] for p in task["result"]["pageStats"]} == {"text-layer"}
    assert "không" in client.result(task["taskId"], "txt").lower()


def test_markup_in_the_image_is_displayed_never_run(api, settings, workers) -> None:
    workers.start()
    client = ApiClient(api, settings)
    task_id = client.upload("xss.png", text_page_png(["<script>alert(1)</script>"], size=48))["taskId"]
    assert client.wait(task_id)["status"] == "completed"
    html = client.result(task_id)
    body = html.split("<body>", 1)[1]
    assert "<script" not in body
    assert "&lt;script&gt;alert(1)" in body


def test_cancel_mid_pdf_stops_at_a_page_boundary(api, settings, workers, pg) -> None:
    _, health = workers.start()
    client = ApiClient(api, settings)
    task_id = client.upload("long.pdf", LONG_PDF)["taskId"]
    client.wait(task_id, until=("processing",), min_progress=1)
    # /status names the job each live worker is on (from the heartbeats, so within a second here).
    deadline = time.monotonic() + 5
    while not any(w["taskId"] == task_id for w in requests.get(f"{health}/status", timeout=5).json()["liveWorkers"]):
        assert time.monotonic() < deadline, "the busy worker never reported its job"
        time.sleep(0.1)
    resp = client.post(f"/api/tasks/{task_id}/cancel")
    assert resp.status_code == 202, resp.text
    done = client.wait(task_id)
    assert done["status"] == "cancelled"
    assert done["progress"] < 100
    assert client.get(f"/api/tasks/{task_id}/result").status_code == 409
    assert client.post(f"/api/tasks/{task_id}/cancel").status_code == 409


def test_cancelled_queued_job_is_never_processed(api, settings, workers, pg, redis_client, names) -> None:
    client = ApiClient(api, settings)
    task_id = client.upload("queued.png", text_page_png(["never read"]))["taskId"]
    resp = client.post(f"/api/tasks/{task_id}/cancel")
    assert resp.status_code == 200
    assert resp.json()["data"]["status"] == "cancelled"
    # The message is withdrawn from its band at once...
    band = names.user_band(client.user_id, 5)
    assert not any(json.loads(m)["task_id"] == task_id for m in redis_client.lrange(band, 0, -1))
    # ...and even a stale copy would not be claimed.
    stale = JobMessage.new(task_id, str(uuid.uuid4()), client.user_id, "eng", 5)
    JobQueue(redis_client, names).enqueue(stale)
    _, health = workers.start()
    deadline = time.monotonic() + 20
    while requests.get(f"{health}/status", timeout=5).json()["counters"]["skipped"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert _task_row(pg, task_id)["attempts"] == 0
    assert client.task(task_id)["status"] == "cancelled"


def test_page_timeout_fails_the_task_and_the_worker_survives(api, settings, workers) -> None:
    _, health = workers.start(PAGE_TIMEOUT_SECONDS="1")
    client = ApiClient(api, settings)
    slow = dense_page_png(1, lines=70)
    task = client.wait(client.upload("slow.png", slow)["taskId"], timeout=60)
    assert task["status"] == "failed"
    assert task["error"]["code"] == "timeout"
    quick = client.wait(client.upload("quick.png", text_page_png(["fast"]))["taskId"])
    assert quick["status"] == "completed"
    assert requests.get(f"{health}/health", timeout=5).status_code == 200


def test_postgres_dropping_the_workers_connections_mid_job_is_survived(api, settings, workers, pg) -> None:
    workers.start()
    client = ApiClient(api, settings)
    task_id = client.upload("blip.pdf", LONG_PDF)["taskId"]
    client.wait(task_id, until=("processing",), min_progress=1)
    with pg.cursor() as cur:
        # What a PostgreSQL restart or failover does to the worker: its connections vanish.
        cur.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'untxt-worker' AND datname = current_database()"
        )
        assert cur.fetchone()[0] >= 1
    done = client.wait(task_id, timeout=120)
    assert done["status"] == "completed"
    assert done["result"]["pages"] == 6
    assert done["attempts"] == 1  # retried in place, not re-run


def test_storage_outage_mid_job_completes_once_when_the_store_returns(api, settings, workers, s3, pg) -> None:
    """The store goes away while a job is mid-OCR and stays away past botocore's retries: the
    result cannot be written, the task goes back to the queue (not failed, nothing lost), and
    once the store is back it completes, with one result."""
    endpoint = urlsplit(settings.s3_endpoint_url)
    proxy = CuttableProxy((endpoint.hostname or "127.0.0.1", endpoint.port or 80))
    try:
        workers.start(S3_ENDPOINT_URL=proxy.url)
        client = ApiClient(api, settings)
        task_id = client.upload("outage.pdf", LONG_PDF)["taskId"]
        client.wait(task_id, until=("processing",), min_progress=1)
        proxy.cut()
        handed_back = client.wait(task_id, until=("queued",), timeout=90)
        assert handed_back["error"] is None
        time.sleep(3)  # the worker tries again (and fails to download) while the store is away
        assert client.task(task_id)["status"] in ("queued", "processing")
        proxy.restore()
        done = client.wait(task_id, timeout=120)
    finally:
        proxy.close()
    assert done["status"] == "completed", done
    assert done["result"]["pages"] == 6
    assert "Page 6" in client.result(task_id, "txt")
    with pg.cursor() as cur:
        cur.execute("SELECT f.s3_result_key FROM files f JOIN tasks t ON t.file_id = f.id WHERE t.id = %s", (task_id,))
        prefix = cur.fetchone()[0].rsplit("/", 1)[0] + "/"
    listed = s3.list_objects_v2(Bucket=settings.s3_bucket, Prefix=prefix)["Contents"]
    assert sorted(o["Key"].removeprefix(prefix) for o in listed) == sorted(
        f.filename for f in keys.RESULT_FORMATS.values()
    )


def test_job_timeout_fails_a_long_document(api, settings, workers) -> None:
    workers.start(JOB_TIMEOUT_SECONDS="2")
    client = ApiClient(api, settings)
    task = client.wait(client.upload("long.pdf", LONG_PDF)["taskId"], timeout=60)
    assert task["status"] == "failed"
    assert task["error"]["code"] == "timeout"
    assert "longer than 2s" in task["error"]["message"]


def test_poison_job_goes_to_dead_letter_after_killing_two_workers(api, settings, workers, redis_client, names) -> None:
    client = ApiClient(api, settings)
    task_id = client.upload("poison.pdf", LONG_PDF)["taskId"]
    _kill_mid_job(workers, client, task_id, attempt=1)
    _kill_mid_job(workers, client, task_id, attempt=2)
    workers.start()
    failed = client.wait(task_id, timeout=60)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "worker_crashed"
    dead = [json.loads(m)["task_id"] for m in redis_client.lrange(names.dead_letter, 0, -1)]
    assert task_id in dead
    healthy = client.wait(client.upload("after.png", text_page_png(["unaffected"]))["taskId"])
    assert healthy["status"] == "completed"


VERY_LONG_PDF = pdf_of([dense_page_png(n) for n in range(1, 13)])


def test_sigterm_hands_the_job_back_and_exits_cleanly(api, settings, workers, pg) -> None:
    proc, _ = workers.start()
    client = ApiClient(api, settings)
    # Twelve dense pages: the stop request comes long before the last page, so the job must
    # be handed back (a job on its last page would rightly finish instead).
    task_id = client.upload("long.pdf", VERY_LONG_PDF)["taskId"]
    client.wait(task_id, until=("processing",), min_progress=1)
    started = time.monotonic()
    assert stop_service(proc, timeout=30) == 0
    assert time.monotonic() - started < 15
    row = _task_row(pg, task_id)
    assert row["status"] == "queued", row
    assert client.task(task_id)["progress"] < 100
    assert list(Path(settings.work_dir).iterdir()) == [], "temp files left behind"
    workers.start()
    assert client.wait(task_id, timeout=120)["status"] == "completed"
