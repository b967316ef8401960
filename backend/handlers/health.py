"""GET /health: each backing store checked; 503 if any is down.

No key is needed (a load balancer's probe), so the answer is shared: one check of the three
stores serves every caller for CACHE_SECONDS, and callers arriving while a check runs wait for
that check instead of starting their own. However often it is called, each API process probes
each store at most about once a second, and an outage shows within that second (plus the
check's own time, at most CHECK_TIMEOUT_SECONDS).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from aiohttp import web

from backend import db, storage
from backend.resources import DB, REDIS, S3, SETTINGS

CHECK_TIMEOUT_SECONDS = 3.0
CACHE_SECONDS = 1.0

Answer = tuple[int, dict[str, Any]]  # status, body


async def _check(probe: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "down", with its reason
        return f"down: {type(exc).__name__}"


async def _probe(app: web.Application) -> Answer:
    names = ("database", "redis", "s3")
    results = await asyncio.gather(
        _check(db.ping(app[DB])), _check(app[REDIS].ping()), _check(storage.ping(app[S3], app[SETTINGS]))
    )
    checks = dict(zip(names, results, strict=True))
    healthy = all(v == "ok" for v in results)
    body = {"success": healthy, "data": {"status": "ok" if healthy else "unavailable", "checks": checks}}
    return (200 if healthy else 503), body


class HealthCache:
    """The last answer, until CACHE_SECONDS after its check ended, and the check in flight."""

    def __init__(self) -> None:
        self._answer: Answer | None = None
        self._fresh_until = 0.0
        self._running: asyncio.Task[Answer] | None = None

    async def answer(self, app: web.Application) -> Answer:
        if self._answer is not None and time.monotonic() < self._fresh_until:
            return self._answer
        if self._running is None:
            self._running = asyncio.get_running_loop().create_task(self._check(app))
        # Shielded: a caller that hangs up must not cancel the check the others wait for.
        return await asyncio.shield(self._running)

    async def _check(self, app: web.Application) -> Answer:
        try:
            answer = await _probe(app)
            self._answer, self._fresh_until = answer, time.monotonic() + CACHE_SECONDS
            return answer
        finally:
            self._running = None


HEALTH = web.AppKey("health", HealthCache)


async def health(request: web.Request) -> web.Response:
    status, body = await request.app[HEALTH].answer(request.app)
    return web.json_response(body, status=status)
