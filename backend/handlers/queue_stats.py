"""GET /api/queue/stats: the caller's tasks by status and their queued tasks per priority; for
operators, the whole queue's lengths per priority and the global figures instead."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from backend import db
from backend.auth import USER_ID
from backend.resources import DB, QUEUE
from backend.responses import ok


async def queue_stats(request: web.Request) -> web.Response:
    pool, queue, user_id = request.app[DB], request.app[QUEUE], request[USER_ID]
    data: dict[str, Any] = {"mine": await db.counts_by_status(pool, user_id)}
    if not await db.is_operator(pool, user_id):
        waiting = await db.queued_by_priority(pool, user_id)
        data.update(scope="own", queued=sum(waiting.values()), byPriority={str(p): n for p, n in waiting.items()})
        return ok(data)
    stats = await queue.stats()
    data.update(
        scope="all",
        queued=sum(stats.waiting.values()),
        byPriority={str(p): n for p, n in stats.waiting.items()},
    )
    data["global"] = {
        "tasks": await db.counts_by_status(pool, None),
        "processingLists": sum(stats.processing.values()),
        "deadLetter": stats.dead,
        "liveWorkerSlots": await queue.live_slot_count(),
    }
    return ok(data)
