"""Rate limits: token buckets in Redis, each taken from atomically in one Lua script.

A bucket holds ``burst`` tokens refilled at ``per_minute / 60`` per second; an empty one answers
429 with the seconds until a token is back. Buckets: each user's uploads (one token per file),
and, one minute's worth deep, WebSocket handshakes per client address and per key,
``subscribe`` messages per key, and invalid API keys per client address (checked before the
database is asked about a key, spent when it knew none).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from aiohttp import web

from backend.errors import ApiError
from backend.resources import QUEUE, REDIS, SETTINGS

# KEYS[1] bucket; ARGV: capacity, refill per second, now (s), tokens wanted (0: only check that
# one is left). Returns {allowed (0/1), seconds until enough tokens}.
_TAKE = """
local capacity, rate, now, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local need = math.max(want, 1)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or capacity, tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= need then tokens = tokens - want; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
if allowed == 1 then return {1, 0} end
return {0, tostring((need - tokens) / rate)}
"""

# Kinds of buckets besides the upload ones (their keys: ``<prefix>:ratelimit:<kind>:<who>``).
WS_CONNECT = "ws-connect"
WS_SUBSCRIBE = "ws-subscribe"
AUTH_FAILURE = "auth-failure"
# The script answers in about a millisecond; a limiter that waits on a hung Redis longer than
# this costs every request more than the limit saves.
LIMITER_DEADLINE_SECONDS = 0.5


async def take(
    client: aioredis.Redis, bucket: str, per_minute: int, burst: int, tokens: int = 1, what: str = "upload"
) -> None:
    """Spend ``tokens`` of ``bucket`` (a key) or raise 429 naming ``what`` is limited (no-op if
    the limit is 0). ``tokens=0`` spends nothing and raises only when the bucket is empty."""
    if per_minute <= 0:
        return
    script = client.register_script(_TAKE)
    allowed, wait = await script(keys=[bucket], args=[burst, per_minute / 60, time.time(), tokens])
    if not int(allowed):
        retry_after = max(1, math.ceil(float(wait)))
        raise ApiError(
            429,
            "rate_limited",
            f"{what} rate limit reached; retry in {retry_after}s",
            {"Retry-After": str(retry_after)},
        )


async def take_for(request: web.Request, kind: str, who: str, per_minute: int, what: str, tokens: int = 1) -> None:
    """``take`` from the ``kind`` bucket of ``who`` (a client address or a key hash), one
    minute's worth deep."""
    bucket = request.app[QUEUE].names.rate_limit(f"{kind}:{who}")
    await take(request.app[REDIS], bucket, per_minute, per_minute, tokens, what)


async def invalid_keys(request: web.Request, spend: bool) -> None:
    """Check (``spend=False``: before asking PostgreSQL about a key) or spend (after it knew
    none) the client address's invalid-key bucket; 429 when it is empty.

    Fails open: if Redis does not answer within LIMITER_DEADLINE_SECONDS, keys are checked
    against PostgreSQL unlimited, so a Redis outage does not lock every key out of the routes
    that need only PostgreSQL (/health shows the outage).
    """
    limit = request.app[SETTINGS].auth_failures_per_minute
    spent = take_for(request, AUTH_FAILURE, client_address(request), limit, "invalid API key", int(spend))
    try:
        await asyncio.wait_for(spent, LIMITER_DEADLINE_SECONDS)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, TimeoutError):
        return


def client_address(request: web.Request) -> str:
    """Who a per-address bucket belongs to: the TCP peer, or, when the peer is one of
    TRUSTED_PROXIES, the nearest address in X-Forwarded-For that is not (a client writes what
    it likes into that header, so only what trusted hops appended counts). For IPv6 its /64,
    since one host is commonly given a whole /64 and can send from any address in it.

    Hand-written rather than aiohttp-remotes: that rewrites ``request.remote`` for the whole
    app, while only these buckets need the client's address."""
    trusted = request.app[SETTINGS].trusted_proxies
    address = _ip(request.remote or "")
    if address is None:
        return request.remote or "unknown"  # a Unix socket, say
    hops = [hop.strip() for line in request.headers.getall("X-Forwarded-For", ()) for hop in line.split(",")]
    while _trusted(address, trusted) and hops:
        hop = _ip(hops.pop())
        if hop is None:  # garbage from beyond the trusted hops: the last trusted one is who we know
            break
        address = hop
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: tuple[Any, ...]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)
