"""Expiry, swept by every API process: idempotency keys after their 24 h, and with
RETENTION_DAYS set, finished tasks that many days after their upload (rows, upload, results).

A sweeper rather than an S3 lifecycle rule: a rule would expire objects while PostgreSQL still
lists their tasks (a result URL that 404s), cannot expire the rows, and SeaweedFS does not
implement lifecycle expiry for the local stack. Each task goes by the same removal as a user's
DELETE, so the rows never point at a deleted object. Several API processes sweeping at once is
harmless: each removal locks its rows, and a task another process removed first is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from backend import db
from backend.removal import TaskProcessingError, remove_task
from backend.resources import DB, SETTINGS

log = logging.getLogger("untxt.api.retention")

SWEEP_INTERVAL_SECONDS = 600.0
# Tasks removed per query; a pass goes on until none is left, so a large backlog (retention
# switched on for an old deployment) drains in one pass without one huge query.
BATCH = 200


@dataclass(frozen=True)
class Swept:
    idempotency_keys: int
    tasks: int
    objects: int


async def sweep_once(app: web.Application) -> Swept:
    pool, days = app[DB], app[SETTINGS].retention_days
    keys_gone = await db.sweep_idempotency_keys(pool)
    tasks = objects = 0
    while days > 0:
        batch = await db.expired_tasks(pool, days, BATCH)
        removed_here = 0
        for user_id, task_id in batch:
            try:
                deleted = await remove_task(app, user_id, task_id)
            except TaskProcessingError:  # retried since the query: it goes once it is finished
                continue
            if deleted is not None:
                tasks, objects, removed_here = tasks + 1, objects + deleted, removed_here + 1
        if len(batch) < BATCH or removed_here == 0:
            break
    return Swept(keys_gone, tasks, objects)


async def _sweep_forever(app: web.Application) -> None:
    while True:
        try:
            swept = await sweep_once(app)
            if swept.tasks or swept.idempotency_keys:
                log.info("retention sweep", extra=swept.__dict__)
        except Exception:  # a store down: the next pass tries again
            log.warning("retention sweep failed", exc_info=True)
        await asyncio.sleep(SWEEP_INTERVAL_SECONDS)


async def retention_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the sweep runs while the app does, after the stores are open."""
    sweeper = asyncio.get_running_loop().create_task(_sweep_forever(app))
    yield
    sweeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sweeper
