"""Retrying transient infrastructure errors with exponential backoff and full jitter.

``with_retries`` wraps the worker's PostgreSQL statements (worker/db.py). S3 calls get the same
treatment from botocore's "standard" retry mode (common/s3config.py). Redis calls are not
retried in place: the worker's client (worker/daemon.py, ``Redis.from_url`` with no ``retry``)
makes one attempt; a failed fetch is tried again by the slot's loop after its back-off, a failed
heartbeat at the next beat, and the job stays where the protocol keeps it (Redis or
PostgreSQL). ``is_transient`` tells any of the three stores' outages from a fault of the input,
so the job processor can hand a job back instead of failing it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg2
import redis.exceptions
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

log = logging.getLogger("untxt.worker.retry")
T = TypeVar("T")

DEFAULT_ATTEMPTS = 3
_THROTTLING = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "500",
    "503",
}


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
        return True
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return True
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return True
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code", "") in _THROTTLING
    return isinstance(exc, ConnectionError | TimeoutError)


def with_retries(
    action: Callable[[], T],
    what: str,
    attempts: int = DEFAULT_ATTEMPTS,
    base_delay: float = 0.2,
    max_delay: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            delay = random.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))
            log.warning(
                "transient error; retrying",
                extra={"action": what, "attempt": attempt, "delay": round(delay, 3), "error": repr(exc)[:200]},
            )
            sleep(delay)
    raise AssertionError("unreachable")
