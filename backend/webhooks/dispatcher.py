"""Delivering the outbox: an asyncio task in every API process claims due deliveries, POSTs each
signed, and records the attempt.

At least once: a row leaves ``pending`` only when a receiver answered 2xx (or after the retry
window); a process that dies mid-attempt loses only its lease, and the row is due again when
the lease ends. A receiver therefore drops repeats by the ``webhook-id`` header.
Failures (timeouts, connection errors, refused addresses, any non-2xx, redirects included) are
retried with exponential backoff and jitter for up to ``retry_window_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import aiohttp
import asyncpg
from aiohttp import web

from backend.resources import DB, SETTINGS
from backend.webhooks import store
from backend.webhooks.signing import signed_headers
from backend.webhooks.targets import ForbiddenTargetError, GuardedResolver, check_literal_host, parse_target
from common.settings import WebhookSettings

log = logging.getLogger("untxt.api.webhooks")

# Nobody reads a receiver's answer but its status: read this much of it, so the connection can
# be reused when the body is small, and drop the rest with the connection.
MAX_RESPONSE_BYTES = 64 * 1024
MAX_ERROR_CHARS = 500
USER_AGENT = "untxt-webhooks/1"


def retry_delay(failures: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds before the next attempt after ``failures`` failed ones: base·2^(failures-1), at
    most ``cap``, of which a random half is taken away ("equal jitter"): receivers that were down
    together are not hit together when they come back, and a retry never comes sooner than half
    its step."""
    step = min(cap, base * 2 ** min(failures - 1, 62))
    return step / 2 + rand() * step / 2


def _describe(exc: BaseException) -> str:
    """A failed attempt in words, for the delivery log (the user's own endpoint: no secrets)."""
    cause: BaseException = exc
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, ForbiddenTargetError):
        cause = exc.os_error
    if isinstance(cause, ForbiddenTargetError):
        return f"refused: {cause}"[:MAX_ERROR_CHARS]
    if isinstance(cause, TimeoutError):
        return "timed out"
    return f"{type(cause).__name__}: {cause}"[:MAX_ERROR_CHARS]


class Dispatcher:
    """Claims due deliveries (at most ``concurrency`` in flight) and makes one attempt of each."""

    def __init__(self, pool: asyncpg.Pool, settings: WebhookSettings, session: aiohttp.ClientSession) -> None:
        self._pool = pool
        self._settings = settings
        self._session = session
        self._in_flight: dict[asyncio.Task[None], store.ClaimedDelivery] = {}
        # A claim outlives the slowest attempt (connect + response within timeout_seconds) with
        # room to record it; only a process that stopped for longer loses it.
        self._lease_seconds = 2 * settings.timeout_seconds + 30

    async def run(self) -> None:
        outage = 0  # claims failed in a row
        while True:
            free = self._settings.concurrency - len(self._in_flight)
            claimed: list[store.ClaimedDelivery] = []
            if free > 0:
                try:
                    claimed = await store.claim_due(self._pool, free, self._lease_seconds)
                    outage = 0
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # A database outage, most likely: keep trying, less often the longer it lasts
                    # (up to every 30 s), so an outage is not a log line per poll.
                    outage += 1
                    log.warning("could not claim webhook deliveries", exc_info=True)
                    await asyncio.sleep(min(30.0, self._settings.poll_seconds * 2 ** min(outage, 10)))
            for claim in claimed:
                task = asyncio.get_running_loop().create_task(self._attempt(claim))
                self._in_flight[task] = claim
                task.add_done_callback(self._in_flight.pop)
            if len(claimed) == free > 0:
                continue  # there may be more due right now
            await self._idle()

    async def _idle(self) -> None:
        """Until the next poll, or sooner when an attempt ends and frees a slot."""
        if self._in_flight:
            await asyncio.wait(
                list(self._in_flight), timeout=self._settings.poll_seconds, return_when=asyncio.FIRST_COMPLETED
            )
        else:
            await asyncio.sleep(self._settings.poll_seconds)

    async def _attempt(self, claim: store.ClaimedDelivery) -> None:
        outcome = await self._post(claim)
        delay = retry_delay(claim.attempt, self._settings.retry_base_seconds, self._settings.retry_max_delay_seconds)
        try:
            status = await store.record_attempt(self._pool, claim, outcome, delay, self._settings.retry_window_seconds)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The row stays claimed until its lease ends and is then attempted again: a repeat,
            # which the receiver drops by its webhook-id, rather than a lost notification.
            log.warning("could not record a webhook attempt", extra={"delivery_id": claim.delivery_id}, exc_info=True)
            return
        extra = {
            "delivery_id": claim.delivery_id,
            "attempt": claim.attempt,
            "status_code": outcome.status_code,
            "error": outcome.error,
        }
        if status is None:
            log.warning("webhook claim expired before its attempt was recorded", extra=extra)
        elif status == "failed":
            log.warning("webhook delivery given up after its retry window", extra=extra)
        elif status == "pending":
            log.info("webhook attempt failed; retrying", extra={**extra, "retry_in": round(delay, 1)})

    async def _post(self, claim: store.ClaimedDelivery) -> store.AttemptOutcome:
        attempted_at = datetime.now(UTC)
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        body = json.dumps(claim.payload, separators=(",", ":"), ensure_ascii=False)
        headers = {
            **signed_headers(claim.secret, claim.delivery_id, body, attempted_at),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        try:
            allow_private = self._settings.allow_private_targets
            check_literal_host(parse_target(claim.url, allow_private), allow_private)
            async with self._session.post(
                claim.url, data=body.encode("utf-8"), headers=headers, allow_redirects=False
            ) as response:
                status_code = response.status
                await response.content.read(MAX_RESPONSE_BYTES)
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            if status_code is None:
                error = _describe(exc)
        return store.AttemptOutcome(attempted_at, int((time.monotonic() - started) * 1000), status_code, error)

    async def stop(self) -> None:
        """Cut the attempts in flight and hand their rows back, due at once for any process."""
        cut = list(self._in_flight.values())
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        if cut:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(store.release_claims(self._pool, cut), 5)


def client_session(settings: WebhookSettings) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            resolver=GuardedResolver(settings.allow_private_targets),
            # Every connection asks the guarded resolver anew, so a cached answer cannot outlive
            # the check it passed.
            use_dns_cache=False,
            limit=settings.concurrency,
        ),
        timeout=aiohttp.ClientTimeout(total=settings.timeout_seconds, connect=min(5.0, settings.timeout_seconds)),
        # Receivers of different users may share a host: nothing one answers reaches another.
        cookie_jar=aiohttp.DummyCookieJar(),
        # No HTTP(S)_PROXY from the environment: a proxy would connect in our place, unchecked.
        trust_env=False,
        auto_decompress=False,
    )


async def dispatcher_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the dispatcher runs while the app does (after the database pool opens, and
    stops before it closes). WEBHOOK_CONCURRENCY=0 leaves delivery to other processes."""
    settings = app[SETTINGS].webhooks
    if settings.concurrency <= 0:
        yield
        return
    async with client_session(settings) as session:
        dispatcher = Dispatcher(app[DB], settings, session)
        runner = asyncio.get_running_loop().create_task(dispatcher.run())
        yield
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await dispatcher.stop()
