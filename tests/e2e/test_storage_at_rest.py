"""The local S3 store really encrypts at rest and keeps data (and its keys) across a restart.

These look inside the embedded SeaweedFS's data dir and restart the stack with its own
scripts, so they run only against the embedded store (not an external S3)."""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from common.s3config import sse_kms_params
from common.settings import REPO_ROOT, Settings, read_env_file

pytestmark = pytest.mark.e2e
DATA_DIR = REPO_ROOT / "var" / "seaweedfs" / "data"


def _embedded_store(settings: Settings) -> None:
    port = read_env_file(REPO_ROOT / "var" / "local.env").get("UNTXT_S3_PORT")
    if not (DATA_DIR.is_dir() and port and settings.s3_endpoint_url == f"http://127.0.0.1:{port}"):
        pytest.skip("needs the embedded SeaweedFS store of ./start_services.sh")


def _files_containing(marker: bytes) -> list[Path]:
    found = []
    for path in DATA_DIR.rglob("*"):
        if path.is_file() and marker in path.read_bytes():
            found.append(path)
    return found


def test_sse_kms_objects_are_ciphertext_on_disk(settings: Settings, s3: Any) -> None:
    _embedded_store(settings)
    marker = secrets.token_hex(24).encode()
    body = (marker + b"|") * 2048
    plain_key, secret_key = f"at-rest/{marker.decode()}-plain", f"at-rest/{marker.decode()}-kms"
    # The control object proves the scan would see plaintext if it were there. untxt's buckets
    # refuse unencrypted writes, so it goes to a bucket of its own that does not.
    control = f"{settings.s3_bucket}-plain-control"
    if control not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=control)
    s3.put_object(Bucket=control, Key=plain_key, Body=body, ContentType="application/octet-stream")
    assert _files_containing(marker), "control object not found on disk: the scan cannot see plaintext"
    s3.delete_object(Bucket=control, Key=plain_key)

    marker2 = secrets.token_hex(24).encode()
    body2 = (marker2 + b"|") * 2048
    s3.put_object(
        Bucket=settings.s3_bucket,
        Key=secret_key,
        Body=body2,
        ContentType="application/octet-stream",
        **sse_kms_params(settings),
    )
    assert s3.get_object(Bucket=settings.s3_bucket, Key=secret_key)["Body"].read() == body2
    assert _files_containing(marker2) == []


def _script(*args: str) -> None:
    subprocess.run(args, cwd=REPO_ROOT, check=True, timeout=240, stdout=subprocess.DEVNULL)


@pytest.mark.restarts_stack
def test_objects_survive_a_full_stack_restart(settings: Settings, s3: Any) -> None:
    _embedded_store(settings)
    key = f"restart/{secrets.token_hex(8)}.bin"
    body = secrets.token_bytes(300_000)
    s3.put_object(Bucket=settings.s3_bucket, Key=key, Body=body, **sse_kms_params(settings))

    full_stack = (REPO_ROOT / "var" / "run" / "api.pid").exists()
    _script("./stop_services.sh")
    _script("./start_services.sh", *([] if full_stack else ["--infra-only"]))

    deadline = time.monotonic() + 30
    while True:
        try:
            got = s3.get_object(Bucket=settings.s3_bucket, Key=key)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert got["ServerSideEncryption"] == "aws:kms"
    assert got["Body"].read() == body
