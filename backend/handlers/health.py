"""GET /health: each backing store checked; 503 if any is down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from aiohttp import web

from backend import db, storage
from backend.resources import DB, REDIS, S3, SETTINGS

CHECK_TIMEOUT_SECONDS = 3.0


async def _check(probe: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "down", with its reason
        return f"down: {type(exc).__name__}"


async def health(request: web.Request) -> web.Response:
    app = request.app
    names = ("database", "redis", "s3")
    results = await asyncio.gather(
        _check(db.ping(app[DB])), _check(app[REDIS].ping()), _check(storage.ping(app[S3], app[SETTINGS]))
    )
    checks = dict(zip(names, results, strict=True))
    healthy = all(v == "ok" for v in results)
    body = {"success": healthy, "data": {"status": "ok" if healthy else "unavailable", "checks": checks}}
    return web.json_response(body, status=200 if healthy else 503)
