"""The API in-process (aiohttp test client) against the real PostgreSQL, Redis and S3 store."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import socket
import time
import uuid

import aiohttp
import pytest
from PIL import Image

from backend.app import create_app
from backend.auth import KEY_CACHE, hash_api_key
from tests.integration.conftest import PNG, error_of, form, objects_under, user_headers
from tests.scrape import Scrape


async def test_upload_is_stored_encrypted_recorded_and_queued(client, settings, s3, pg, redis_client, names) -> None:
    user_id, auth = await user_headers(settings)
    resp = await client.post("/api/tasks", data=form(filename="../../Tiếng Việt scan.png", priority="8"), headers=auth)
    body = await resp.json()
    assert resp.status == 202, body
    data = body["data"]
    assert data["status"] == "queued"
    assert data["priority"] == 8
    assert data["mimeType"] == "image/png"
    assert data["fileSize"] == len(PNG)
    assert data["fileHash"] == hashlib.sha256(PNG).hexdigest()
    assert data["filename"] == "../../Tiếng Việt scan.png"
    assert data["s3Key"].startswith(f"uploads/{user_id}/")
    assert data["s3Key"].endswith(f"/{data['fileId']}/Tiếng Việt scan.png")
    assert data["queuePosition"] >= 1
    assert data["createdAt"].endswith("Z")

    head = s3.head_object(Bucket=settings.s3_bucket, Key=data["s3Key"], ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].split("/")[-1] == settings.kms_key_id
    # The hash recorded is the one the store verified on arrival.
    assert base64.b64decode(head["ChecksumSHA256"]).hex() == data["fileHash"]
    stored = s3.get_object(Bucket=settings.s3_bucket, Key=data["s3Key"])["Body"].read()
    assert stored == PNG

    with pg.cursor() as cur:
        cur.execute(
            "SELECT t.status, t.priority, f.sha256, f.size_bytes, f.user_id FROM tasks t "
            "JOIN files f ON f.id = t.file_id WHERE t.id = %s",
            (data["taskId"],),
        )
        assert cur.fetchone() == ("queued", 8, data["fileHash"], len(PNG), user_id)

    queued = [json.loads(m) for m in redis_client.lrange(names.user_band(user_id, 8), 0, -1)]
    assert any(m["task_id"] == data["taskId"] and m["user_id"] == user_id for m in queued)


async def test_api_key_is_required_and_checked(client) -> None:
    error = await error_of(await client.get("/api/tasks"), 401)
    assert error["code"] == "unauthorized"
    resp = await client.get("/api/tasks", headers={"Authorization": "Bearer untxt_not-a-real-key"})
    assert (await error_of(resp, 401))["code"] == "unauthorized"


async def test_other_users_and_unknown_tasks_are_404_everywhere(client, settings) -> None:
    _, alice = await user_headers(settings)
    _, bob = await user_headers(settings)
    created = await (await client.post("/api/tasks", data=form(), headers=alice)).json()
    task_id = created["data"]["taskId"]
    for path in (f"/api/tasks/{task_id}", f"/api/tasks/{task_id}/status", f"/api/tasks/{task_id}/result"):
        assert (await error_of(await client.get(path, headers=bob), 404))["code"] == "task_not_found"
        unknown = path.replace(task_id, str(uuid.uuid4()))
        assert (await error_of(await client.get(unknown, headers=alice), 404))["code"] == "task_not_found"
        malformed = path.replace(task_id, "not-a-uuid")
        assert (await error_of(await client.get(malformed, headers=alice), 400))["code"] == "invalid_task_id"
    listed = await (await client.get("/api/tasks", headers=bob)).json()
    assert listed["data"]["total"] == 0


async def test_task_detail_status_and_result_before_completion(client, settings) -> None:
    _, auth = await user_headers(settings)
    created = (await (await client.post("/api/tasks", data=form(), headers=auth)).json())["data"]
    detail = (await (await client.get(f"/api/tasks/{created['taskId']}", headers=auth)).json())["data"]
    assert detail["file"]["fileHash"] == created["fileHash"]
    assert detail["status"] == "queued"
    assert detail["resultUrl"] is None
    status = (await (await client.get(f"/api/tasks/{created['taskId']}/status", headers=auth)).json())["data"]
    assert status["status"] == "queued"
    assert status["progress"] == 0
    error = await error_of(await client.get(f"/api/tasks/{created['taskId']}/result", headers=auth), 409)
    assert error["code"] == "result_not_ready"


async def test_listing_is_newest_first_with_filters_and_bounds(client, settings) -> None:
    _, auth = await user_headers(settings)
    ids = [
        (await (await client.post("/api/tasks", data=form(), headers=auth)).json())["data"]["taskId"] for _ in range(3)
    ]
    page = (await (await client.get("/api/tasks?limit=2", headers=auth)).json())["data"]
    assert [t["taskId"] for t in page["tasks"]] == ids[::-1][:2]
    assert page["total"] == 3
    assert page["limit"] == 2
    assert page["offset"] == 0
    done = (await (await client.get("/api/tasks?status=completed", headers=auth)).json())["data"]
    assert done["total"] == 0
    for query, code in (
        ("limit=0", "invalid_limit"),
        ("limit=101", "invalid_limit"),
        ("offset=-1", "invalid_offset"),
        ("limit=abc", "invalid_limit"),
        ("status=done", "invalid_status"),
    ):
        assert (await error_of(await client.get(f"/api/tasks?{query}", headers=auth), 400))["code"] == code


@pytest.mark.parametrize(
    ("form_kwargs", "status", "code"),
    [
        ({"data": b""}, 400, "empty_file"),
        ({"data": b"PK\x03\x04 a zip, not a scan"}, 415, "unsupported_media_type"),
        ({"data": b"<html><script>alert(1)</script></html>", "filename": "scan.png"}, 415, "unsupported_media_type"),
        ({"priority": "11"}, 400, "invalid_priority"),
        ({"priority": "high"}, 400, "invalid_priority"),
        ({"language": "klingon"}, 400, "invalid_language"),
    ],
)
async def test_bad_uploads_are_4xx_and_leave_nothing(client, settings, s3, form_kwargs, status, code) -> None:
    user_id, auth = await user_headers(settings)
    fields = {k: v for k, v in form_kwargs.items() if k in ("priority", "language")}
    body = form(form_kwargs.get("data", PNG), form_kwargs.get("filename", "scan.png"), **fields)
    assert (await error_of(await client.post("/api/tasks", data=body, headers=auth), status))["code"] == code
    assert objects_under(s3, settings, f"uploads/{user_id}/") == []


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP"])
async def test_images_over_the_pixel_limit_are_refused_at_upload(aiohttp_client, settings, s3, fmt) -> None:
    client = await aiohttp_client(create_app(settings.replace(max_image_pixels=1_000_000)))
    user_id, auth = await user_headers(settings)
    big, fits = io.BytesIO(), io.BytesIO()
    Image.new("L", (2000, 1000), 255).save(big, format=fmt)  # 2 megapixels
    Image.new("L", (1000, 1000), 255).save(fits, format=fmt)
    big.seek(0)
    fits.seek(0)
    resp = await client.post("/api/tasks", data=form(big, filename=f"big.{fmt}"), headers=auth)
    error = await error_of(resp, 413)
    assert error["code"] == "image_too_large"
    assert "2000×1000" in error["message"]
    assert objects_under(s3, settings, f"uploads/{user_id}/") == []
    resp = await client.post("/api/tasks", data=form(fits, filename=f"fits.{fmt}"), headers=auth)
    assert resp.status == 202, await resp.text()


async def test_fields_after_the_file_are_validated_and_the_object_removed(client, settings, s3) -> None:
    user_id, auth = await user_headers(settings)
    body = aiohttp.FormData()
    body.add_field("file", PNG, filename="scan.png")
    body.add_field("priority", "0")
    assert (await error_of(await client.post("/api/tasks", data=body, headers=auth), 400))["code"] == "invalid_priority"
    assert objects_under(s3, settings, f"uploads/{user_id}/") == []


async def test_malformed_requests_are_400(client, settings) -> None:
    _, auth = await user_headers(settings)
    resp = await client.post("/api/tasks", json={"file": "x"}, headers=auth)
    assert (await error_of(resp, 400))["code"] == "invalid_request"
    resp = await client.post("/api/tasks", data=_form_without_file(), headers=auth)
    assert (await error_of(resp, 400))["code"] == "missing_file"
    garbage = {**auth, "Content-Type": "multipart/form-data; boundary=xyz"}
    resp = await client.post("/api/tasks", data=b"--xyz\r\nthis is not a part header\r\n\r\n", headers=garbage)
    assert resp.status == 400
    assert (await resp.json())["success"] is False


def _form_without_file() -> aiohttp.FormData:
    body = aiohttp.FormData(default_to_multipart=True)
    body.add_field("priority", "5")
    return body


async def test_unknown_and_repeated_parts_are_refused_before_the_file(client, settings, s3) -> None:
    """A part nobody asked for was read and dropped before: a junk part of any size passed."""
    user_id, auth = await user_headers(settings)
    junk = aiohttp.FormData()
    junk.add_field("attachment", io.BytesIO(bytes(2 * 1024 * 1024)), filename="x.bin")
    junk.add_field("file", PNG, filename="scan.png")
    error = await error_of(await client.post("/api/tasks", data=junk, headers=auth), 400)
    assert error["code"] == "unknown_field"
    assert "'attachment'" in error["message"]
    twice = aiohttp.FormData()
    twice.add_field("priority", "5")
    twice.add_field("priority", "6")
    twice.add_field("file", PNG, filename="scan.png")
    assert (await error_of(await client.post("/api/tasks", data=twice, headers=auth), 400))["code"] == "duplicate_field"
    assert objects_under(s3, settings, f"uploads/{user_id}/") == []


async def test_size_limit_is_enforced_while_streaming(aiohttp_client, settings, s3) -> None:
    small = settings.replace(max_upload_bytes=len(PNG) - 1)
    client = await aiohttp_client(create_app(small))
    user_id, auth = await user_headers(settings)
    resp = await client.post("/api/tasks", data=form(), headers=auth)
    assert (await error_of(resp, 413))["code"] == "file_too_large"
    assert objects_under(s3, settings, f"uploads/{user_id}/") == []


async def test_multipart_path_for_large_files_keeps_encryption_and_hash(client, settings, s3) -> None:
    big = PNG + bytes(9 * 1024 * 1024)  # over one 8 MiB part: exercises the multipart upload
    _, auth = await user_headers(settings)
    data = (await (await client.post("/api/tasks", data=form(io.BytesIO(big)), headers=auth)).json())["data"]
    assert data["fileSize"] == len(big)
    assert data["fileHash"] == hashlib.sha256(big).hexdigest()
    head = s3.head_object(Bucket=settings.s3_bucket, Key=data["s3Key"])
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["ContentLength"] == len(big)


async def test_queue_outage_answers_503_and_leaves_nothing_behind(aiohttp_client, settings, s3, pg) -> None:
    broken = settings.replace(redis_url="redis://127.0.0.1:1/0")
    client = await aiohttp_client(create_app(broken))
    user_id, auth = await user_headers(settings)
    resp = await client.post("/api/tasks", data=form(), headers=auth)
    error = await error_of(resp, 503)
    assert error["code"] == "queue_unavailable"
    assert resp.headers["Retry-After"]
    with pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM files WHERE user_id = %s", (user_id,))
        assert cur.fetchone() == (0,)
    assert objects_under(s3, settings, f"uploads/{user_id}/") == []


async def test_health_reports_each_store(client, aiohttp_client, settings) -> None:
    body = await (await client.get("/health")).json()
    assert body["data"]["checks"] == {"database": "ok", "redis": "ok", "s3": "ok"}
    broken = await aiohttp_client(create_app(settings.replace(redis_url="redis://127.0.0.1:1/0")))
    resp = await broken.get("/health")
    assert resp.status == 503
    checks = (await resp.json())["data"]["checks"]
    assert checks["redis"].startswith("down")
    assert checks["database"] == "ok"


async def test_unknown_routes_and_methods_use_the_envelope(client) -> None:
    assert (await error_of(await client.get("/nope"), 404))["code"] == "not_found"
    assert (await error_of(await client.delete("/health"), 405))["code"] == "method_not_allowed"


async def test_storage_outage_answers_503_and_records_nothing(aiohttp_client, settings, pg) -> None:
    broken = settings.replace(s3_endpoint_url="http://127.0.0.1:1")
    client = await aiohttp_client(create_app(broken))
    user_id, auth = await user_headers(settings)
    resp = await client.post("/api/tasks", data=form(), headers=auth)
    assert (await error_of(resp, 503))["code"] == "storage_unavailable"
    assert resp.headers["Retry-After"]
    with pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM files WHERE user_id = %s", (user_id,))
        assert cur.fetchone() == (0,)


async def test_database_outage_answers_503_and_removes_the_object(aiohttp_client, settings, s3) -> None:
    user_id, auth = await user_headers(settings)
    app = create_app(settings.replace(database_url="postgresql://nobody@127.0.0.1:1/none"))
    # The key was verified while the database was up (it is in the key cache); now it is gone.
    app[KEY_CACHE].put(hash_api_key(auth["Authorization"].removeprefix("Bearer ")), user_id)
    client = await aiohttp_client(app)
    resp = await client.post("/api/tasks", data=form(), headers=auth)
    assert (await error_of(resp, 503))["code"] == "database_unavailable"
    assert objects_under(s3, settings, f"uploads/{user_id}/") == []
    health = await client.get("/health")
    assert health.status == 503
    assert (await health.json())["data"]["checks"]["database"].startswith("down")


async def test_stores_dropping_pooled_connections_cost_no_request(client, settings, redis_client, pg) -> None:
    """What a Redis or PostgreSQL restart (or a proxy's idle timeout) leaves behind: every pooled
    connection dead. The next requests reconnect instead of answering 503."""
    _, auth = await user_headers(settings)
    assert (await client.post("/api/tasks", data=form(), headers=auth)).status == 202  # pools filled
    assert redis_client.client_kill_filter(_type="normal", skipme=True) >= 1
    with pg.cursor() as cur:
        cur.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'untxt-api' AND datname = current_database()"
        )
        assert cur.fetchone()[0] >= 1
    await asyncio.sleep(0.2)
    for _ in range(3):
        resp = await client.post("/api/tasks", data=form(), headers=auth)
        assert resp.status == 202, await resp.text()
        task_id = (await resp.json())["data"]["taskId"]
        assert (await client.get(f"/api/tasks/{task_id}", headers=auth)).status == 200


async def test_metrics_count_requests_by_route_template_and_status(client, settings) -> None:
    _, auth = await user_headers(settings)
    _, operator = await user_headers(settings, operator=True)
    before = Scrape(await (await client.get("/metrics", headers=operator)).text())
    unknown = uuid.uuid4()
    for _ in range(2):
        await client.get(f"/api/tasks/{unknown}", headers=auth)
    await client.get("/api/tasks")  # no key
    await client.get("/no/such/path")
    resp = await client.get("/metrics", headers=operator)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await resp.text()
    after = Scrape(text)

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    task = {"method": "GET", "route": "/api/tasks/{task_id}"}
    assert moved("untxt_api_requests_total", **task, status="404") == 2
    assert moved("untxt_api_requests_total", method="GET", route="/api/tasks", status="401") == 1
    assert moved("untxt_api_requests_total", method="GET", route="unmatched", status="404") == 1
    assert moved("untxt_api_request_duration_seconds_count", **task) == 2
    assert moved("untxt_api_request_duration_seconds_bucket", **task, le="+Inf") == 2
    assert moved("untxt_api_request_duration_seconds_bucket", **task, le="10.0") == 2
    assert moved("untxt_api_request_duration_seconds_sum", **task) > 0
    assert after.types["untxt_api_request_duration_seconds"] == "histogram"
    assert ("untxt_api_websocket_connections", frozenset()) in after.samples
    assert "process_resident_memory_bytes" in after.names()
    assert str(unknown) not in text  # ids never become labels


async def test_each_app_has_its_own_registry(aiohttp_client, client, settings) -> None:
    """Two apps in one process (as in these tests) neither collide nor share counts."""
    other = await aiohttp_client(create_app(settings))
    _, operator = await user_headers(settings, operator=True)
    await client.get("/no/such/path")
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    counts = [
        Scrape(await (await c.get("/metrics", headers=operator)).text()).value("untxt_api_requests_total", **unmatched)
        for c in (client, other)
    ]
    assert counts == [1, 0]


async def test_metrics_need_an_operators_key(client, settings) -> None:
    _, user = await user_headers(settings)
    assert (await error_of(await client.get("/metrics"), 401))["code"] == "unauthorized"
    assert (await error_of(await client.get("/metrics", headers=user), 403))["code"] == "operator_only"
    _, operator = await user_headers(settings, operator=True)
    resp = await client.get("/metrics", headers=operator)
    assert resp.status == 200
    assert "untxt_api_requests_total" in await resp.text()


async def test_a_redis_that_never_answers_costs_seconds_not_minutes(aiohttp_client, settings) -> None:
    """A hung Redis (connections accepted, nothing answered) must not hang uploads: bounded
    timeouts and retries, then 503 with Retry-After."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as silent:  # never accepts, never answers
        port = silent.getsockname()[1]
        client = await aiohttp_client(create_app(settings.replace(redis_url=f"redis://127.0.0.1:{port}/0")))
        _, auth = await user_headers(settings)
        started = time.monotonic()
        resp = await client.post("/api/tasks", data=form(), headers=auth)
        elapsed = time.monotonic() - started
    assert (await error_of(resp, 503))["code"] == "queue_unavailable"
    assert resp.headers["Retry-After"]
    # 2 attempts x (health-check PING + command), 2 s each: about 8 s. redis-py's defaults
    # (10 retries) took 20 s here, and a minute with the earlier 5 s timeout.
    assert elapsed < 15, f"took {elapsed:.1f}s"


async def test_an_s3_store_that_never_answers_costs_seconds_not_minutes(aiohttp_client, settings, pg) -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=64) as silent:  # never accepts, never answers
        port = silent.getsockname()[1]
        app = create_app(settings.replace(s3_endpoint_url=f"http://127.0.0.1:{port}"))
        client = await aiohttp_client(app)
        user_id, auth = await user_headers(settings)
        started = time.monotonic()
        resp = await client.post("/api/tasks", data=form(), headers=auth)
        elapsed = time.monotonic() - started
    assert (await error_of(resp, 503))["code"] == "storage_unavailable"
    # One 5 s deadline over the call's attempts. Before: about 16 s (2 attempts, 5 s read
    # timeout), and before that over 5 minutes, as aiohttp waited for the "100 Continue"
    # botocore had asked for with no timer at all.
    assert elapsed < 6.5, f"took {elapsed:.1f}s"
    with pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM files WHERE user_id = %s", (user_id,))
        assert cur.fetchone() == (0,)


async def test_a_postgres_that_never_answers_costs_seconds_not_minutes(aiohttp_client, settings) -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=64) as silent:  # never accepts, never answers
        port = silent.getsockname()[1]
        hung = settings.replace(database_url=f"postgresql://untxt@127.0.0.1:{port}/untxt")
        client = await aiohttp_client(create_app(hung))
        _, auth = await user_headers(settings)
        started = time.monotonic()
        resp = await client.post("/api/tasks", data=form(), headers=auth)
        elapsed = time.monotonic() - started
    assert (await error_of(resp, 503))["code"] == "database_unavailable"
    assert elapsed < 15, f"took {elapsed:.1f}s"  # the pool's 5 s connect timeout
