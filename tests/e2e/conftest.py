"""The API and the worker as real processes (``python -m backend`` / ``python -m worker``),
configured like production but pointed at the tests' database, Redis db and bucket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from common.settings import REPO_ROOT, Settings

API_PORT = 18080
HEALTH_PORT = 15001


@dataclass(frozen=True)
class RunningStack:
    api: str
    health: str
    settings: Settings


def _env(settings: Settings) -> dict[str, str]:
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
        }
    )
    if settings.s3_endpoint_url:
        env["S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    return env


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not healthy after {timeout}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def stack(settings: Settings) -> Iterator[RunningStack]:
    env = _env(settings)
    worker = subprocess.Popen([sys.executable, "-m", "worker"], cwd=REPO_ROOT, env=env)
    api = subprocess.Popen([sys.executable, "-m", "backend"], cwd=REPO_ROOT, env=env)
    try:
        _wait_healthy(f"http://127.0.0.1:{HEALTH_PORT}/health", worker)
        _wait_healthy(f"http://127.0.0.1:{API_PORT}/health", api)
        yield RunningStack(f"http://127.0.0.1:{API_PORT}", f"http://127.0.0.1:{HEALTH_PORT}", settings)
    finally:
        _stop(api)
        _stop(worker)
