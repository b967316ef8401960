"""Upload → S3 (SSE-KMS) → PostgreSQL → Redis → worker (Tesseract) → result.html → presigned GET."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests

from tests.conftest import corpus_file
from tests.e2e.conftest import RunningStack
from tests.support import new_user, text_page_png

pytestmark = pytest.mark.e2e
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _auth(stack: RunningStack) -> tuple[str, dict[str, str]]:
    user_id, key = new_user(stack.settings.database_url, f"{uuid.uuid4().hex}@example.com")
    return user_id, {"Authorization": f"Bearer {key}"}


def _upload(stack: RunningStack, auth: dict[str, str], name: str, data: bytes) -> dict[str, Any]:
    resp = requests.post(f"{stack.api}/api/tasks", headers=auth, files={"file": (name, data)}, timeout=30)
    assert resp.status_code == 202, resp.text
    return resp.json()["data"]


def _wait_done(stack: RunningStack, auth: dict[str, str], task_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = requests.get(f"{stack.api}/api/tasks/{task_id}/status", headers=auth, timeout=10).json()["data"]
        if status["status"] in ("completed", "failed", "cancelled"):
            return requests.get(f"{stack.api}/api/tasks/{task_id}", headers=auth, timeout=10).json()["data"]
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} not finished after {timeout}s")


def _result_html(stack: RunningStack, auth: dict[str, str], task_id: str) -> tuple[str, str]:
    body = requests.get(f"{stack.api}/api/tasks/{task_id}/result", headers=auth, timeout=10).json()["data"]
    assert body["expiresIn"] == 3600
    page = requests.get(body["resultUrl"], timeout=10)  # a plain HTTP GET: no credentials
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    return body["resultUrl"], page.content.decode("utf-8")


def _assert_encrypted(s3: Any, stack: RunningStack, key: str) -> None:
    head = s3.head_object(Bucket=stack.settings.s3_bucket, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].split("/")[-1] == stack.settings.kms_key_id


def test_real_scan_goes_through_the_whole_pipeline(stack: RunningStack, s3: Any, pg: Any) -> None:
    scan = corpus_file("phototest.tif").read_bytes()
    user_id, auth = _auth(stack)
    started = time.perf_counter()
    created = _upload(stack, auth, "phototest.tif", scan)
    task = _wait_done(stack, auth, created["taskId"])
    elapsed = time.perf_counter() - started
    print(f"\none-page job (phototest.tif) upload → completed: {elapsed:.2f}s")
    assert task["status"] == "completed", task["error"]
    assert task["progress"] == 100
    assert task["result"]["pages"] == 1
    assert task["result"]["meanConfidence"] > 80
    assert task["resultUrl"].startswith("http")

    _, html = _result_html(stack, auth, created["taskId"])
    words = re.findall(r"<span[^>]*>([^<]*)</span>", html)
    for word in ("quick", "brown", "dog", "jumped", "lazy", "fox."):
        assert word in words
    assert "phototest.tif" in html

    # Keys follow the contract's hierarchy; both objects are SSE-KMS under the configured key.
    month = created["createdAt"][:7]
    assert re.fullmatch(rf"uploads/{user_id}/{month}/{created['fileId']}/phototest\.tif", created["s3Key"])
    with pg.cursor() as cur:
        cur.execute("SELECT s3_result_key, sha256, status FROM files WHERE id = %s", (created["fileId"],))
        result_key, sha256, file_status = cur.fetchone()
    assert result_key == f"results/{user_id}/{month}/{created['fileId']}/result.html"
    assert file_status == "processed"
    _assert_encrypted(s3, stack, created["s3Key"])
    _assert_encrypted(s3, stack, result_key)

    # The stored hash is the hash of what was sent and of what the store gives back.
    stored = s3.get_object(Bucket=stack.settings.s3_bucket, Key=created["s3Key"])["Body"].read()
    assert sha256 == created["fileHash"] == hashlib.sha256(scan).hexdigest() == hashlib.sha256(stored).hexdigest()


def test_page_rendered_here_reads_back(stack: RunningStack) -> None:
    _, auth = _auth(stack)
    page = text_page_png(["Quarterly report 2026", "Revenue grew by 17 percent"])
    task = _wait_done(stack, auth, _upload(stack, auth, "report.png", page)["taskId"])
    assert task["status"] == "completed", task["error"]
    _, html = _result_html(stack, auth, task["taskId"])
    text = re.sub(r"<[^>]+>", "", html)
    assert "Quarterly report 2026" in text
    assert "Revenue grew by 17 percent" in text


def test_corrupt_image_fails_with_a_reason_and_the_next_job_succeeds(stack: RunningStack) -> None:
    _, auth = _auth(stack)
    good = text_page_png(["Still working fine"])
    broken = _upload(stack, auth, "broken.png", good[:200])  # valid PNG magic, truncated body
    after = _upload(stack, auth, "good.png", good)
    failed = _wait_done(stack, auth, broken["taskId"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "corrupt_file"
    assert "could not be decoded" in failed["error"]["message"]
    assert _wait_done(stack, auth, after["taskId"])["status"] == "completed"
    health = requests.get(f"{stack.health}/health", timeout=5)
    assert health.status_code == 200
    counters = requests.get(f"{stack.health}/status", timeout=5).json()["counters"]
    assert counters["failed"] >= 1
    assert counters["completed"] >= 1


def test_presigned_urls_are_signed_and_expire(stack: RunningStack, s3: Any) -> None:
    _, auth = _auth(stack)
    task = _wait_done(stack, auth, _upload(stack, auth, "sig.png", text_page_png(["signed"]))["taskId"])
    url, _ = _result_html(stack, auth, task["taskId"])
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    signature = query["X-Amz-Signature"]
    query["X-Amz-Signature"] = ("0" if signature[0] != "0" else "1") + signature[1:]
    tampered = urlunsplit(parts._replace(query=urlencode(query)))
    assert requests.get(tampered, timeout=10).status_code == 403
    other_key = urlunsplit(parts._replace(path=parts.path.replace("result.html", "other.html")))
    assert requests.get(other_key, timeout=10).status_code == 403
    short = s3.generate_presigned_url(
        "get_object", Params={"Bucket": stack.settings.s3_bucket, "Key": parts.path.split("/", 2)[2]}, ExpiresIn=1
    )
    time.sleep(2.5)
    assert requests.get(short, timeout=10).status_code == 403


def test_worker_status_reports_queue_and_counters(stack: RunningStack) -> None:
    body = requests.get(f"{stack.health}/status", timeout=5).json()
    assert body["slots"] == 2
    assert "ocr:task:queue" in body["queues"]
    assert set(body["counters"]) >= {"completed", "failed", "pages"}
    health = requests.get(f"{stack.health}/health", timeout=5).json()
    assert health["checks"] == {"redis": "ok", "database": "ok", "loop": "ok"}
