"""Priorities, queue positions, idempotency, batches, retry, delete, stats, rate limits, revocation
— the API in-process against the real PostgreSQL, Redis and S3 store."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import redis

from backend.app import create_app
from backend.users import create_user_with_key, revoke
from common.jobqueue import JobQueue, RedisNames
from common.settings import Settings
from tests.integration.conftest import PNG, error_of, form, objects_under, user_headers


async def _upload(client: Any, auth: dict[str, str], **fields: str) -> dict[str, Any]:
    resp = await client.post("/api/tasks", data=form(**fields), headers=auth)
    body = await resp.json()
    assert resp.status == 202, body
    return body["data"]


def _drain(settings: Settings) -> JobQueue:
    """Empty every waiting list of the tests' prefix (other tests leave jobs nobody takes)."""
    queue = JobQueue(redis.Redis.from_url(settings.redis_url), RedisNames(settings.redis_key_prefix))
    waiting = list(queue.client.scan_iter(match=queue.names.task_queue.replace("{", "[{]") + ":*", count=1000))
    if waiting:
        queue.client.delete(*waiting)
    return queue


async def test_higher_priority_is_taken_first_fifo_within_a_band(client, settings) -> None:
    queue = _drain(settings)
    _, auth = await user_headers(settings)
    low = [(await _upload(client, auth, priority="1"))["taskId"] for _ in range(3)]
    high = [(await _upload(client, auth, priority="10"))["taskId"] for _ in range(2)]
    mid = (await _upload(client, auth, priority="5"))["taskId"]
    slot_id = f"test-{uuid.uuid4().hex[:8]}"
    taken = [json.loads(queue.fetch(slot_id, 0.1))["task_id"] for _ in range(6)]
    assert taken == [*high, mid, *low]
    assert len(queue.messages(slot_id)) == 6
    queue.client.delete(queue.names.processing(slot_id))


async def test_queue_position_counts_more_urgent_bands(client, settings) -> None:
    _drain(settings)
    _, auth = await user_headers(settings)
    first = await _upload(client, auth, priority="3")
    second = await _upload(client, auth, priority="3")
    urgent = await _upload(client, auth, priority="9")
    assert (first["queuePosition"], second["queuePosition"], urgent["queuePosition"]) == (1, 2, 1)
    status = (await (await client.get(f"/api/tasks/{second['taskId']}/status", headers=auth)).json())["data"]
    assert status["queuePosition"] == 3  # behind the urgent job and the first one
    detail = (await (await client.get(f"/api/tasks/{first['taskId']}", headers=auth)).json())["data"]
    assert detail["queuePosition"] == 2


async def test_users_take_turns_and_priority_orders_only_ones_own_jobs(client, settings) -> None:
    queue = _drain(settings)
    _, heavy = await user_headers(settings)
    _, light = await user_headers(settings)
    backlog = [(await _upload(client, heavy, priority="10"))["taskId"] for _ in range(3)]
    single = await _upload(client, light, priority="1")
    assert single["queuePosition"] == 2  # after the heavy user's first job, not after all of them
    status = (await (await client.get(f"/api/tasks/{backlog[2]}/status", headers=heavy)).json())["data"]
    assert status["queuePosition"] == 4
    slot_id = f"test-{uuid.uuid4().hex[:8]}"
    taken = [json.loads(queue.fetch(slot_id, 0.1))["task_id"] for _ in range(4)]
    assert taken == [backlog[0], single["taskId"], backlog[1], backlog[2]]
    queue.client.delete(queue.names.processing(slot_id))


async def test_the_express_lane_needs_an_operators_grant(client, settings, pg) -> None:
    queue = _drain(settings)
    _, other = await user_headers(settings)
    waiting = await _upload(client, other, priority="5")
    user_id, auth = await user_headers(settings)
    above = str(settings.priority_ceiling + 1)
    plain = await _upload(client, auth, priority=above)
    assert plain["queuePosition"] == 2  # no grant: an ordinary turn
    with pg.cursor() as cur:
        cur.execute("UPDATE users SET express_allowed = true WHERE id = %s", (user_id,))
    express = await _upload(client, auth, priority=above)
    at_ceiling = await _upload(client, auth, priority=str(settings.priority_ceiling))
    assert express["queuePosition"] == 1
    assert at_ceiling["queuePosition"] == 4  # the ceiling itself is no express priority
    slot_id = f"test-{uuid.uuid4().hex[:8]}"
    taken = [json.loads(queue.fetch(slot_id, 0.1))["task_id"] for _ in range(4)]
    assert taken == [express["taskId"], waiting["taskId"], plain["taskId"], at_ceiling["taskId"]]
    queue.client.delete(queue.names.processing(slot_id))
    with pg.cursor() as cur:
        cur.execute("SELECT express FROM tasks WHERE id = %s", (express["taskId"],))
        assert cur.fetchone() == (True,)


