"""Live task updates over real WebSockets, from real API and worker processes."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import aiohttp
import pytest
import redis

from backend.users import revoke
from common.events import TaskEvent
from common.jobqueue import JobQueue, RedisNames
from common.statuses import TaskStatus
from tests.e2e.conftest import ApiClient, RunningStack, service_env, start_service, stop_service
from tests.support import dense_page_png, free_port, pdf_of, text_page_png

pytestmark = pytest.mark.e2e
RANK = {"queued": 0, "processing": 1, "completed": 2, "failed": 2, "cancelled": 2}


def _ws_url(base: str, client: ApiClient) -> str:
    return base.replace("http://", "ws://") + "/ws?token=" + client.key


async def _collect(ws: aiohttp.ClientWebSocketResponse, task_id: str, timeout: float = 90) -> list[dict[str, Any]]:
    """task_update messages for ``task_id`` until it is finished."""
    updates: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not updates or updates[-1]["data"]["status"] not in ("completed", "failed", "cancelled"):
        msg = await ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
        if msg["type"] == "task_update" and msg["data"]["taskId"] == task_id:
            updates.append(msg)
    return updates


async def _drain(ws: aiohttp.ClientWebSocketResponse, quiet: float) -> list[dict[str, Any]]:
    """Every text message until none comes for ``quiet`` seconds."""
    messages = []
    while True:
        try:
            msg = await ws.receive(timeout=quiet)
        except TimeoutError:
            return messages
        if msg.type != aiohttp.WSMsgType.TEXT:
            return messages
        messages.append(json.loads(msg.data))


async def _close_code(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> int | None:
    """Read until the server closes the socket; its close code."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = await ws.receive(timeout=deadline - time.monotonic())
        if msg.type == aiohttp.WSMsgType.CLOSE:
            # The code in the server's close frame. ws.close_code is not it when the server has
            # already dropped the TCP connection by the time the client's reply goes out
            # (aiohttp then reports 1006 there).
            return int(msg.data)
        if msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            return ws.close_code
    return None


async def _user(stack: RunningStack) -> ApiClient:
    return await asyncio.to_thread(ApiClient, stack.api, stack.settings)


async def _connect(session: aiohttp.ClientSession, url: str) -> tuple[aiohttp.ClientWebSocketResponse, list[dict]]:
    """Open a socket; returns it with the snapshot (the messages before the first live one)."""
    ws = await session.ws_connect(url)
    hello = await ws.receive_json(timeout=10)
    assert hello["type"] == "connected"
    return ws, await _drain(ws, 0.5)


def _assert_never_backwards(updates: list[dict[str, Any]]) -> None:
    seqs = [u["seq"] for u in updates]
    assert seqs == sorted(set(seqs)), seqs
    ranks = [RANK[u["data"]["status"]] for u in updates]
    assert ranks == sorted(ranks), [u["data"]["status"] for u in updates]


async def test_full_lifecycle_arrives_in_order(stack: RunningStack) -> None:
    client = await _user(stack)
    async with aiohttp.ClientSession() as session:
        ws, snapshot = await _connect(session, _ws_url(stack.api, client))
        assert snapshot == []
        pdf = pdf_of([text_page_png([f"Live page {n}"]) for n in (1, 2, 3)])
        task_id = await asyncio.to_thread(lambda: client.upload("live.pdf", pdf)["taskId"])
        updates = await _collect(ws, task_id)
        await ws.close()
    statuses = [u["data"]["status"] for u in updates]
    assert statuses[0] == "queued"
    assert statuses[-1] == "completed"
    assert [u["data"]["page"] for u in updates if u["data"]["page"]] == [1, 2, 3]
    assert updates[-1]["data"]["result"]["pages"] == 3
    assert all(u["timestamp"].endswith("Z") for u in updates)
    _assert_never_backwards(updates)


async def test_reconnect_mid_job_gets_a_snapshot_then_the_rest(stack: RunningStack) -> None:
    client = await _user(stack)
    url = _ws_url(stack.api, client)
    pdf = pdf_of([dense_page_png(n) for n in range(1, 7)])
    async with aiohttp.ClientSession() as session:
        ws, _ = await _connect(session, url)
        task_id = await asyncio.to_thread(lambda: client.upload("long.pdf", pdf)["taskId"])
        while True:
            msg = await ws.receive_json(timeout=60)
            if msg["type"] == "task_update" and msg["data"]["page"] == 1:
                break
        await ws.close()
        ws, first = await _connect(session, url)
        mine = [m for m in first if m["type"] == "task_update" and m["data"]["taskId"] == task_id]
        snapshot, rest = mine[0], mine[1:]  # the snapshot comes first; live events may follow at once
        assert snapshot["data"]["status"] == "processing"
        assert snapshot["data"]["progress"] >= 16
        if not rest or rest[-1]["data"]["status"] != "completed":
            rest += await _collect(ws, task_id)
        await ws.close()
    assert rest[-1]["data"]["status"] == "completed"
    assert rest[0]["seq"] > snapshot["seq"]
    _assert_never_backwards([snapshot, *rest])


async def test_users_only_see_their_own_tasks(stack: RunningStack) -> None:
    alice = await _user(stack)
    bob = await _user(stack)
    async with aiohttp.ClientSession() as session:
        ws_a, _ = await _connect(session, _ws_url(stack.api, alice))
        ws_b, snapshot_b = await _connect(session, _ws_url(stack.api, bob))
        task_id = await asyncio.to_thread(lambda: alice.upload("mine.png", text_page_png(["private"]))["taskId"])
        assert (await _collect(ws_a, task_id))[-1]["data"]["status"] == "completed"
        assert await _drain(ws_b, 1.0) == []
        await ws_a.close()
        await ws_b.close()
    assert snapshot_b == []


