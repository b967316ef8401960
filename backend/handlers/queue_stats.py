"""GET /api/queue/stats: queue lengths per priority, the caller's tasks by status, and for
operators the global figures."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from backend import db
from backend.auth import USER_ID
from backend.resources import DB, QUEUE
from backend.responses import ok


async def queue_stats(request: web.Request) -> web.Response:
    queue, user_id = request.app[QUEUE], request[USER_ID]
    stats = await queue.stats()
    data: dict[str, Any] = {
        "queued": sum(stats.waiting.values()),
        "byPriority": {str(p): n for p, n in stats.waiting.items()},
        "mine": await db.counts_by_status(request.app[DB], user_id),
    }
    if await db.is_operator(request.app[DB], user_id):
        data["global"] = {
            "tasks": await db.counts_by_status(request.app[DB], None),
            "processingLists": sum(stats.processing.values()),
            "deadLetter": stats.dead,
            "liveWorkerSlots": await queue.live_slot_count(),
        }
    return ok(data)
