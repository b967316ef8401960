"""The API's smaller limits and leaks: WebSocket handshakes and subscribes, invalid keys, /health
probes, origins with their scheme, the presigned lifetime cap, the Server header, and what
non-operators see of the queue — in-process against the real stores."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from ipaddress import ip_network
from typing import Any

import aiohttp
import pytest
import redis

from backend import db as backend_db
from backend.app import create_app
from backend.responses import SERVER_HEADER
from common.jobqueue import RedisNames
from common.settings import Settings
from tests.integration.conftest import error_of, form, user_headers


@pytest.fixture(autouse=True)
def fresh_buckets(settings: Settings) -> Iterator[None]:
    """Per-address buckets are shared by every test on 127.0.0.1: start and leave them full."""
    client = redis.Redis.from_url(settings.redis_url)
    pattern = RedisNames(settings.redis_key_prefix).rate_limit("*")

    def clear() -> None:
        for key in list(client.scan_iter(match=pattern)):
            client.delete(key)

    clear()
    yield
    clear()
    client.close()


def _ws(client: Any, key: str) -> str:
    return f"/ws?token={key}"


async def test_websocket_handshakes_are_limited_per_address(aiohttp_client, settings) -> None:
    limited = await aiohttp_client(create_app(settings.replace(ws_connects_per_minute=3)))
    _, auth = await user_headers(settings)
    key = auth["Authorization"].removeprefix("Bearer ")
    for _ in range(3):
        ws = await limited.ws_connect(_ws(limited, key))
        assert (await ws.receive_json(timeout=5))["type"] == "connected"
        await ws.close()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await limited.ws_connect(_ws(limited, key))
    assert refused.value.status == 429
    # The address's bucket is empty: another user's key from here is refused too, before any lookup.
    _, other = await user_headers(settings)
    resp = await limited.get("/ws", headers=other)
    assert (await error_of(resp, 429))["code"] == "rate_limited"
    assert int(resp.headers["Retry-After"]) >= 1


async def test_subscribes_past_the_limit_get_an_error_message(aiohttp_client, settings) -> None:
    limited = await aiohttp_client(create_app(settings.replace(ws_subscribes_per_minute=2)))
    _, auth = await user_headers(settings)
    ws = await limited.ws_connect(_ws(limited, auth["Authorization"].removeprefix("Bearer ")))
    assert (await ws.receive_json(timeout=5))["type"] == "connected"
    answers = []
    for _ in range(3):
        await ws.send_json({"type": "subscribe", "taskId": str(uuid.uuid4())})
        answers.append(await ws.receive_json(timeout=5))
    assert [a["type"] for a in answers] == ["subscribed", "subscribed", "error"]
    assert answers[2]["error"]["code"] == "rate_limited"
    # The socket stays open and still answers.
    await ws.send_json({"type": "ping"})
    assert (await ws.receive_json(timeout=5))["type"] == "pong"
    await ws.close()


async def test_invalid_keys_are_limited_per_address_and_known_keys_still_pass(aiohttp_client, settings) -> None:
    limited = await aiohttp_client(create_app(settings.replace(auth_failures_per_minute=3)))
    _, auth = await user_headers(settings)
    assert (await limited.get("/api/tasks", headers=auth)).status == 200  # verified: now cached
    for _ in range(3):
        resp = await limited.get("/api/tasks", headers={"Authorization": f"Bearer {uuid.uuid4().hex}"})
        assert (await error_of(resp, 401))["code"] == "unauthorized"
    resp = await limited.get("/api/tasks", headers={"Authorization": f"Bearer {uuid.uuid4().hex}"})
    assert (await error_of(resp, 429))["code"] == "rate_limited"
    assert "invalid API key" in (await resp.json())["error"]["message"]
    assert (await limited.get("/api/tasks", headers=auth)).status == 200


async def test_health_probes_the_stores_once_for_many_callers(client, monkeypatch) -> None:
    probes = 0
    real_ping = backend_db.ping

    async def counting_ping(pool: Any) -> None:
        nonlocal probes
        probes += 1
        await asyncio.sleep(0.05)  # callers arrive while the check runs
        await real_ping(pool)

    monkeypatch.setattr(backend_db, "ping", counting_ping)
    answers = await asyncio.gather(*(client.get("/health") for _ in range(20)))
    assert {r.status for r in answers} == {200}
    assert (await (await client.get("/health")).json())["data"]["checks"]["database"] == "ok"
    assert probes == 1
    await asyncio.sleep(1.1)
    assert (await client.get("/health")).status == 200
    assert probes == 2


async def test_the_origin_check_compares_the_scheme(client, settings) -> None:
    _, auth = await user_headers(settings)
    host = f"{client.server.host}:{client.server.port}"
    same = await client.ws_connect("/ws", headers={**auth, "Origin": f"http://{host}"})
    assert (await same.receive_json(timeout=5))["type"] == "connected"
    await same.close()
    for origin in (f"https://{host}", "null", "http://evil.example"):
        resp = await client.get("/ws", headers={**auth, "Origin": origin})
        assert (await error_of(resp, 403))["code"] == "origin_not_allowed", origin


async def test_result_urls_live_at_most_presign_max_seconds(client, settings) -> None:
    _, auth = await user_headers(settings)
    task = f"/api/tasks/{uuid.uuid4()}/result"
    too_long = await client.get(f"{task}?expiresIn={settings.presign_max_seconds + 1}", headers=auth)
    assert (await error_of(too_long, 400))["code"] == "invalid_expiresin"
    # Within the cap, the unknown task is what is wrong.
    assert (await error_of(await client.get(f"{task}?expiresIn=3600", headers=auth), 404))["code"] == "task_not_found"
    spec = await (await client.get("/openapi.json")).json()
    params = spec["paths"]["/api/tasks/{taskId}/result"]["get"]["parameters"]
    expires = next(p for p in params if p["name"] == "expiresIn")
    assert expires["schema"]["maximum"] == settings.presign_max_seconds


async def test_the_server_header_names_no_versions(client) -> None:
    for resp in (await client.get("/health"), await client.get("/api/tasks"), await client.get("/nowhere")):
        assert resp.headers["Server"] == SERVER_HEADER


async def test_users_see_only_their_own_queue(client, settings) -> None:
    _, alice = await user_headers(settings)
    _, bob = await user_headers(settings)
    for priority in ("3", "3", "7"):
        assert (await client.post("/api/tasks", data=form(priority=priority), headers=alice)).status == 202
    assert (await client.post("/api/tasks", data=form(priority="3"), headers=bob)).status == 202
    stats = (await (await client.get("/api/queue/stats", headers=alice)).json())["data"]
    assert stats["scope"] == "own"
    assert stats["queued"] == 3
    assert (stats["byPriority"]["3"], stats["byPriority"]["7"]) == (2, 1)
    assert "global" not in stats


async def test_behind_a_trusted_proxy_each_client_has_its_own_bucket(aiohttp_client, settings) -> None:
    proxied = await aiohttp_client(
        create_app(settings.replace(auth_failures_per_minute=2, trusted_proxies=(ip_network("127.0.0.0/8"),)))
    )

    async def bad_key(forwarded: str) -> int:
        headers = {"Authorization": f"Bearer {uuid.uuid4().hex}", "X-Forwarded-For": forwarded}
        return (await proxied.get("/api/tasks", headers=headers)).status

    # What a client wrote before the trusted hop's entry (the first address here) is not believed.
    assert [await bad_key(f"198.51.100.{n}, 203.0.113.5") for n in range(3)] == [401, 401, 429]
    assert await bad_key("203.0.113.6") == 401  # another client behind the same proxy
    assert await bad_key("2001:db8::1") == 401
    assert await bad_key("2001:db8::2") == 401
    assert await bad_key("2001:db8::3") == 429  # one /64 is one client


async def test_forwarded_for_is_ignored_from_untrusted_peers(aiohttp_client, settings) -> None:
    direct = await aiohttp_client(create_app(settings.replace(auth_failures_per_minute=2)))
    statuses = []
    for n in range(3):
        headers = {"Authorization": f"Bearer {uuid.uuid4().hex}", "X-Forwarded-For": f"203.0.113.{n}"}
        statuses.append((await direct.get("/api/tasks", headers=headers)).status)
    assert statuses == [401, 401, 429]
