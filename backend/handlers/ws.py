"""GET /ws: live task updates for the key's owner.

Authenticated before the upgrade, by a single-use ``?ticket=`` from ``POST /api/ws-ticket`` (what
the dashboard uses: no key in the URL), ``?token=`` or the Authorization header: a bad or revoked
key, or an unknown, expired or used ticket, gets an HTTP 401 and no socket. Then: ``connected``,
a snapshot (one ``task_update`` per live task and the most recent finished ones), and every
change after that.
Client messages: ``{"type": "ping"}`` → ``pong``; ``{"type": "subscribe", "taskId": ...}``
narrows the stream to one task (``"taskId": null`` widens it again).
Limits (backend/ratelimit.py): handshakes per client address (before the key is looked up) and
per key answer HTTP 429; a ``subscribe`` past its per-key limit gets an ``error`` message
``rate_limited`` (each one costs a snapshot query) and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from backend import db, ratelimit
from backend.auth import authenticate, authenticate_key_hash, bearer_token, hash_api_key
from backend.errors import ApiError
from backend.live import RELAY, Connection, task_update
from backend.resources import DB, QUEUE, REDIS, SETTINGS
from backend.responses import ok
from backend.wstickets import TICKET_TTL_SECONDS, issue_ticket, redeem_ticket
from common.timeutil import iso_utc, utc_now_iso

RECENT_FINISHED = 10


_DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int | None]


def _origin(url: str) -> Origin | None:
    """(scheme, host, port) of an origin written as a URL, the scheme's default port filled in
    and case folded, so that equal origins compare equal however they are written; None for
    anything that is no origin (``null``, no scheme or host, a bad port)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # a bad port, or an unbalanced "[" of an IPv6 literal
        return None
    if not parts.scheme or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    return scheme, parts.hostname, port or _DEFAULT_PORTS.get(scheme)


