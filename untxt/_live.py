"""Following tasks as they change: the API's WebSocket, or polling the status route when no
socket can be had (a proxy without WebSocket support, a socket that drops)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any

import aiohttp

from untxt._transport import Transport
from untxt.errors import AuthenticationError, TransportError, WaitTimeoutError
from untxt.models import TaskState, TaskUpdate

log = logging.getLogger("untxt")

StatusReader = Callable[[str], Awaitable[TaskState]]
UpdateCallback = Callable[[TaskUpdate], None]

REVOKED_CLOSE = 4401  # the API closes a socket whose key was revoked with this code
HEARTBEAT_SECONDS = 30.0
POLL_FIRST_SECONDS, POLL_MAX_SECONDS = 0.25, 5.0
STATUS_READS_AT_ONCE = 8  # catching up on a large batch without a burst of hundreds


def _update(text: str) -> TaskUpdate | None:
    try:
        message: dict[str, Any] = json.loads(text)
    except ValueError:
        return None
    if message.get("type") != "task_update":
        return None
    return TaskUpdate.from_json(message["data"])


def _connect(transport: Transport) -> Any:
    return transport.session().ws_connect(
        transport.ws_url(), headers=transport.auth_headers, heartbeat=HEARTBEAT_SECONDS
    )


def _handshake_error(exc: aiohttp.WSServerHandshakeError) -> Exception:
    if exc.status == 401:
        return AuthenticationError(401, "unauthorized", "the API refused the key for the WebSocket")
    return TransportError(f"WebSocket refused: HTTP {exc.status}")


async def updates(transport: Transport, task_id: str | None) -> AsyncIterator[TaskUpdate]:
    """Every change of the caller's tasks (or of one), snapshot first; reconnects after a drop
    with backoff, and each reconnection starts with a fresh snapshot, so nothing is missed."""
    backoff = 0.5
    while True:
        try:
            async with _connect(transport) as ws:
                backoff = 0.5
                if task_id is not None:
                    await ws.send_json({"type": "subscribe", "taskId": task_id})
                async for message in ws:
                    if message.type == aiohttp.WSMsgType.TEXT and (update := _update(message.data)) is not None:
                        yield update
                if ws.close_code == REVOKED_CLOSE:
                    raise AuthenticationError(401, "unauthorized", "the API key was revoked")
        except aiohttp.WSServerHandshakeError as exc:
            error = _handshake_error(exc)
            if isinstance(error, AuthenticationError):
                raise error from exc
            log.info("WebSocket refused (%s); reconnecting in %.1f s", error, backoff)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("WebSocket lost (%r); reconnecting in %.1f s", exc, backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 10.0)


class _Waiter:
    """Tasks not final yet, and the last state reported of each (polls report changes only)."""

    def __init__(self, status: StatusReader, task_ids: Collection[str], on_update: UpdateCallback | None) -> None:
        self.status = status
        self.pending = set(task_ids)
        self.on_update = on_update
        self._last: dict[str, tuple[str, int]] = {}

    def see(self, update: TaskUpdate) -> None:
        if update.task_id not in self.pending:
            return
        seen = (update.status.value, update.progress)
        if self.on_update is not None and (self._last.get(update.task_id) != seen or update.page is not None):
            self.on_update(update)
        self._last[update.task_id] = seen
        if update.status.is_final:
            self.pending.discard(update.task_id)

    async def look(self) -> None:
        """Read the status of every pending task (a few at a time)."""
        gate = asyncio.Semaphore(STATUS_READS_AT_ONCE)

        async def read(task_id: str) -> TaskState:
            async with gate:
                return await self.status(task_id)

        for state in await asyncio.gather(*(read(t) for t in sorted(self.pending))):
            self.see(TaskUpdate.from_state(state))

    async def follow_socket(self, transport: Transport) -> None:
        try:
            async with _connect(transport) as ws:
                first = await ws.receive()
                if first.type != aiohttp.WSMsgType.TEXT or json.loads(first.data).get("type") != "connected":
                    raise TransportError("the WebSocket did not greet")
                if len(self.pending) == 1:
                    await ws.send_json({"type": "subscribe", "taskId": next(iter(self.pending))})
                # The socket is registered for events now: a change after this look arrives as an
                # event, one before it is in the look.
                await self.look()
                while self.pending:
                    message = await ws.receive()
                    if message.type == aiohttp.WSMsgType.TEXT:
                        if (update := _update(message.data)) is not None:
                            self.see(update)
                    elif message.type != aiohttp.WSMsgType.PONG:
                        raise TransportError(f"the WebSocket closed ({ws.close_code})")
        except aiohttp.WSServerHandshakeError as exc:
            raise _handshake_error(exc) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(f"WebSocket: {exc!r}") from exc

    async def poll(self) -> None:
        interval = POLL_FIRST_SECONDS
        while True:
            await self.look()  # revalidated reads: an unchanged task costs a 304
            if not self.pending:
                return
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, POLL_MAX_SECONDS)


async def wait_until_final(
    transport: Transport,
    status: StatusReader,
    task_ids: Collection[str],
    *,
    timeout: float | None,
    on_update: UpdateCallback | None,
    use_websocket: bool,
) -> None:
    waiter = _Waiter(status, task_ids, on_update)
    try:
        async with asyncio.timeout(timeout):
            if use_websocket:
                try:
                    await waiter.follow_socket(transport)
                except TransportError as exc:
                    log.info("following by polling: %s", exc)
            await waiter.poll()
    except TimeoutError as exc:  # only asyncio.timeout's: the transport turns its own into TransportError
        raise WaitTimeoutError(f"{len(waiter.pending)} task(s) not final after {timeout} s") from exc
