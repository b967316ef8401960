"""The API's side of Redis: enqueue jobs, read the cached task status, announce changes."""

from __future__ import annotations

import redis.asyncio as aioredis

from common import keys
from common.events import TaskEvent
from common.job import JobMessage


async def enqueue(client: aioredis.Redis, message: JobMessage) -> int:
    """Push the job; returns its position in the queue (1 = next to be taken)."""
    return int(await client.lpush(keys.TASK_QUEUE, message.to_json()))


async def announce(client: aioredis.Redis, event: TaskEvent) -> None:
    status_key = keys.task_status(event.task_id)
    async with client.pipeline(transaction=False) as pipe:
        pipe.hset(status_key, mapping=event.status_fields())
        pipe.expire(status_key, keys.TASK_STATUS_TTL_SECONDS)
        pipe.publish(keys.TASK_EVENTS_CHANNEL, event.to_json())
        await pipe.execute()


async def cached_status(client: aioredis.Redis, task_id: str) -> dict[str, str] | None:
    raw = await client.hgetall(keys.task_status(task_id))
    if not raw:
        return None
    return {k.decode(): v.decode() for k, v in raw.items()}