async def test_idempotency_key_returns_the_original_task(client, settings, s3) -> None:
    user_id, auth = await user_headers(settings)
    headers = {**auth, "Idempotency-Key": "batch-7/scan-1"}
    first = await client.post("/api/tasks", data=form(), headers=headers)
    assert first.status == 202
    again = await client.post("/api/tasks", data=form(), headers=headers)
    assert again.status == 200
    original, replay = (await first.json())["data"], (await again.json())["data"]
    assert replay["taskId"] == original["taskId"]
    assert replay["idempotentReplay"] is True
    assert len(objects_under(s3, settings, f"uploads/{user_id}/")) == 1
    _, other = await user_headers(settings)
    theirs = await client.post("/api/tasks", data=form(), headers={**other, "Idempotency-Key": "batch-7/scan-1"})
    assert (await theirs.json())["data"]["taskId"] != original["taskId"]
    bad = await client.post("/api/tasks", data=form(), headers={**auth, "Idempotency-Key": "x" * 300})
    assert (await error_of(bad, 400))["code"] == "invalid_idempotency_key"


async def test_batch_gives_each_file_its_own_outcome(client, settings) -> None:
    _, auth = await user_headers(settings)
    body = aiohttp.FormData()
    body.add_field("priority", "7")
    body.add_field("file", PNG, filename="a.png")
    body.add_field("file", b"", filename="empty.png")
    body.add_field("file", b"%!PS-Adobe not accepted", filename="b.ps")
    body.add_field("file", PNG, filename="c.png")
    resp = await client.post("/api/tasks/batch", data=body, headers=auth)
    data = (await resp.json())["data"]
    assert resp.status == 202
    assert (data["accepted"], data["rejected"]) == (2, 2)
    outcomes = [(r["filename"], r["success"], r.get("error", {}).get("code")) for r in data["results"]]
    assert outcomes == [
        ("a.png", True, None),
        ("empty.png", False, "empty_file"),
        ("b.ps", False, "unsupported_media_type"),
        ("c.png", True, None),
    ]
    assert {r["data"]["priority"] for r in data["results"] if r["success"]} == {7}


async def test_batch_is_capped_at_fifty_files(client, settings, s3) -> None:
    user_id, auth = await user_headers(settings)
    body = aiohttp.FormData()
    for n in range(51):
        body.add_field("file", PNG, filename=f"{n}.png")
    resp = await client.post("/api/tasks/batch", data=body, headers=auth)
    assert (await error_of(resp, 400))["code"] == "too_many_files"
    assert objects_under(s3, settings, f"uploads/{user_id}/") == []


async def test_cancel_retry_and_delete(client, settings, s3, pg) -> None:
    user_id, auth = await user_headers(settings)
    task = await _upload(client, auth)
    task_id = task["taskId"]
    assert (await error_of(await client.post(f"/api/tasks/{task_id}/retry", headers=auth), 409))["code"] == (
        "task_not_retryable"
    )
    cancelled = await client.post(f"/api/tasks/{task_id}/cancel", headers=auth)
    assert cancelled.status == 200
    assert (await cancelled.json())["data"]["status"] == "cancelled"
    again = await client.post(f"/api/tasks/{task_id}/cancel", headers=auth)
    assert (await error_of(again, 409))["code"] == "task_not_cancellable"

    retried = await client.post(f"/api/tasks/{task_id}/retry", headers=auth)
    data = (await retried.json())["data"]
    assert retried.status == 202
    assert (data["status"], data["error"]) == ("queued", None)
    assert data["queuePosition"] >= 1

    with pg.cursor() as cur:
        cur.execute("UPDATE tasks SET status = 'processing' WHERE id = %s", (task_id,))
    busy = await client.delete(f"/api/tasks/{task_id}", headers=auth)
    assert (await error_of(busy, 409))["code"] == "task_processing"
    with pg.cursor() as cur:
        cur.execute("UPDATE tasks SET status = 'failed' WHERE id = %s", (task_id,))
    gone = await client.delete(f"/api/tasks/{task_id}", headers=auth)
    assert gone.status == 200
    assert objects_under(s3, settings, f"uploads/{user_id}/") == []
    with pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM files WHERE user_id = %s", (user_id,))
        assert cur.fetchone() == (0,)
    assert (await error_of(await client.get(f"/api/tasks/{task_id}", headers=auth), 404))["code"] == "task_not_found"
    # Not from the status route's Redis cache either (schemathesis's "deleted resource still available").
    status = await client.get(f"/api/tasks/{task_id}/status", headers=auth)
    assert (await error_of(status, 404))["code"] == "task_not_found"


