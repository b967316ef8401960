"""The API and the worker as real processes (``python -m backend`` / ``python -m worker``),
configured like production but pointed at the tests' database, Redis db and bucket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from common.settings import REPO_ROOT, Settings
from tests.support import free_port, new_user

API_PORT = free_port()
HEALTH_PORT = free_port()


@dataclass(frozen=True)
class RunningStack:
    api: str
    health: str
    settings: Settings


def service_env(settings: Settings, **overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "S3_BUCKET": settings.s3_bucket,
            "KMS_KEY_ID": settings.kms_key_id,
            "API_PORT": str(API_PORT),
            "WORKER_HEALTH_PORT": str(HEALTH_PORT),
            "WORKER_CONCURRENCY": "2",
            "WORK_DIR": settings.work_dir,
            "LOG_DIR": settings.log_dir,
            "REDIS_KEY_PREFIX": settings.redis_key_prefix,
            # Webhooks are delivered only by the API processes of tests that ask for it.
            "WEBHOOK_CONCURRENCY": "0",
        }
    )
    if settings.s3_endpoint_url:
        env["S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    env.update(overrides)
    return env


def start_service(module: str, env: dict[str, str], health_url: str, timeout: float = 60) -> subprocess.Popen[bytes]:
    port = urlsplit(health_url).port
    with socket.socket() as probe:
        # A leftover process on the port would answer the health check in the new one's place.
        assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} is already in use"
    proc = subprocess.Popen([sys.executable, "-m", module], cwd=REPO_ROOT, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"python -m {module} exited with {proc.returncode}")
        try:
            if requests.get(health_url, timeout=2).status_code == 200:
                return proc
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    stop_service(proc)
    raise RuntimeError(f"{health_url} not healthy after {timeout}s")


def stop_service(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@pytest.fixture(scope="module")
def stack(settings: Settings) -> Iterator[RunningStack]:
    env = service_env(settings)
    worker = start_service("worker", env, f"http://127.0.0.1:{HEALTH_PORT}/health")
    try:
        api = start_service("backend", env, f"http://127.0.0.1:{API_PORT}/health")
    except Exception:
        stop_service(worker)
        raise
    try:
        yield RunningStack(f"http://127.0.0.1:{API_PORT}", f"http://127.0.0.1:{HEALTH_PORT}", settings)
    finally:
        stop_service(api)
        stop_service(worker)


class ApiClient:
    """A user of the running API, speaking plain HTTP."""

    def __init__(self, base: str, settings: Settings) -> None:
        self.base = base
        self.user_id, self.key = new_user(settings.database_url, f"{uuid.uuid4().hex}@example.com")
        self.headers = {"Authorization": f"Bearer {self.key}"}

    def upload(self, name: str, data: bytes, **fields: str) -> dict[str, Any]:
        resp = requests.post(
            f"{self.base}/api/tasks", headers=self.headers, files={"file": (name, data)}, data=fields, timeout=30
        )
        assert resp.status_code == 202, resp.text
        return resp.json()["data"]

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.base}{path}", headers=self.headers, timeout=10)

    def post(self, path: str) -> requests.Response:
        return requests.post(f"{self.base}{path}", headers=self.headers, timeout=10)

    def task(self, task_id: str) -> dict[str, Any]:
        return self.get(f"/api/tasks/{task_id}").json()["data"]

    def wait(
        self,
        task_id: str,
        until: tuple[str, ...] = ("completed", "failed", "cancelled"),
        timeout: float = 90,
        min_progress: int = 0,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.task(task_id)
            if task["status"] in until and task["progress"] >= min_progress:
                return task
            time.sleep(0.1)
        raise AssertionError(f"task {task_id} not in {until} after {timeout}s: {self.task(task_id)}")

    def result(self, task_id: str, fmt: str = "html") -> str:
        body = self.get(f"/api/tasks/{task_id}/result?format={fmt}").json()["data"]
        page = requests.get(body["resultUrl"], timeout=10)  # a plain HTTP GET: no credentials
        assert page.status_code == 200
        return page.content.decode("utf-8")
