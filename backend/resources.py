"""Typed app keys and the cleanup contexts that open and close the backing-store clients."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import asyncpg
import redis.asyncio as aioredis
import redis.exceptions
from aiohttp import web
from botocore import handlers
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from backend import db
from common.jobqueue import AsyncJobQueue, RedisNames
from common.s3config import s3_client_kwargs
from common.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis)
# The job protocol over that client (enqueue, positions, events), with the configured key prefix.
QUEUE = web.AppKey("queue", AsyncJobQueue)
S3 = web.AppKey("s3", Any)  # an aiobotocore S3 client (no public class to name)
# Uploads stream to S3 concurrently, one connection each; more than this wait for a socket.
S3_CONNECTIONS = 64


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Replaces asyncpg's reset on release, a round trip (RESET ALL, UNLISTEN, ...) per query.

    The API never changes session state (no SET, LISTEN, advisory locks or open cursors), so
    there is nothing to undo; asyncpg still rolls back a transaction left open before this runs.
    """


class DatabaseUnreachableError(ConnectionError):
    """No connection to PostgreSQL could be opened (told apart from other stores' outages)."""


async def _connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(*args, **kwargs)
    except (OSError, TimeoutError, asyncpg.CannotConnectNowError) as exc:
        raise DatabaseUnreachableError(str(exc)) from exc


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    # min_size=0: no connection at start, so the API comes up (and answers 503s and /health)
    # even while PostgreSQL is down.
    app[DB] = await asyncpg.create_pool(
        app[SETTINGS].database_url,
        min_size=0,
        connect=_connect,
        max_size=10,
        command_timeout=10,
        timeout=5,
        init=_init_connection,
        reset=_keep_session,
        # Names the API's sessions in pg_stat_activity (for operators, and for the tests), and
        # gives the quota trigger (migration 0008) this process's default limits.
        server_settings={"application_name": "untxt-api", **db.quota_settings(app[SETTINGS])},
    )
    yield
    await app[DB].close()


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    app[REDIS] = aioredis.Redis.from_url(
        app[SETTINGS].redis_url,
        # Every command the API sends answers in about a millisecond; a Redis that does not
        # answer in 2 s is down for this request's purposes. One retry (redis-py's default is
        # ten) covers a connection the server dropped, and keeps a hung Redis to a 503 within
        # seconds.
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=30,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=1),
        # redis-py retries single commands on a dropped connection but not pipelines, unless
        # told. Ours may run twice (EXEC done, reply lost): a duplicate job message is harmless,
        # the worker claims the task row once.
        retry_on_error=[redis.exceptions.ConnectionError],
    )
    app[QUEUE] = AsyncJobQueue(app[REDIS], RedisNames(app[SETTINGS].redis_key_prefix))
    yield
    await app[REDIS].aclose()


async def s3_ctx(app: web.Application) -> AsyncIterator[None]:
    session = aioboto3.Session()
    # A request waits on S3 while its client waits on us: S3 answers a PUT within a second once
    # the body is in, so a store silent for 5 s is down, and one retry is all a request can
    # afford (botocore's 60 s and 3 attempts kept an upload hanging for minutes).
    kwargs = s3_client_kwargs(app[SETTINGS], max_attempts=2, connections=S3_CONNECTIONS, read_timeout=5)
    async with session.client("s3", **kwargs) as client:
        # botocore asks for "Expect: 100-continue" on every S3 write, and aiohttp then waits for
        # the 100 with no timer at all: a store that accepted the connection and went silent
        # held the request forever, whatever read_timeout said. Without it, bodies (at most a
        # part, 8 MiB) go out at once, one round trip sooner.
        client.meta.events.unregister("before-call.s3", handlers.add_expect_header)
        app[S3] = client
        yield