async def test_every_task_route_hides_other_users_tasks(client, settings) -> None:
    _, alice = await user_headers(settings)
    _, bob = await user_headers(settings)
    task_id = (await _upload(client, alice))["taskId"]
    routes = [
        ("GET", f"/api/tasks/{task_id}"),
        ("GET", f"/api/tasks/{task_id}/status"),
        ("GET", f"/api/tasks/{task_id}/result"),
        ("POST", f"/api/tasks/{task_id}/cancel"),
        ("POST", f"/api/tasks/{task_id}/retry"),
        ("DELETE", f"/api/tasks/{task_id}"),
    ]
    for method, path in routes:
        resp = await client.request(method, path, headers=bob)
        assert (await error_of(resp, 404))["code"] == "task_not_found", (method, path)
    still = await client.get(f"/api/tasks/{task_id}", headers=alice)
    assert (await still.json())["data"]["status"] == "queued"


async def test_queue_stats_for_users_and_operators(client, settings) -> None:
    _, auth = await user_headers(settings)
    await _upload(client, auth, priority="4")
    mine = (await (await client.get("/api/queue/stats", headers=auth)).json())["data"]
    assert mine["mine"]["queued"] == 1
    assert set(mine["byPriority"]) == {str(p) for p in range(1, 11)}
    assert "global" not in mine
    _, key = await create_user_with_key(settings.database_url, f"{uuid.uuid4().hex}@ops.example", operator=True)
    ops = (await (await client.get("/api/queue/stats", headers={"Authorization": f"Bearer {key}"})).json())["data"]
    assert ops["global"]["tasks"]["queued"] >= 1
    assert {"processingLists", "deadLetter", "liveWorkerSlots"} <= set(ops["global"])


async def test_upload_rate_limit_answers_429_with_retry_after(aiohttp_client, settings) -> None:
    limited = await aiohttp_client(create_app(settings.replace(rate_limit_per_minute=6, rate_limit_burst=2)))
    _, auth = await user_headers(settings)
    for _ in range(2):
        assert (await limited.post("/api/tasks", data=form(), headers=auth)).status == 202
    resp = await limited.post("/api/tasks", data=form(), headers=auth)
    assert (await error_of(resp, 429))["code"] == "rate_limited"
    assert 1 <= int(resp.headers["Retry-After"]) <= 10
    _, other = await user_headers(settings)
    assert (await limited.post("/api/tasks", data=form(), headers=other)).status == 202


async def test_each_file_of_a_batch_costs_a_rate_limit_token(aiohttp_client, settings, s3) -> None:
    limited = await aiohttp_client(create_app(settings.replace(rate_limit_per_minute=1, rate_limit_burst=3)))
    user_id, auth = await user_headers(settings)
    body = aiohttp.FormData()
    for n in range(5):
        body.add_field("file", PNG, filename=f"{n}.png")
    resp = await limited.post("/api/tasks/batch", data=body, headers=auth)
    data = (await resp.json())["data"]
    assert resp.status == 202
    codes = [r.get("error", {}).get("code") for r in data["results"]]
    assert codes == [None, None, None, "rate_limited", "rate_limited"]
    assert len(objects_under(s3, settings, f"uploads/{user_id}/")) == 3
    # The bucket is empty now: the next request is refused outright.
    assert (await error_of(await limited.post("/api/tasks", data=form(), headers=auth), 429))["code"] == "rate_limited"


async def test_revoked_key_is_refused_at_once(client, settings) -> None:
    email = f"{uuid.uuid4().hex}@example.com"
    _, key = await create_user_with_key(settings.database_url, email)
    headers = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/api/tasks", headers=headers)).status == 200  # now in the key cache
    assert await revoke(settings, None, key) == 1
    # The broadcast reaches the app's subscription in milliseconds; allow it a moment.
    deadline = asyncio.get_running_loop().time() + 1.0
    while (resp := await client.get("/api/tasks", headers=headers)).status == 200:
        assert asyncio.get_running_loop().time() < deadline, "revoked key still accepted after 1 s"
        await asyncio.sleep(0.01)
    assert (await error_of(resp, 401))["code"] == "unauthorized"