def _own_origin(request: web.Request) -> Origin | None:
    """The origin the client reached: the Host it asked for, and the scheme a TLS-terminating
    proxy reports in X-Forwarded-Proto (else the connection's own). Trusting both headers is
    safe here: the check is against browsers, and a page cannot set either on its WebSocket."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    scheme = forwarded if forwarded in _DEFAULT_PORTS else request.scheme
    return _origin(f"{scheme}://{request.host}")


def _origin_allowed(request: web.Request) -> bool:
    """No Origin (not a browser), the API's own origin, or one on WS_ALLOWED_ORIGINS; the scheme
    counts, so a page served over plain http cannot use the socket of an https deployment."""
    header = request.headers.get("Origin")
    if not header:
        return True
    origin = _origin(header)
    if origin is None:
        return False
    allowed = {_origin(entry) for entry in request.app[SETTINGS].ws_allowed_origins}
    return origin in allowed or origin == _own_origin(request)


async def _snapshot(request: web.Request, conn: Connection, only_task: str | None) -> None:
    rows = await db.snapshot_tasks(request.app[DB], conn.user_id, RECENT_FINISHED)
    if only_task is not None:
        rows = [r for r in rows if str(r["id"]) == only_task]
    client, names = request.app[REDIS], request.app[QUEUE].names
    async with client.pipeline(transaction=False) as pipe:
        for row in rows:
            pipe.hgetall(names.task_status(str(row["id"])))
        cached = await pipe.execute()
    for row, state in zip(rows, cached, strict=True):
        state = {k.decode(): v.decode() for k, v in state.items()}
        event: dict[str, Any] = {
            "taskId": str(row["id"]),
            "status": row["status"],
            "progress": row["progress"],
            "message": state.get("message"),
            "tag": row["tag"],
            "timestamp": iso_utc(row["updated_at"]),
            "errorCode": row["error_code"],
            "result": row["result"],
            # The cached state carries the number of the last event it reflects; events up to
            # it are already in this snapshot. PostgreSQL never lags the events (it is written
            # first), so its row is at least as new.
            "seq": int(state.get("seq", 0)),
        }
        await conn.ws.send_str(task_update(event))
        conn.last_seq[event["taskId"]] = event["seq"]


async def _handle_client_message(request: web.Request, conn: Connection, text: str) -> None:
    try:
        message = json.loads(text)
        kind = message["type"]
    except (ValueError, KeyError, TypeError):
        await conn.ws.send_json(
            {"type": "error", "error": {"code": "invalid_message", "message": "send JSON with a 'type'"}}
        )
        return
    if kind == "ping":
        await conn.ws.send_json({"type": "pong", "timestamp": utc_now_iso()})
    elif kind == "subscribe":
        settings = request.app[SETTINGS]
        try:
            await ratelimit.take_for(
                request, ratelimit.WS_SUBSCRIBE, conn.key_hash, settings.ws_subscribes_per_minute, "subscribe"
            )
        except ApiError as exc:
            await conn.ws.send_json({"type": "error", "error": {"code": exc.code, "message": exc.message}})
            return
        task_id = message.get("taskId")
        if task_id is not None:
            try:
                task_id = str(uuid.UUID(str(task_id)))
            except ValueError:
                await conn.ws.send_json(
                    {"type": "error", "error": {"code": "invalid_task_id", "message": "taskId must be a UUID"}}
                )
                return
        conn.only_task = task_id
        await conn.ws.send_json({"type": "subscribed", "taskId": task_id})
        if task_id is not None:
            conn.last_seq.pop(task_id, None)
            await _snapshot(request, conn, task_id)
    else:
        await conn.ws.send_json(
            {"type": "error", "error": {"code": "unknown_type", "message": f"unknown message type {kind!r}"}}
        )


async def create_ticket(request: web.Request) -> web.Response:
    """POST /api/ws-ticket: a ticket for one ``/ws?ticket=`` handshake within TICKET_TTL_SECONDS."""
    token = bearer_token(request)
    assert token is not None  # the auth middleware has verified it
    ticket = await issue_ticket(request.app[REDIS], request.app[QUEUE].names, hash_api_key(token))
    return ok({"ticket": ticket, "expiresIn": TICKET_TTL_SECONDS})


async def _authenticate(request: web.Request) -> tuple[str, str]:
    """(user id, key hash) of the handshake's ticket, ``?token=`` or Authorization header."""
    if "ticket" in request.query:
        key_hash = await redeem_ticket(request.app[REDIS], request.app[QUEUE].names, request.query["ticket"])
        if key_hash is None:
            raise ApiError(401, "invalid_ticket", "unknown, expired or already used ticket; get a new one")
        return await authenticate_key_hash(request, key_hash), key_hash
    token = request.query.get("token") or bearer_token(request)
    user_id = await authenticate(request, token)
    return user_id, hash_api_key(token or "")


async def websocket(request: web.Request) -> web.StreamResponse:
    if not _origin_allowed(request):
        raise ApiError(403, "origin_not_allowed", "this Origin may not open a WebSocket here")
    settings = request.app[SETTINGS]
    limit, what = settings.ws_connects_per_minute, "WebSocket connect"
    await ratelimit.take_for(request, ratelimit.WS_CONNECT, ratelimit.client_address(request), limit, what)
    user_id, key_hash = await _authenticate(request)
    await ratelimit.take_for(request, ratelimit.WS_CONNECT, f"key:{key_hash}", limit, what)
    ws = web.WebSocketResponse(heartbeat=settings.ws_heartbeat_seconds, max_msg_size=64 * 1024)
    await ws.prepare(request)
    conn = Connection(ws, user_id, key_hash, settings.ws_outbox_size)
    relay = request.app[RELAY]
    relay.add(conn)  # events start queueing now; the writer starts after the snapshot
    writer: asyncio.Task[None] | None = None
    try:
        await ws.send_json({"type": "connected", "data": {"userId": user_id}, "timestamp": utc_now_iso()})
        await _snapshot(request, conn, None)
        writer = asyncio.get_running_loop().create_task(conn.write_loop())
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await _handle_client_message(request, conn, msg.data)
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        relay.remove(conn)
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        await ws.close()
    return ws