async def test_two_api_processes_both_deliver(stack: RunningStack) -> None:
    port = free_port()
    other = start_service("backend", service_env(stack.settings, API_PORT=str(port)), f"http://127.0.0.1:{port}/health")
    try:
        client = await _user(stack)
        async with aiohttp.ClientSession() as session:
            ws1, _ = await _connect(session, _ws_url(stack.api, client))
            ws2, _ = await _connect(session, _ws_url(f"http://127.0.0.1:{port}", client))
            task_id = await asyncio.to_thread(lambda: client.upload("both.png", text_page_png(["twice"]))["taskId"])
            one, two = await asyncio.gather(_collect(ws1, task_id), _collect(ws2, task_id))
            await ws1.close()
            await ws2.close()
        assert [u["seq"] for u in one] == [u["seq"] for u in two]
        assert one[-1]["data"]["status"] == "completed"
    finally:
        stop_service(other)


async def test_a_client_that_never_reads_is_cut_off_while_others_flow(stack: RunningStack) -> None:
    client = await _user(stack)
    url = _ws_url(stack.api, client)
    task_id = await asyncio.to_thread(lambda: client.upload("flood.png", text_page_png(["flood"]))["taskId"])
    sync = JobQueue(redis.Redis.from_url(stack.settings.redis_url), RedisNames(stack.settings.redis_key_prefix))
    filler = "x" * 2000
    async with aiohttp.ClientSession() as session:
        ws_slow, _ = await _connect(session, url)
        ws_fast, _ = await _connect(session, url)
        received = 0

        async def read_fast() -> None:
            nonlocal received
            while True:
                msg = await ws_fast.receive_json(timeout=20)
                if msg["type"] == "task_update" and msg["data"]["message"] == "last":
                    return
                received += 1

        reader = asyncio.get_running_loop().create_task(read_fast())

        def flood() -> None:
            for n in range(6000):
                sync.announce(TaskEvent(task_id, client.user_id, TaskStatus.PROCESSING, n % 100, filler))
            sync.announce(TaskEvent(task_id, client.user_id, TaskStatus.PROCESSING, 99, "last"))

        await asyncio.to_thread(flood)
        await reader
        # The slow socket was closed by the server with "try again later".
        closed = await _close_code(ws_slow, 30)
        await ws_fast.close()
    sync.client.close()
    assert closed == 1013
    assert received > 0


async def test_bad_tokens_are_refused_before_any_data(stack: RunningStack) -> None:
    async with aiohttp.ClientSession() as session:
        for url in (f"{stack.api}/ws", f"{stack.api}/ws?token=untxt_wrong"):
            ws_url = url.replace("http://", "ws://")
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await session.ws_connect(ws_url)
            assert err.value.status == 401
        client = await _user(stack)
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await session.ws_connect(_ws_url(stack.api, client), headers={"Origin": "https://evil.example"})
        assert err.value.status == 403


async def test_ping_and_subscribe(stack: RunningStack) -> None:
    client = await _user(stack)
    async with aiohttp.ClientSession() as session:
        ws, _ = await _connect(session, _ws_url(stack.api, client))
        await ws.send_json({"type": "ping"})
        assert (await ws.receive_json(timeout=5))["type"] == "pong"
        await ws.send_str("not json")
        assert (await ws.receive_json(timeout=5))["error"]["code"] == "invalid_message"
        first = await asyncio.to_thread(lambda: client.upload("a.png", text_page_png(["first"]))["taskId"])
        await _collect(ws, first)
        await ws.send_json({"type": "subscribe", "taskId": first})
        assert (await ws.receive_json(timeout=5)) == {"type": "subscribed", "taskId": first}
        assert (await ws.receive_json(timeout=5))["data"]["taskId"] == first  # its snapshot
        second = await asyncio.to_thread(lambda: client.upload("b.png", text_page_png(["second"]))["taskId"])
        later = await _drain(ws, 3)
        assert all(m["data"]["taskId"] != second for m in later if m["type"] == "task_update")
        await ws.close()


async def test_shutdown_closes_sockets_with_going_away(stack: RunningStack) -> None:
    port = free_port()
    proc = start_service("backend", service_env(stack.settings, API_PORT=str(port)), f"http://127.0.0.1:{port}/health")
    try:
        client = await _user(stack)
        async with aiohttp.ClientSession() as session:
            ws, _ = await _connect(session, _ws_url(f"http://127.0.0.1:{port}", client))
            proc.send_signal(signal.SIGTERM)
            msg = await ws.receive(timeout=15)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert msg.data == 1001
        # One SIGTERM is enough: the process finishes its shutdown and exits cleanly by itself.
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        stop_service(proc)


async def test_revoking_a_key_closes_its_open_sockets(stack: RunningStack) -> None:
    client = await _user(stack)
    other = await _user(stack)
    async with aiohttp.ClientSession() as session:
        ws, _ = await _connect(session, _ws_url(stack.api, client))
        ws_other, _ = await _connect(session, _ws_url(stack.api, other))
        assert await revoke(stack.settings, None, client.key) == 1
        assert await _close_code(ws, 10) == 4401
        await ws_other.send_json({"type": "ping"})
        assert (await ws_other.receive_json(timeout=5))["type"] == "pong"
        await ws_other.close()
