"""GET /api/queue/stats: queue lengths per priority, the caller's tasks by status, and for
operators the global figures."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from backend import db
from backend.auth import USER_ID
from backend.resources import DB, REDIS
from backend.responses import ok
from common import keys


async def queue_stats(request: web.Request) -> web.Response:
    client, user_id = request.app[REDIS], request[USER_ID]
    async with client.pipeline(transaction=False) as pipe:
        for band in keys.QUEUE_BANDS:
            pipe.llen(band)
        lengths = [int(n) for n in await pipe.execute()]
    by_priority = {str(p): n for p, n in zip(reversed(keys.PRIORITIES), lengths, strict=True)}
    data: dict[str, Any] = {
        "queued": sum(lengths),
        "byPriority": by_priority,
        "mine": await db.counts_by_status(request.app[DB], user_id),
    }
    if await db.is_operator(request.app[DB], user_id):
        processing = 0
        async for name in client.scan_iter(match=keys.PROCESSING_PREFIX + ":*", count=500):
            processing += int(await client.llen(name))
        live = [name async for name in client.scan_iter(match=keys.WORKER_HEARTBEAT_PREFIX + ":*", count=500)]
        data["global"] = {
            "tasks": await db.counts_by_status(request.app[DB], None),
            "processingLists": processing,
            "deadLetter": int(await client.llen(keys.DEAD_LETTER)),
            "liveWorkerSlots": len(live),
        }
    return ok(data)
