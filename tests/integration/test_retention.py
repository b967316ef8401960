"""The API's sweep: idempotency keys after 24 h; finished tasks RETENTION_DAYS after their upload,
everywhere (rows, upload, results), and nothing else — against the real PostgreSQL and S3 store."""

from __future__ import annotations

from typing import Any

from backend.app import create_app
from backend.retention import sweep_once
from common import keys
from tests.integration.conftest import form, objects_under, user_headers


async def _upload(client: Any, auth: dict[str, str], **headers: str) -> str:
    resp = await client.post("/api/tasks", data=form(), headers={**auth, **headers})
    assert resp.status == 202, await resp.text()
    return (await resp.json())["data"]["taskId"]


def _put(s3: Any, settings: Any, key: str) -> None:
    s3.put_object(
        Bucket=settings.s3_bucket,
        Key=key,
        Body=b"result",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=settings.kms_key_id,
    )


def _file_of(pg: Any, task_id: str) -> tuple[str, str, Any]:
    with pg.cursor() as cur:
        cur.execute(
            "SELECT f.user_id, f.id, f.created_at FROM tasks t JOIN files f ON f.id = t.file_id WHERE t.id = %s",
            (task_id,),
        )
        user_id, file_id, created_at = cur.fetchone()
    return str(user_id), str(file_id), created_at


def _finish(pg: Any, s3: Any, settings: Any, task_id: str, status: str, age_days: float, attempt: int = 1) -> list[str]:
    """Make the task finished (with stored results of run ``attempt`` when completed) and
    uploaded ``age_days`` ago; its object keys."""
    with pg.cursor() as cur:
        cur.execute(
            "SELECT f.id, f.user_id, f.s3_key, f.created_at FROM tasks t JOIN files f ON f.id = t.file_id"
            " WHERE t.id = %s",
            (task_id,),
        )
        file_id, user_id, upload, created_at = cur.fetchone()
        results: list[str] = []
        if status == "completed":
            primary = keys.result_key(str(user_id), str(file_id), created_at, attempt)
            results = [keys.result_variant(primary, fmt) for fmt in keys.RESULT_FORMATS]
            for key in results:
                _put(s3, settings, key)
            cur.execute("UPDATE files SET s3_result_key = %s WHERE id = %s", (primary, file_id))
        cur.execute(
            "UPDATE tasks SET status = %s, created_at = now() - make_interval(secs => %s) WHERE id = %s",
            (status, age_days * 86400, task_id),
        )
    return [upload, *results]


def _task_exists(pg: Any, task_id: str) -> bool:
    with pg.cursor() as cur:
        cur.execute("SELECT 1 FROM tasks WHERE id = %s", (task_id,))
        return cur.fetchone() is not None


async def test_finished_tasks_past_retention_go_everywhere_and_nothing_else(aiohttp_client, settings, pg, s3) -> None:
    client = await aiohttp_client(create_app(settings.replace(retention_days=2)))
    user_id, auth = await user_headers(settings)
    old_done, old_failed, recent_done, old_queued = [await _upload(client, auth) for _ in range(4)]
    gone = _finish(pg, s3, settings, old_done, "completed", 3)
    gone += _finish(pg, s3, settings, old_failed, "failed", 2.1)
    kept = _finish(pg, s3, settings, recent_done, "completed", 1.9)
    with pg.cursor() as cur:
        cur.execute("UPDATE tasks SET created_at = now() - interval '30 days' WHERE id = %s", (old_queued,))

    swept = await sweep_once(client.server.app)

    assert (swept.tasks, swept.objects) == (2, len(gone))
    assert not _task_exists(pg, old_done)
    assert not _task_exists(pg, old_failed)
    assert _task_exists(pg, recent_done)
    assert _task_exists(pg, old_queued)  # unfinished work is never expired
    stored = set(objects_under(s3, settings, f"uploads/{user_id}/")) | set(
        objects_under(s3, settings, f"results/{user_id}/")
    )
    assert not stored & set(gone)
    assert set(kept) <= stored
    assert (await client.get(f"/api/tasks/{old_done}", headers=auth)).status == 404
    # The stored-bytes quota no longer counts what went.
    with pg.cursor() as cur:
        cur.execute("SELECT sum(size_bytes) FROM files WHERE user_id = %s", (user_id,))
        (left,) = cur.fetchone()
        cur.execute("SELECT stored_bytes FROM user_usage WHERE user_id = %s", (user_id,))
        assert cur.fetchone()[0] == left


async def test_without_retention_only_idempotency_keys_expire(client, settings, pg, s3) -> None:
    _, auth = await user_headers(settings)
    stale = await _upload(client, auth, **{"Idempotency-Key": "old-one"})
    fresh = await _upload(client, auth, **{"Idempotency-Key": "new-one"})
    old_done = await _upload(client, auth)
    objects = _finish(pg, s3, settings, old_done, "completed", 400)
    with pg.cursor() as cur:
        cur.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE task_id = %s", (stale,))

    swept = await sweep_once(client.server.app)

    assert swept.tasks == 0
    assert swept.idempotency_keys >= 1
    with pg.cursor() as cur:
        cur.execute("SELECT task_id::text FROM idempotency_keys WHERE task_id IN (%s, %s)", (stale, fresh))
        assert [r[0] for r in cur.fetchall()] == [fresh]
    assert _task_exists(pg, old_done)
    assert objects[0] in objects_under(s3, settings, objects[0])


async def test_removal_deletes_every_runs_results_and_counts_what_it_deleted(client, settings, pg, s3) -> None:
    """What a run that lost its task and was killed before deleting its folder left goes with
    the task (DELETE and the sweep share the removal), and so do results of the old layout."""
    user_id, auth = await user_headers(settings)
    done, failed, legacy = [await _upload(client, auth) for _ in range(3)]
    winner = _finish(pg, s3, settings, done, "completed", 0, attempt=2)
    _, file_id, created_at = _file_of(pg, done)
    losers = [keys.result_key(user_id, file_id, created_at, 1, fmt) for fmt in ("txt", "json")]
    _finish(pg, s3, settings, failed, "failed", 0)
    _, failed_file, failed_created = _file_of(pg, failed)
    leftover = keys.result_key(user_id, failed_file, failed_created, 1, "pdf")
    # Completed before results went per run (and before the PDF, hOCR and ALTO formats).
    _, legacy_file, legacy_created = _file_of(pg, legacy)
    old_layout = keys.results_prefix(user_id, legacy_file, legacy_created) + "result.html"
    with pg.cursor() as cur:
        cur.execute("UPDATE tasks SET status = 'completed' WHERE id = %s", (legacy,))
        cur.execute("UPDATE files SET s3_result_key = %s WHERE id = %s", (old_layout, legacy_file))
    old_results = [keys.result_variant(old_layout, fmt) for fmt in keys.LEGACY_RESULT_FORMATS]
    for key in [*losers, leftover, *old_results]:
        _put(s3, settings, key)

    counts = {}
    for task_id in (done, failed, legacy):
        resp = await client.delete(f"/api/tasks/{task_id}", headers=auth)
        assert resp.status == 200, await resp.text()
        counts[task_id] = (await resp.json())["data"]["objectsDeleted"]

    # The upload, then each result object that was there.
    assert counts == {done: len(winner) + len(losers), failed: 2, legacy: 1 + len(old_results)}
    assert objects_under(s3, settings, f"results/{user_id}/") == []
    assert objects_under(s3, settings, f"uploads/{user_id}/") == []
