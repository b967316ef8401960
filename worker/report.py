"""Print the queue lengths (used by ./status.sh)."""

from __future__ import annotations

import redis

from common.settings import effective_environ
from worker.queue import queue_lengths


def main() -> int:
    client = redis.Redis.from_url(effective_environ()["REDIS_URL"], socket_timeout=3)
    for name, length in queue_lengths(client).items():
        print(f"queue      {name} = {length}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
