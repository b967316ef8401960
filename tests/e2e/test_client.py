"""untxt.AsyncClient and untxt.Client against the real API and worker processes."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import corpus_file
from tests.e2e.conftest import ApiClient, RunningStack, service_env, start_service, stop_service
from tests.support import dense_page_png, free_port, pdf_of, text_page_png
from untxt import (
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    Status,
    TaskUpdate,
    UploadProgress,
)

pytestmark = pytest.mark.e2e

TAG = "e2e scans ✓"


@pytest.fixture
def key(stack: RunningStack) -> str:
    return ApiClient(stack.api, stack.settings).key


async def test_a_real_scan_uploaded_followed_live_and_read_in_every_format(
    stack: RunningStack, key: str, tmp_path: Path
) -> None:
    scan = corpus_file("phototest.tif")
    async with AsyncClient(stack.api, key) as client:
        sent: list[UploadProgress] = []
        upload = await client.upload(scan, tag=TAG, priority=7, on_progress=sent.append)
        assert (upload.tag, upload.priority, upload.status, upload.filename) == (TAG, 7, Status.QUEUED, scan.name)
        assert (sent[0].sent, sent[-1].sent, sent[-1].total) == (0, scan.stat().st_size, scan.stat().st_size)

        updates: list[TaskUpdate] = []
        task = await client.wait(upload.task_id, timeout=90, on_update=updates.append)
        assert (task.status, task.tag, task.progress) == (Status.COMPLETED, TAG, 100)
        assert task.result is not None
        assert task.result["pages"] == 1
        # Page by page over the WebSocket, each event with the upload's tag.
        assert any(u.status == Status.PROCESSING and (u.page, u.pages) == (1, 1) for u in updates)
        assert updates[-1].status == Status.COMPLETED
        assert {u.tag for u in updates} == {TAG}

        text = (await client.download(task.task_id, "txt")).decode("utf-8")
        assert "quick brown dog jumped over the" in text
        pages = json.loads(await client.download(task.task_id, "json"))["pages"]
        assert any(w["text"] == "quick" for w in pages[0]["words"])
        saved = await client.save_result(task.task_id, tmp_path / "scan.html")
        assert "<html" in saved.read_text(encoding="utf-8")
        assert not list(tmp_path.glob("*.part"))
        with pytest.raises(InvalidRequestError) as bad_format:
            await client.download(task.task_id, "docx")
        assert bad_format.value.code == "invalid_format"

        tagged = [t.task_id async for t in client.iter_tasks(tag=TAG, page_size=1)]
        assert tagged == [task.task_id]


async def test_wait_falls_back_to_polling_when_the_websocket_is_refused(
    stack: RunningStack, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A browser Origin the API does not allow: the upgrade is refused with 403, as a proxy
    # without WebSocket support would refuse it; HTTP still works.
    async with AsyncClient(stack.api, key, headers={"Origin": "http://elsewhere.example"}) as client:
        upload = await client.upload(text_page_png(["Polled, not pushed"]))
        updates: list[TaskUpdate] = []
        with caplog.at_level(logging.INFO, logger="untxt"):
            task = await client.wait(upload.task_id, timeout=90, on_update=updates.append)
    assert task.status == Status.COMPLETED
    assert "following by polling: WebSocket refused: HTTP 403" in caplog.text
    assert updates[-1].status == Status.COMPLETED
    assert all(u.page is None for u in updates)  # the status route has no page numbers


def test_blocking_client_cancels_retries_deletes_and_raises_typed_errors(stack: RunningStack, key: str) -> None:
    with Client(stack.api, key) as client:
        upload = client.upload(pdf_of([dense_page_png(n) for n in range(1, 7)]), filename="long.pdf")
        deadline = time.monotonic() + 60
        while client.status(upload.task_id).status == Status.QUEUED:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.cancel(upload.task_id).status in (Status.PROCESSING, Status.CANCELLED)
        assert client.wait(upload.task_id, timeout=60).status == Status.CANCELLED
        with pytest.raises(ConflictError) as not_ready:
            client.download(upload.task_id, "txt")
        assert (not_ready.value.status, not_ready.value.code) == (409, "result_not_ready")

        assert client.retry(upload.task_id).status == Status.QUEUED
        done = client.wait(upload.task_id, timeout=120)
        assert (done.status, done.result and done.result["pages"]) == (Status.COMPLETED, 6)
        with pytest.raises(ConflictError) as finished:
            client.cancel(upload.task_id)
        assert finished.value.code == "task_not_cancellable"

        assert client.delete(upload.task_id).objects_deleted >= 2
        with pytest.raises(NotFoundError) as gone:
            client.get(upload.task_id)
        assert gone.value.code == "task_not_found"
        with pytest.raises(InvalidRequestError) as too_long:
            client.upload(text_page_png(["x"]), tag="x" * 129)
        assert (too_long.value.status, too_long.value.code) == (400, "invalid_tag")
    with Client(stack.api, "not-a-key") as stranger, pytest.raises(AuthenticationError) as refused:
        stranger.list_tasks()
    assert refused.value.code == "unauthorized"


def test_a_reused_idempotency_key_replays_the_same_request_and_refuses_another(stack: RunningStack, key: str) -> None:
    page = text_page_png(["Idempotent"])
    with Client(stack.api, key) as client:
        first = client.upload(page, filename="a.png", idempotency_key="order-7")
        again = client.upload(page, filename="a.png", idempotency_key="order-7")
        assert (again.task_id, again.replayed, first.replayed) == (first.task_id, True, False)
        with pytest.raises(InvalidRequestError) as mismatch:
            client.upload(text_page_png(["Something else"]), filename="a.png", idempotency_key="order-7")
        assert (mismatch.value.status, mismatch.value.code) == (422, "idempotency_key_mismatch")


def test_batch_outcomes_per_file_with_one_tag_each(stack: RunningStack, key: str) -> None:
    with Client(stack.api, key) as client:
        items = client.upload_batch(
            [text_page_png(["one"]), b"not an image", text_page_png(["three"])], tags=["first", "second", None]
        )
        assert [(i.upload and i.upload.tag, i.error_code) for i in items] == [
            ("first", None),
            (None, "unsupported_media_type"),
            (None, None),
        ]
        nothing = client.upload_batch([b"", b"still not an image"])  # 400 no_file_accepted, as outcomes
        assert [i.error_code for i in nothing] == ["empty_file", "unsupported_media_type"]


@pytest.fixture
def rate_limited_api(stack: RunningStack) -> Iterator[str]:
    """A second API process whose upload limit is one token, refilled once a second."""
    port = free_port()
    env = service_env(
        stack.settings, API_PORT=str(port), RATE_LIMIT_UPLOADS_PER_MINUTE="60", RATE_LIMIT_UPLOADS_BURST="1"
    )
    api = start_service("backend", env, f"http://127.0.0.1:{port}/health")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_service(api)


def test_a_429_is_waited_out_as_retry_after_says(
    rate_limited_api: str, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    page = text_page_png(["Rate limited"])
    with Client(rate_limited_api, key, max_retries=0) as impatient:
        impatient.upload(page)  # the only token
        with pytest.raises(RateLimitedError) as limited:
            impatient.upload(page)
    assert (limited.value.status, limited.value.code, limited.value.retry_after) == (429, "rate_limited", 1.0)
    with Client(rate_limited_api, key) as patient, caplog.at_level(logging.INFO, logger="untxt"):
        started = time.monotonic()
        patient.upload(page)
        patient.upload(page)
        waited = time.monotonic() - started
    assert "in 1.0 s after rate_limited" in caplog.text
    assert waited >= 0.9  # it slept as told instead of failing or hammering
    with Client(rate_limited_api, key, max_retry_wait=0.5) as hurried, pytest.raises(RateLimitedError):
        hurried.upload(page)  # asked to wait longer than it may: the 429 is raised at once
