"""Per-user quotas on the real PostgreSQL (the trigger of migration 0008) through the in-process
API: over a quota, 429 quota_exceeded and nothing stored; the operator's command changes them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest

from backend import db
from backend.users import create_user_with_key
from backend.users import main as users_main
from common.settings import Settings
from tests.integration.conftest import PNG, error_of, form, objects_under
from tests.support import new_user


async def _user(settings: Settings, **limits: int | None) -> tuple[str, str, dict[str, str]]:
    email = f"{uuid.uuid4().hex}@example.com"
    user_id, key = await create_user_with_key(settings.database_url, email)
    if limits:
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
        try:
            assert await db.set_limits(pool, email, limits, None) is not None
        finally:
            await pool.close()
    return user_id, email, {"Authorization": f"Bearer {key}"}


async def _upload(client: Any, auth: dict[str, str], data: bytes = PNG) -> aiohttp.ClientResponse:
    return await client.post("/api/tasks", data=form(data), headers=auth)


def _task_count(pg: Any, user_id: str) -> int:
    with pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM tasks WHERE user_id = %s", (user_id,))
        return int(cur.fetchone()[0])


async def test_active_tasks_over_the_limit_are_refused_and_nothing_is_stored(client, settings, s3, pg) -> None:
    user_id, _, auth = await _user(settings, max_active_tasks=2)
    first = (await (await _upload(client, auth)).json())["data"]
    assert (await _upload(client, auth)).status == 202
    error = await error_of(await _upload(client, auth), 429)
    assert error["code"] == "quota_exceeded"
    assert "at most 2 queued or processing tasks" in error["message"]
    assert len(objects_under(s3, settings, f"uploads/{user_id}/")) == 2
    assert _task_count(pg, user_id) == 2
    # A finished task frees its place.
    assert (await client.post(f"/api/tasks/{first['taskId']}/cancel", headers=auth)).status == 200
    assert (await _upload(client, auth)).status == 202
    # A retry would make it three again: refused the same way, the task stays cancelled.
    error = await error_of(await client.post(f"/api/tasks/{first['taskId']}/retry", headers=auth), 429)
    assert error["code"] == "quota_exceeded"
    task = (await (await client.get(f"/api/tasks/{first['taskId']}", headers=auth)).json())["data"]
    assert task["status"] == "cancelled"


async def test_stored_bytes_count_every_upload_until_it_is_deleted(client, settings, s3) -> None:
    user_id, _, auth = await _user(settings, max_stored_bytes=len(PNG) + 10)
    first = (await (await _upload(client, auth)).json())["data"]
    error = await error_of(await _upload(client, auth), 429)
    assert "bytes of stored uploads" in error["message"]
    assert len(objects_under(s3, settings, f"uploads/{user_id}/")) == 1
    assert (await client.post(f"/api/tasks/{first['taskId']}/cancel", headers=auth)).status == 200
    assert (await _upload(client, auth)).status == 429  # cancelled, but still stored
    assert (await client.delete(f"/api/tasks/{first['taskId']}", headers=auth)).status == 200
    assert (await _upload(client, auth)).status == 202


async def test_pages_the_worker_counts_are_charged(client, settings, pg) -> None:
    user_id, _, auth = await _user(settings, max_active_pages=3)
    task = (await (await _upload(client, auth)).json())["data"]
    # What the worker records after its survey: never refused (its sessions set no limits).
    with pg.cursor() as cur:
        cur.execute("UPDATE tasks SET pages = 3 WHERE id = %s", (task["taskId"],))
    error = await error_of(await _upload(client, auth), 429)
    assert "at most 3 pages in queued or processing tasks" in error["message"]
    assert _task_count(pg, user_id) == 1


async def test_a_batch_refuses_only_the_files_past_the_quota(client, settings) -> None:
    _, _, auth = await _user(settings, max_active_tasks=1)
    body = aiohttp.FormData()
    for n in range(3):
        body.add_field("files", PNG, filename=f"{n}.png", content_type="image/png")
    resp = await client.post("/api/tasks/batch", data=body, headers=auth)
    results = (await resp.json())["data"]["results"]
    assert [r["success"] for r in results] == [True, False, False]
    assert {r["error"]["code"] for r in results[1:]} == {"quota_exceeded"}


async def test_concurrent_uploads_never_pass_the_limit_together(client, settings, pg) -> None:
    user_id, _, auth = await _user(settings, max_active_tasks=3)
    statuses = await asyncio.gather(*(_upload(client, auth) for _ in range(8)))
    assert sorted(r.status for r in statuses) == [202] * 3 + [429] * 5
    assert _task_count(pg, user_id) == 3


def test_the_operators_command_sets_limits_and_the_express_grant(
    settings, pg, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    email = f"{uuid.uuid4().hex}@example.com"
    user_id, _ = new_user(settings.database_url, email)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    assert users_main(["limits", email, "--max-tasks", "7", "--max-bytes", "0", "--express"]) == 0
    with pg.cursor() as cur:
        cur.execute(
            "SELECT max_active_tasks, max_active_pages, max_stored_bytes, express_allowed FROM users WHERE id = %s",
            (user_id,),
        )
        assert cur.fetchone() == (7, None, 0, True)
    out = capsys.readouterr().out
    assert "express lane allowed" in out
    assert "active_tasks: 0 of 7" in out
    assert users_main(["limits", email, "--max-tasks", "default", "--no-express"]) == 0
    with pg.cursor() as cur:
        cur.execute("SELECT max_active_tasks, max_stored_bytes, express_allowed FROM users WHERE id = %s", (user_id,))
        assert cur.fetchone() == (None, 0, False)
    assert users_main(["limits", "nobody@example.com"]) == 1
