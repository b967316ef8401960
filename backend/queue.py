"""The API's side of Redis: enqueue jobs, report queue positions, read the cached task status,
announce changes."""

from __future__ import annotations

import redis.asyncio as aioredis

from common import keys
from common.events import ANNOUNCE_SCRIPT, TaskEvent, announce_args
from common.job import JobMessage, push_job

# The raw job message is kept in the task's status hash, so its place in the queue can be
# found (LPOS) and a cancelled job removed (LREM) without scanning for it.
_JOB_FIELD = "job"


def _more_urgent_or_equal(priority: int) -> tuple[str, ...]:
    return keys.QUEUE_BANDS[: keys.QUEUE_BANDS.index(keys.queue_band(priority)) + 1]


async def enqueue(client: aioredis.Redis, message: JobMessage, event: TaskEvent) -> int:
    """Push the job and announce ``event`` (its 'queued' state) in one atomic round trip;
    returns the job's position in the queue (1 = next to be taken).

    Atomic, so no worker can take the job and announce progress before 'queued' is recorded.
    """
    raw = message.to_json()
    status_key = keys.task_status(message.task_id)
    event_keys, event_args = announce_args(event)
    async with client.pipeline(transaction=True) as pipe:
        push_job(pipe, raw, keys.queue_band(message.priority))
        pipe.hset(status_key, mapping={_JOB_FIELD: raw, "band": keys.queue_band(message.priority)})
        pipe.expire(status_key, keys.TASK_STATUS_TTL_SECONDS)
        # The new job is the last of its band, behind everything in more urgent bands. EVAL, not
        # registered scripts: in a pipeline those cost a SCRIPT EXISTS round trip per call, and
        # Redis caches compiled sources by their hash anyway.
        bands = _more_urgent_or_equal(message.priority)
        pipe.eval(_TOTAL_LENGTH, len(bands), *bands)
        pipe.eval(ANNOUNCE_SCRIPT, len(event_keys), *event_keys, *event_args)
        results = await pipe.execute()
    return int(results[-2])


_TOTAL_LENGTH = """
local total = 0
for i = 1, #KEYS do total = total + redis.call('LLEN', KEYS[i]) end
return total
"""


# One round trip for the status route: the cached state and, while queued, the job's place.
# KEYS = status hash, then the bands most urgent first. Returns the hash as a flat list, with
# "queuePosition" appended when the job is waiting in its band.
_STATUS = """
local state = redis.call('HGETALL', KEYS[1])
if #state == 0 then return state end
local fields = {}
for i = 1, #state, 2 do fields[state[i]] = state[i + 1] end
local band = fields['band']
if fields['status'] ~= 'queued' or not fields['job'] or not band then return state end
local ahead = 0
for i = 2, #KEYS do
    if KEYS[i] == band then
        local index = redis.call('LPOS', band, fields['job'])
        if not index then return state end
        table.insert(state, 'queuePosition')
        table.insert(state, tostring(ahead + redis.call('LLEN', band) - index))
        return state
    end
    ahead = ahead + redis.call('LLEN', KEYS[i])
end
return state
"""


async def status_with_position(client: aioredis.Redis, task_id: str) -> dict[str, str] | None:
    """The cached state of a task (with ``queuePosition`` while queued), or None if not cached."""
    flat = await client.register_script(_STATUS)(keys=[keys.task_status(task_id), *keys.QUEUE_BANDS])
    if not flat:
        return None
    state = {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}
    return state if "status" in state else None


async def queue_position(client: aioredis.Redis, task_id: str) -> int | None:
    """1 = next to be taken; None if the job is not waiting in the queue (any more)."""
    state = await status_with_position(client, task_id)
    return int(state["queuePosition"]) if state and "queuePosition" in state else None


async def withdraw(client: aioredis.Redis, task_id: str, priority: int) -> bool:
    """Remove a cancelled job's message from the queue; True if it was still there."""
    raw = await client.hget(keys.task_status(task_id), _JOB_FIELD)
    return raw is not None and bool(await client.lrem(keys.queue_band(priority), 1, raw))


async def announce(client: aioredis.Redis, event: TaskEvent) -> int:
    """Record the task's latest state and tell subscribers; returns the event's sequence number."""
    event_keys, args = announce_args(event)
    return int(await client.register_script(ANNOUNCE_SCRIPT)(keys=event_keys, args=args))
