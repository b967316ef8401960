"""Relaying task events from Redis to this API process's WebSocket clients.

Every API process holds one Redis pub/sub subscription to the task events channel
(``ocr:task:events`` with the default key prefix) and hands each
event to the sockets of the task's owner only. Pub/sub rather than Streams: a client that was
away gets the truth from the snapshot sent on every (re)connect, which is simpler and cannot
grow a backlog; what pub/sub loses while a socket is down the snapshot restores.

Each socket has a bounded outgoing queue drained by its own writer; a client that does not
keep up is disconnected (close code 1013, "try again later") instead of slowing the others or
growing memory. Per-task sequence numbers (assigned in Redis when the event is published) let
the writer drop anything not newer than what the client already has, so a task never appears
to go backwards, not even across the snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from aiohttp import WSCloseCode, web

from backend.auth import KEY_CACHE, KeyCache
from backend.resources import SETTINGS
from common.jobqueue import RedisNames

log = logging.getLogger("untxt.api.live")

SLOW_CLIENT_CLOSE = WSCloseCode.TRY_AGAIN_LATER  # 1013
REVOKED_CLOSE = 4401  # the application range's echo of HTTP 401


def task_update(event: dict[str, Any]) -> str:
    """The client-facing message for a published event (or a snapshot entry shaped like one)."""
    data = {
        "taskId": event["taskId"],
        "status": event["status"],
        "progress": event["progress"],
        "page": event.get("page"),
        "pages": event.get("pages"),
        "message": event.get("message"),
        "tag": event.get("tag"),
    }
    if event.get("errorCode"):
        data["errorCode"] = event["errorCode"]
    if event.get("result") is not None:
        data["result"] = event["result"]
    return json.dumps(
        {"type": "task_update", "data": data, "timestamp": event["timestamp"], "seq": event["seq"]},
        separators=(",", ":"),
    )


class Connection:
    """One client socket: its owner, an optional task filter, a bounded outbox, and the last
    sequence number sent per task."""

    def __init__(self, ws: web.WebSocketResponse, user_id: str, key_hash: str, outbox_size: int) -> None:
        self.ws = ws
        self.user_id = user_id
        self.key_hash = key_hash
        self.only_task: str | None = None
        self.last_seq: dict[str, int] = {}
        self.outbox: asyncio.Queue[tuple[str, int, str]] = asyncio.Queue(maxsize=outbox_size)
        self.dropped_for_slowness = False

    def offer(self, task_id: str, seq: int, text: str) -> None:
        if self.only_task is not None and task_id != self.only_task:
            return
        try:
            self.outbox.put_nowait((task_id, seq, text))
        except asyncio.QueueFull:
            if not self.dropped_for_slowness:
                self.dropped_for_slowness = True
                log.warning("closing a WebSocket that does not keep up", extra={"user_id": self.user_id})
                asyncio.get_running_loop().create_task(
                    self.ws.close(code=SLOW_CLIENT_CLOSE, message=b"too slow: reconnect for a snapshot")
                )

    async def send_if_newer(self, task_id: str, seq: int, text: str) -> None:
        if seq <= self.last_seq.get(task_id, 0):
            return
        self.last_seq[task_id] = seq
        await self.ws.send_str(text)

    async def write_loop(self) -> None:
        while not self.ws.closed:
            task_id, seq, text = await self.outbox.get()
            await self.send_if_newer(task_id, seq, text)


class EventRelay:
    """The process-wide registry of sockets and the Redis subscription that feeds them; the
    same subscription carries key revocations for the API key cache."""

    def __init__(self, key_cache: KeyCache) -> None:
        self._by_user: dict[str, set[Connection]] = defaultdict(set)
        self._key_cache = key_cache

    def add(self, conn: Connection) -> None:
        self._by_user[conn.user_id].add(conn)

    def remove(self, conn: Connection) -> None:
        conns = self._by_user.get(conn.user_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._by_user[conn.user_id]

    def connections(self) -> list[Connection]:
        return [c for conns in self._by_user.values() for c in conns]

    def revoke(self, key_hashes: list[str]) -> None:
        """Forget revoked keys, and close the sockets opened with them (4401, like HTTP 401)."""
        self._key_cache.evict(key_hashes)
        revoked = set(key_hashes)
        for conn in self.connections():
            if conn.key_hash in revoked:
                asyncio.get_running_loop().create_task(conn.ws.close(code=REVOKED_CLOSE, message=b"API key revoked"))

    def dispatch(self, raw: bytes | str) -> None:
        try:
            event = json.loads(raw)
            conns = self._by_user.get(event["userId"])
            if not conns:
                return
            text = task_update(event)
            task_id, seq = event["taskId"], int(event["seq"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed task event", extra={"raw": str(raw)[:200]})
            return
        for conn in list(conns):
            conn.offer(task_id, seq, text)

    async def run(self, client: aioredis.Redis, names: RedisNames) -> None:
        """Subscribe and dispatch until cancelled, resubscribing after Redis outages."""
        while True:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(names.task_events, names.auth_revoked)
                async for message in pubsub.listen():
                    if message["type"] != "message":
                        continue
                    if message["channel"] == names.auth_revoked.encode():
                        self.revoke(json.loads(message["data"]))
                    else:
                        self.dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("task event subscription lost; resubscribing", exc_info=True)
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()


RELAY = web.AppKey("relay", EventRelay)


async def relay_ctx(app: web.Application) -> AsyncIterator[None]:
    relay = EventRelay(app[KEY_CACHE])
    app[RELAY] = relay
    # Its own connection, with no read timeout: a quiet channel is not a dead one.
    client = aioredis.Redis.from_url(app[SETTINGS].redis_url, socket_connect_timeout=3, health_check_interval=30)
    listener = asyncio.get_running_loop().create_task(relay.run(client, RedisNames(app[SETTINGS].redis_key_prefix)))
    yield
    # redis-py swallows a cancellation that lands while the subscription is connecting (an app
    # stopped within milliseconds of starting, as in the tests), and the listener then waits for
    # messages forever; cancel again until it has really stopped.
    while not listener.done():
        listener.cancel()
        await asyncio.wait([listener], timeout=0.5)
    with contextlib.suppress(asyncio.CancelledError):
        await listener
    await client.aclose()


async def close_sockets(app: web.Application) -> None:
    """on_shutdown: tell every client the server is going away (1001) before it does."""
    for conn in app[RELAY].connections():
        with contextlib.suppress(Exception):
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
