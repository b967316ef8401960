"""The Redis job protocol, in one place: key names (``names``), Lua scripts (``scripts``), every
operation as one script call (``calls``), and the two faces that run them — ``JobQueue`` for the
worker (redis-py) and ``AsyncJobQueue`` for the API (redis.asyncio).

PostgreSQL is the source of truth; Redis carries the work. A job message names a task, so a
duplicate or stale one is harmless: the worker's claim is conditional on the task's state.
"""

from common.jobqueue.aio import AsyncJobQueue
from common.jobqueue.calls import QueueStats
from common.jobqueue.names import PRIORITIES, RedisNames
from common.jobqueue.sync import JobQueue

__all__ = ["PRIORITIES", "AsyncJobQueue", "JobQueue", "QueueStats", "RedisNames"]
