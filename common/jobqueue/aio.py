"""The API's face of the job protocol (redis.asyncio)."""

from __future__ import annotations

from typing import TypeVar

import redis.asyncio as aioredis

from common.events import TaskEvent
from common.job import JobMessage
from common.jobqueue import calls
from common.jobqueue.calls import Call, Face, QueueStats
from common.jobqueue.names import RedisNames

T = TypeVar("T")


class AsyncJobQueue(Face):
    client: aioredis.Redis

    def __init__(self, client: aioredis.Redis, names: RedisNames) -> None:
        super().__init__(client, names)

    async def _run(self, call: Call[T]) -> T:
        return call.parse(await self._script(call)(keys=call.keys, args=call.args))

    async def enqueue(self, message: JobMessage, event: TaskEvent) -> int:
        """Queue the job and announce ``event`` (its 'queued' state) in one atomic step; returns
        the job's queue position (1 = next to be taken)."""
        return await self._run(calls.enqueue(self.names, message, event))

    async def status(self, task_id: str) -> dict[str, str] | None:
        """The cached state of a task (with ``queuePosition`` while queued), or None if not cached."""
        return await self._run(calls.status(self.names, task_id))

    async def position(self, task_id: str) -> int | None:
        """1 = next to be taken; None if the job is not waiting in the queue (any more)."""
        state = await self.status(task_id)
        return int(state["queuePosition"]) if state and "queuePosition" in state else None

    async def withdraw(self, task_id: str) -> bool:
        """Remove a cancelled or deleted task's job from the queue; True if it was still there."""
        return await self._run(calls.withdraw(self.names, task_id))

    async def forget(self, task_id: str) -> None:
        """Drop a deleted task's cached state, which the status route would otherwise still answer from."""
        await self.client.delete(self.names.task_status(task_id))

    async def announce(self, event: TaskEvent) -> int:
        """Record the task's latest state and tell subscribers; returns the event's number."""
        return await self._run(calls.announce(self.names, event))

    async def stats(self) -> QueueStats:
        return await self._run(calls.stats(self.names))

    async def live_slot_count(self) -> int:
        return len([n async for n in self.client.scan_iter(match=self.names.heartbeat_prefix + ":*", count=500)])
