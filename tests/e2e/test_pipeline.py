"""Upload → S3 (SSE-KMS) → PostgreSQL → Redis → worker (Tesseract) → result.html → presigned GET."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pypdfium2 as pdfium
import pytest
import requests

from common import keys
from tests.conftest import corpus_file
from tests.e2e.conftest import ApiClient, RunningStack
from tests.scrape import Scrape
from tests.support import text_page_png

pytestmark = pytest.mark.e2e
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _assert_encrypted(s3: Any, stack: RunningStack, key: str) -> None:
    head = s3.head_object(Bucket=stack.settings.s3_bucket, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].split("/")[-1] == stack.settings.kms_key_id


def test_real_scan_goes_through_the_whole_pipeline(stack: RunningStack, s3: Any, pg: Any) -> None:
    scan = corpus_file("phototest.tif").read_bytes()
    client = ApiClient(stack.api, stack.settings)
    user_id = client.user_id
    started = time.perf_counter()
    created = client.upload("phototest.tif", scan)
    task = client.wait(created["taskId"])
    elapsed = time.perf_counter() - started
    print(f"\none-page job (phototest.tif) upload → completed: {elapsed:.2f}s")
    assert task["status"] == "completed", task["error"]
    assert task["progress"] == 100
    assert task["result"]["pages"] == 1
    assert task["result"]["meanConfidence"] > 80
    assert task["resultUrl"].startswith("http")

    result = client.get(f"/api/tasks/{created['taskId']}/result").json()["data"]
    assert result["expiresIn"] == 3600
    html = client.result(created["taskId"])
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
    # Its results in the folder of the run that completed it: the first claim's.
    assert result_key == f"results/{user_id}/{month}/{created['fileId']}/1/result.html"
    assert file_status == "processed"
    _assert_encrypted(s3, stack, created["s3Key"])
    _assert_encrypted(s3, stack, result_key)

    # The stored hash is the hash of what was sent and of what the store gives back.
    stored = s3.get_object(Bucket=stack.settings.s3_bucket, Key=created["s3Key"])["Body"].read()
    assert sha256 == created["fileHash"] == hashlib.sha256(scan).hexdigest() == hashlib.sha256(stored).hexdigest()


def test_result_lifetime_formats_and_deleting_a_completed_task(stack: RunningStack, s3: Any, pg: Any) -> None:
    client = ApiClient(stack.api, stack.settings)
    task_id = client.upload("short.png", text_page_png(["Delete me afterwards"]))["taskId"]
    assert client.wait(task_id)["status"] == "completed"

    short = client.get(f"/api/tasks/{task_id}/result?expiresIn=60&format=json").json()["data"]
    assert (short["expiresIn"], short["format"]) == (60, "json")
    assert dict(parse_qsl(urlsplit(short["resultUrl"]).query))["X-Amz-Expires"] == "60"
    for query, code in (("expiresIn=59", "invalid_expiresin"), ("format=docx", "invalid_format")):
        resp = client.get(f"/api/tasks/{task_id}/result?{query}")
        assert resp.status_code == 400
        assert resp.json()["error"]["code"] == code

    with pg.cursor() as cur:
        cur.execute(
            "SELECT s3_key, s3_result_key FROM files f JOIN tasks t ON t.file_id = f.id WHERE t.id = %s", (task_id,)
        )
        upload_key, result_key = cur.fetchone()
    folder = result_key.rsplit("/", 1)[0] + "/"
    stored = s3.list_objects_v2(Bucket=stack.settings.s3_bucket, Prefix=folder)["Contents"]
    assert sorted(o["Key"].rsplit("/", 1)[1] for o in stored) == sorted(
        f.filename for f in keys.RESULT_FORMATS.values()
    )
    gone = requests.delete(f"{stack.api}/api/tasks/{task_id}", headers=client.headers, timeout=10)
    assert gone.status_code == 200, gone.text
    # The upload and every result format are removed from the store, not only the rows.
    assert s3.list_objects_v2(Bucket=stack.settings.s3_bucket, Prefix=folder).get("KeyCount") == 0
    assert s3.list_objects_v2(Bucket=stack.settings.s3_bucket, Prefix=upload_key).get("KeyCount") == 0
    assert client.get(f"/api/tasks/{task_id}").status_code == 404


def test_every_result_format_is_stored_encrypted_and_served(stack: RunningStack, s3: Any, pg: Any) -> None:
    client = ApiClient(stack.api, stack.settings)
    task = client.wait(client.upload("memo.png", text_page_png(["Memo to staff", "Lunch is at noon"]))["taskId"])
    assert task["status"] == "completed", task["error"]
    assert task["result"]["formats"] == list(keys.RESULT_FORMATS)
    assert task["result"]["pageStats"][0]["rotation"] == 0
    for fmt, spec in keys.RESULT_FORMATS.items():
        url = client.get(f"/api/tasks/{task['taskId']}/result?format={fmt}").json()["data"]["resultUrl"]
        body = requests.get(url, timeout=10)
        assert body.status_code == 200, fmt
        assert body.headers["Content-Type"] == spec.content_type, fmt
        assert body.headers["x-amz-server-side-encryption"] == "aws:kms", fmt
        if fmt == "pdf":
            text = pdfium.PdfDocument(body.content)[0].get_textpage().get_text_range()
            assert "Lunch is at noon" in " ".join(text.split())
        else:
            assert b"noon" in body.content, fmt
    # A task completed before pdf, hOCR and ALTO existed has only html, txt and json.
    with pg.cursor() as cur:
        cur.execute("UPDATE tasks SET result = result - 'formats' WHERE id = %s", (task["taskId"],))
    missing = client.get(f"/api/tasks/{task['taskId']}/result?format=pdf")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "format_not_available")
    assert client.get(f"/api/tasks/{task['taskId']}/result?format=txt").status_code == 200


def test_page_rendered_here_reads_back(stack: RunningStack) -> None:
    client = ApiClient(stack.api, stack.settings)
    page = text_page_png(["Quarterly report 2026", "Revenue grew by 17 percent"])
    task = client.wait(client.upload("report.png", page)["taskId"])
    assert task["status"] == "completed", task["error"]
    text = re.sub(r"<[^>]+>", "", client.result(task["taskId"]))
    assert "Quarterly report 2026" in text
    assert "Revenue grew by 17 percent" in text
    plain = client.result(task["taskId"], "txt")
    assert "Revenue grew by 17 percent" in plain
    words = json.loads(client.result(task["taskId"], "json"))["pages"][0]["words"]
    grew = next(w for w in words if w["text"] == "grew")
    assert grew["confidence"] > 50
    assert all(v >= 0 for v in grew["box"])


def test_corrupt_image_fails_with_a_reason_and_the_next_job_succeeds(stack: RunningStack) -> None:
    client = ApiClient(stack.api, stack.settings)
    good = text_page_png(["Still working fine"])
    broken = client.upload("broken.png", good[:200])  # valid PNG magic, truncated body
    after = client.upload("good.png", good)
    failed = client.wait(broken["taskId"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "corrupt_file"
    assert failed["error"]["message"] == "the image could not be decoded"  # the decoder's words are for the logs
    assert client.wait(after["taskId"])["status"] == "completed"
    health = requests.get(f"{stack.health}/health", timeout=5)
    assert health.status_code == 200
    counters = requests.get(f"{stack.health}/status", timeout=5).json()["counters"]
    assert counters["failed"] >= 1
    assert counters["completed"] >= 1


def test_presigned_urls_are_signed_and_expire(stack: RunningStack, s3: Any) -> None:
    client = ApiClient(stack.api, stack.settings)
    task = client.wait(client.upload("sig.png", text_page_png(["signed"]))["taskId"])
    url = client.get(f"/api/tasks/{task['taskId']}/result").json()["data"]["resultUrl"]
    assert requests.get(url, timeout=10).status_code == 200
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
    assert body["engines"] == 2  # WORKER_CONCURRENCY
    assert body["slots"] == 4  # two jobs more than engines, by default
    assert all(f"waiting:p{p:02d}" in body["queues"] for p in range(1, 11))
    assert "dead" in body["queues"]
    mine = [w for w in body["liveWorkers"] if w["slot"].startswith(body["workerId"])]
    assert len(mine) == 4
    assert all(set(w) == {"slot", "taskId", "ageSeconds"} for w in mine)
    assert set(body["counters"]) >= {"completed", "failed", "pages"}
    health = requests.get(f"{stack.health}/health", timeout=5).json()
    assert health["checks"] == {"redis": "ok", "database": "ok", "loop": "ok"}


def test_worker_exposes_prometheus_metrics(stack: RunningStack) -> None:
    before = Scrape(requests.get(f"{stack.health}/metrics", timeout=5).text)
    client = ApiClient(stack.api, stack.settings)
    assert client.wait(client.upload("counted.png", text_page_png(["counted"]))["taskId"])["status"] == "completed"
    after = Scrape(requests.get(f"{stack.health}/metrics", timeout=5).text)
    completed = [s.value("untxt_worker_jobs_total", outcome="completed") for s in (before, after)]
    assert completed[1] == completed[0] + 1
    assert after.value("untxt_worker_pages_total") == before.value("untxt_worker_pages_total") + 1
    assert after.types["untxt_worker_pages"] == "counter"
    assert ("untxt_queue_length", frozenset({("list", "waiting:p10")})) in after.samples


def test_the_worker_log_carries_the_uploads_request_id(stack: RunningStack) -> None:
    client = ApiClient(stack.api, stack.settings)
    client.headers["X-Request-Id"] = "req-e2e-log-1"
    task_id = client.upload("logged.png", text_page_png(["logged"]))["taskId"]
    assert client.wait(task_id)["status"] == "completed"
    log = Path(stack.settings.log_dir) / "worker.log"

    def job_lines() -> list[dict[str, Any]]:
        return [
            line
            for line in map(json.loads, log.read_text(encoding="utf-8").splitlines())
            if line.get("task_id") == task_id
        ]

    deadline = time.monotonic() + 10
    while not any(line["msg"] == "task completed" for line in job_lines()):
        assert time.monotonic() < deadline, "no 'task completed' line for the task"
        time.sleep(0.1)
    mine = job_lines()
    assert {line.get("request_id") for line in mine} == {"req-e2e-log-1"}
    assert all(line["service"] == "worker" for line in mine)
