"""Hostile files against the real worker: a PDF that never finishes rendering and one whose
decoding allocates without bound cost their own task, never the worker; the next job completes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from common.settings import Settings
from tests.e2e.conftest import ApiClient, service_env, start_service, stop_service
from tests.integration.test_sandbox import bomb_pdf, endless_pdf
from tests.support import free_port, text_page_png

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hardened(settings: Settings) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    api_port, health_port = free_port(), free_port()
    env = service_env(
        settings,
        API_PORT=str(api_port),
        WORKER_HEALTH_PORT=str(health_port),
        WORKER_CONCURRENCY="1",
        PAGE_TIMEOUT_SECONDS="4",
        SANDBOX_MEMORY_MB="1024",
    )
    worker = start_service("worker", env, f"http://127.0.0.1:{health_port}/health")
    api = start_service("backend", env, f"http://127.0.0.1:{api_port}/health")
    try:
        yield f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{health_port}", worker
    finally:
        stop_service(api)
        stop_service(worker)


def test_hostile_files_fail_alone_and_the_worker_goes_on(hardened, settings: Settings, tmp_path: Path) -> None:
    api, health, worker = hardened
    client = ApiClient(api, settings)

    endless = tmp_path / "endless.pdf"
    endless_pdf(endless)
    slow = client.wait(client.upload("endless.pdf", endless.read_bytes())["taskId"], timeout=60)
    assert slow["status"] == "failed"
    assert slow["error"]["code"] == "timeout"

    bomb = tmp_path / "bomb.pdf"
    bomb_pdf(bomb)
    boom = client.wait(client.upload("bomb.pdf", bomb.read_bytes())["taskId"], timeout=120)
    # Here PDFium aborts on the failed allocation, its child dies, and after the second death
    # the task fails worker_crashed; out of memory, the page timeout or PDFium giving up on the
    # stream (a blank page) would be as good. Never the worker.
    assert boom["status"] in ("failed", "completed"), boom
    if boom["status"] == "failed":
        assert boom["error"]["code"] in ("out_of_memory", "worker_crashed", "timeout"), boom["error"]
        assert "/" not in boom["error"]["message"]  # no paths of the worker's in what users see

    after = client.wait(client.upload("after.png", text_page_png(["business as usual"]))["taskId"], timeout=60)
    assert after["status"] == "completed"
    assert "business as usual" in client.result(after["taskId"], "txt")
    # The same worker process all along, and healthy.
    assert worker.poll() is None
    assert requests.get(f"{health}/health", timeout=5).status_code == 200
