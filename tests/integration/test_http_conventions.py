"""Tags, Location, ETag/304, keyset cursors and idempotency fingerprints — the API in-process
against the real PostgreSQL, Redis and S3 store."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import aiohttp
import pytest
import redis

from common.events import TaskEvent
from common.jobqueue import JobQueue, RedisNames
from common.statuses import TaskStatus
from tests.integration.conftest import PNG, error_of, form, objects_under, user_headers
from tests.support import text_page_png

TAG = "invoices/2026-11 ✓ Ünïcode"


async def _upload(client: Any, auth: dict[str, str], **fields: str) -> aiohttp.ClientResponse:
    resp = await client.post("/api/tasks", data=form(**fields), headers=auth)
    assert resp.status == 202, await resp.text()
    return resp


async def _data(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    body = await resp.json()
    assert body["success"] is True, body
    return body["data"]


async def test_tag_is_stored_echoed_and_filterable(client, settings, names: RedisNames) -> None:
    _, auth = await user_headers(settings)
    tagged = await _data(await _upload(client, auth, tag=TAG))
    untagged = await _data(await _upload(client, auth))
    assert (tagged["tag"], untagged["tag"]) == (TAG, None)
    task_id = tagged["taskId"]
    assert (await _data(await client.get(f"/api/tasks/{task_id}", headers=auth)))["tag"] == TAG
    assert (await _data(await client.get(f"/api/tasks/{task_id}/status", headers=auth)))["tag"] == TAG
    # The status route's PostgreSQL path, once Redis no longer holds the task's state.
    redis.Redis.from_url(settings.redis_url).delete(names.task_status(task_id))
    assert (await _data(await client.get(f"/api/tasks/{task_id}/status", headers=auth)))["tag"] == TAG
    listed = await _data(await client.get("/api/tasks", params={"tag": TAG}, headers=auth))
    assert [t["taskId"] for t in listed["tasks"]] == [task_id]
    assert listed["total"] == 1
    assert (await _data(await client.get("/api/tasks", headers=auth)))["total"] == 2


@pytest.mark.parametrize("tag", ["x" * 129, "bell\x07", "two\nlines", "para\u2029graph", "c1\x85"])
async def test_bad_tags_are_refused_with_the_envelope(client, settings, s3, tag: str) -> None:
    user_id, auth = await user_headers(settings)
    resp = await client.post("/api/tasks", data=form(tag=tag), headers=auth)
    assert (await error_of(resp, 400))["code"] == "invalid_tag"
    listed = await client.get("/api/tasks", params={"tag": tag}, headers=auth)
    assert (await error_of(listed, 400))["code"] == "invalid_tag"
    assert objects_under(s3, settings, f"uploads/{user_id}/") == []


async def test_a_tag_of_128_characters_is_accepted(client, settings) -> None:
    _, auth = await user_headers(settings)
    assert (await _data(await _upload(client, auth, tag="é" * 128)))["tag"] == "é" * 128


def _batch(files: int, tags: list[str]) -> aiohttp.FormData:
    body = aiohttp.FormData()
    for n in range(files):
        body.add_field("file", PNG, filename=f"{n}.png")
    for tag in tags:
        body.add_field("tag", tag)
    return body


async def test_batch_tags_one_for_all_or_one_per_file(client, settings, s3) -> None:
    user_id, auth = await user_headers(settings)
    shared = await _data(await client.post("/api/tasks/batch", data=_batch(2, ["run-1"]), headers=auth))
    assert [r["data"]["tag"] for r in shared["results"]] == ["run-1", "run-1"]
    each = await _data(await client.post("/api/tasks/batch", data=_batch(3, ["a", "", "c"]), headers=auth))
    assert [r["data"]["tag"] for r in each["results"]] == ["a", None, "c"]
    stored = len(objects_under(s3, settings, f"uploads/{user_id}/"))
    wrong = await client.post("/api/tasks/batch", data=_batch(3, ["a", "b"]), headers=auth)
    assert (await error_of(wrong, 400))["code"] == "invalid_tag"
    assert len(objects_under(s3, settings, f"uploads/{user_id}/")) == stored  # nothing left behind


async def test_events_carry_the_tag_even_when_the_publisher_does_not_know_it(
    client, settings, names: RedisNames
) -> None:
    user_id, auth = await user_headers(settings)
    sync = redis.Redis.from_url(settings.redis_url)
    pubsub = sync.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(names.task_events)
    try:
        task_id = (await _data(await _upload(client, auth, tag=TAG)))["taskId"]
        # What the reaper publishes: an event built without the tag.
        JobQueue(sync, names).announce(
            TaskEvent(task_id, user_id, TaskStatus.FAILED, 0, "crashed", error_code="worker_crashed")
        )
        events = []
        deadline = time.monotonic() + 5
        while len(events) < 2 and time.monotonic() < deadline:
            # None also for the subscription's own confirmation: keep reading until the deadline.
            message = pubsub.get_message(timeout=0.5)
            if message is not None and json.loads(message["data"])["taskId"] == task_id:
                events.append(json.loads(message["data"]))
    finally:
        pubsub.close()
    assert [(e["status"], e["tag"]) for e in events] == [("queued", TAG), ("failed", TAG)]


async def test_accepted_answers_say_where_the_task_is(client, settings, pg) -> None:
    _, auth = await user_headers(settings)
    resp = await _upload(client, auth)
    task_id = (await _data(resp))["taskId"]
    assert resp.headers["Location"] == f"/api/tasks/{task_id}"
    with pg.cursor() as cur:
        cur.execute("UPDATE tasks SET status = 'processing' WHERE id = %s", (task_id,))
    cancel = await client.post(f"/api/tasks/{task_id}/cancel", headers=auth)
    assert (cancel.status, cancel.headers["Location"]) == (202, f"/api/tasks/{task_id}")
    with pg.cursor() as cur:
        cur.execute("UPDATE tasks SET status = 'failed' WHERE id = %s", (task_id,))
    retry = await client.post(f"/api/tasks/{task_id}/retry", headers=auth)
    assert (retry.status, retry.headers["Location"]) == (202, f"/api/tasks/{task_id}")


@pytest.mark.parametrize("suffix", ["", "/status"])
async def test_reads_carry_an_etag_and_answer_304_while_it_holds(client, settings, suffix: str) -> None:
    _, auth = await user_headers(settings)
    task_id = (await _data(await _upload(client, auth)))["taskId"]
    path = f"/api/tasks/{task_id}{suffix}"
    first = await client.get(path, headers=auth)
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    for sent in (etag, etag.removeprefix("W/"), f'"other", {etag}', "*"):
        again = await client.get(path, headers={**auth, "If-None-Match": sent})
        assert again.status == 304, sent
        assert (again.headers["ETag"], await again.read()) == (etag, b"")
    stale = await client.get(path, headers={**auth, "If-None-Match": '"something-else"'})
    assert stale.status == 200
    await client.post(f"/api/tasks/{task_id}/cancel", headers=auth)
    changed = await client.get(path, headers={**auth, "If-None-Match": etag})
    assert changed.status == 200
    assert changed.headers["ETag"] != etag
    assert (await _data(changed))["status"] == "cancelled"


async def test_cursor_pages_neither_skip_nor_repeat_while_tasks_arrive(client, settings) -> None:
    _, auth = await user_headers(settings)
    created = [(await _data(await _upload(client, auth)))["taskId"] for _ in range(5)]
    seen: list[str] = []
    page = await _data(await client.get("/api/tasks", params={"limit": "2"}, headers=auth))
    await _upload(client, auth)  # a newer task arrives mid-listing: an offset would now repeat one
    while True:
        seen += [t["taskId"] for t in page["tasks"]]
        assert page["total"] >= 5
        if page["next"] is None:
            break
        page = await _data(await client.get("/api/tasks", params={"limit": "2", "cursor": page["next"]}, headers=auth))
    assert seen == created[::-1]
    exact = await _data(await client.get("/api/tasks", params={"limit": "6"}, headers=auth))
    assert exact["next"] is None  # six tasks, six asked: no empty page to follow


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor", ["not-a-cursor!", "%%%", _b64("123:not-a-uuid"), _b64(f"{10**30}:{uuid.uuid4()}"), _b64("é")]
)
async def test_bad_cursors_are_400(client, settings, cursor: str) -> None:
    _, auth = await user_headers(settings)
    resp = await client.get("/api/tasks", params={"cursor": cursor}, headers=auth)
    assert (await error_of(resp, 400))["code"] == "invalid_cursor"


async def test_cursor_and_offset_do_not_mix(client, settings) -> None:
    _, auth = await user_headers(settings)
    for _ in range(2):
        await _upload(client, auth)
    cursor = (await _data(await client.get("/api/tasks", params={"limit": "1"}, headers=auth)))["next"]
    resp = await client.get("/api/tasks", params={"cursor": cursor, "offset": "1"}, headers=auth)
    assert (await error_of(resp, 400))["code"] == "invalid_cursor"


async def test_an_idempotency_key_reused_for_another_request_is_422(client, settings, s3) -> None:
    user_id, auth = await user_headers(settings)
    headers = {**auth, "Idempotency-Key": "order-42"}
    first = await client.post("/api/tasks", data=form(priority="3", tag="t"), headers=headers)
    assert first.status == 202
    other_file = text_page_png(["Another page"])
    for changed in (
        form(other_file, priority="3", tag="t"),
        form(filename="renamed.png", priority="3", tag="t"),
        form(priority="4", tag="t"),
        form(priority="3", tag="u"),
        form(priority="3", tag="t", language="vie"),
    ):
        resp = await client.post("/api/tasks", data=changed, headers=headers)
        assert (await error_of(resp, 422))["code"] == "idempotency_key_mismatch"
    same = await client.post("/api/tasks", data=form(priority="3", tag="t"), headers=headers)
    assert same.status == 200
    assert (await _data(same))["taskId"] == (await _data(first))["taskId"]
    assert len(objects_under(s3, settings, f"uploads/{user_id}/")) == 1  # no copy of any repeat stays


async def test_a_batch_with_nothing_accepted_is_an_error_envelope_with_each_reason(client, settings) -> None:
    _, auth = await user_headers(settings)
    body = aiohttp.FormData()
    body.add_field("file", b"", filename="empty.png")
    body.add_field("file", b"%!PS-Adobe", filename="b.ps")
    error = await error_of(await client.post("/api/tasks/batch", data=body, headers=auth), 400)
    assert error["code"] == "no_file_accepted"
    assert [(r["filename"], r["error"]["code"]) for r in error["results"]] == [
        ("empty.png", "empty_file"),
        ("b.ps", "unsupported_media_type"),
    ]


@pytest.mark.parametrize(
    ("query", "code"),
    [("limit=5&limit=6", "invalid_limit"), ("limit=", "invalid_limit"), ("tag=a&tag=b", "invalid_tag")],
)
async def test_a_query_parameter_given_twice_or_empty_is_400(client, settings, query: str, code: str) -> None:
    _, auth = await user_headers(settings)
    assert (await error_of(await client.get(f"/api/tasks?{query}", headers=auth), 400))["code"] == code
