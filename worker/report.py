"""Print the queue lengths (used by ./status.sh)."""

from __future__ import annotations

import redis

from common.jobqueue import JobQueue, RedisNames
from common.settings import Settings


def main() -> int:
    settings = Settings.from_env()
    queue = JobQueue(redis.Redis.from_url(settings.redis_url, socket_timeout=3), RedisNames(settings.redis_key_prefix))
    for name, length in queue.stats().lengths().items():
        print(f"queue      {name} = {length}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
