"""Per-key upload rate limit: a token bucket in Redis, atomic in one Lua script.

Each user has ``burst`` tokens refilled at ``per_minute / 60`` per second; an upload takes one
per file. An empty bucket answers 429 with the seconds until a token is back.
"""

from __future__ import annotations

import math
import time

import redis.asyncio as aioredis

from backend.errors import ApiError

# KEYS[1] bucket; ARGV: capacity, refill per second, now (s), tokens wanted.
# Returns {allowed (0/1), seconds until enough tokens}.
_TAKE = """
local capacity, rate, now, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or capacity, tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= want then tokens = tokens - want; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
if allowed == 1 then return {1, 0} end
return {0, tostring((want - tokens) / rate)}
"""


async def take(client: aioredis.Redis, bucket: str, per_minute: int, burst: int, files: int = 1) -> None:
    """Spend ``files`` tokens of the user's ``bucket`` (a key) or raise 429 (no-op if the limit is 0)."""
    if per_minute <= 0:
        return
    script = client.register_script(_TAKE)
    allowed, wait = await script(keys=[bucket], args=[burst, per_minute / 60, time.time(), files])
    if not int(allowed):
        retry_after = max(1, math.ceil(float(wait)))
        raise ApiError(
            429,
            "rate_limited",
            f"upload rate limit reached; retry in {retry_after}s",
            {"Retry-After": str(retry_after)},
        )
