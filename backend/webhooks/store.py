"""Every SQL statement about webhooks. Reads and deletes through the routes always filter by the
owner; the dispatcher's statements work on the outbox as a whole."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

_WEBHOOK_COLUMNS = "id, url, events, created_at"


class WebhookLimitError(Exception):
    """The user already has as many webhooks as allowed."""


async def create_webhook(
    pool: asyncpg.Pool, user_id: str, url: str, events: list[str], secret: str, limit: int
) -> asyncpg.Record:
    async with pool.acquire() as conn, conn.transaction():
        # Serialises one user's registrations, so two at once cannot both pass the limit.
        # NO KEY UPDATE: unlike FOR UPDATE it does not wait for (or block) the key-share locks
        # that inserting the user's tasks takes.
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", user_id)
        count = await conn.fetchval("SELECT count(*) FROM webhooks WHERE user_id = $1", user_id)
        if count >= limit:
            raise WebhookLimitError(limit)
        return await conn.fetchrow(
            f"INSERT INTO webhooks (user_id, url, events, secret) VALUES ($1, $2, $3, $4) RETURNING {_WEBHOOK_COLUMNS}",
            user_id,
            url,
            events,
            secret,
        )


async def list_webhooks(pool: asyncpg.Pool, user_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE user_id = $1 ORDER BY created_at, id", user_id
    )


async def get_webhook(pool: asyncpg.Pool, user_id: str, webhook_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1 AND user_id = $2", webhook_id, user_id
    )


async def delete_webhook(pool: asyncpg.Pool, user_id: str, webhook_id: str) -> bool:
    """The webhook and, by cascade, its deliveries (pending ones are not sent any more)."""
    deleted = await pool.fetchval(
        "DELETE FROM webhooks WHERE id = $1 AND user_id = $2 RETURNING id", webhook_id, user_id
    )
    return deleted is not None


async def delivery_log(
    pool: asyncpg.Pool, webhook_id: str, limit: int, after: tuple[datetime, str] | None
) -> tuple[list[asyncpg.Record], dict[uuid.UUID, list[asyncpg.Record]], bool]:
    """(a page of the webhook's deliveries newest first, their attempts in order, whether more
    follow). The caller has checked that the webhook is the user's."""
    args: list[Any] = [webhook_id, limit + 1]
    keyset = ""
    if after is not None:
        args += list(after)
        keyset = "AND (created_at, id) < ($3, $4::uuid)"
    rows = await pool.fetch(
        f"""
        SELECT id, task_id, event, status, attempts, next_attempt_at, created_at, finished_at
          FROM webhook_deliveries
         WHERE webhook_id = $1 {keyset}
         ORDER BY created_at DESC, id DESC
         LIMIT $2
        """,
        *args,
    )
    page = list(rows[:limit])
    attempts = await pool.fetch(
        """
        SELECT delivery_id, attempt, attempted_at, duration_ms, status_code, error, next_attempt_at
          FROM webhook_attempts WHERE delivery_id = ANY($1::uuid[]) ORDER BY delivery_id, id
        """,
        [r["id"] for r in page],
    )
    by_delivery: dict[uuid.UUID, list[asyncpg.Record]] = {r["id"]: [] for r in page}
    for attempt in attempts:
        by_delivery[attempt["delivery_id"]].append(attempt)
    return page, by_delivery, len(rows) > limit


@dataclass(frozen=True)
class ClaimedDelivery:
    """A due delivery this process holds until ``lease_seconds`` after the claim."""

    delivery_id: str
    claim_token: str
    attempt: int  # the number of the attempt about to be made
    url: str
    secret: str
    payload: Any


async def claim_due(pool: asyncpg.Pool, limit: int, lease_seconds: float) -> list[ClaimedDelivery]:
    """Up to ``limit`` due deliveries, claimed for this process. SKIP LOCKED: several processes
    claim at once without waiting for each other or taking the same row; the claim commits at
    once (no transaction is held across the HTTP request), and a process that dies holding a
    claim gives it up when the lease ends, when the row is due again."""
    token = str(uuid.uuid4())
    rows = await pool.fetch(
        """
        UPDATE webhook_deliveries d
           SET claim_token = $1, next_attempt_at = now() + make_interval(secs => $2)
          FROM webhooks w
         WHERE w.id = d.webhook_id
           AND d.id IN (SELECT id FROM webhook_deliveries
                         WHERE status = 'pending' AND next_attempt_at <= now()
                         ORDER BY next_attempt_at LIMIT $3
                           FOR UPDATE SKIP LOCKED)
     RETURNING d.id, d.attempts, d.payload, w.url, w.secret
        """,
        token,
        lease_seconds,
        limit,
    )
    return [ClaimedDelivery(str(r["id"]), token, r["attempts"] + 1, r["url"], r["secret"], r["payload"]) for r in rows]


@dataclass(frozen=True)
class AttemptOutcome:
    attempted_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def record_attempt(
    pool: asyncpg.Pool, claim: ClaimedDelivery, outcome: AttemptOutcome, retry_in: float, window_seconds: float
) -> str | None:
    """Log the attempt and move the delivery on: delivered, due again in ``retry_in`` seconds, or
    given up once that would fall past ``window_seconds`` after the event. Returns the delivery's
    new status; None if this claim is no longer current (its lease ran out and another process
    has the row), when only the attempt is logged."""
    return await pool.fetchval(
        """
        WITH decided AS (
            SELECT id, CASE WHEN $3 THEN 'delivered'
                            WHEN now() + make_interval(secs => $4) > created_at + make_interval(secs => $5)
                                THEN 'failed'
                            ELSE 'pending' END AS status
              FROM webhook_deliveries WHERE id = $1 AND claim_token = $2
        ), moved AS (
            UPDATE webhook_deliveries d
               SET attempts = attempts + 1, claim_token = NULL, status = decided.status,
                   next_attempt_at = CASE WHEN decided.status = 'pending' THEN now() + make_interval(secs => $4) END,
                   finished_at = CASE WHEN decided.status <> 'pending' THEN now() END
              FROM decided
             WHERE d.id = decided.id AND d.claim_token = $2
         RETURNING d.status, d.next_attempt_at
        ), logged AS (
            INSERT INTO webhook_attempts
                   (delivery_id, attempt, attempted_at, duration_ms, status_code, error, next_attempt_at)
            SELECT $1, $6, $7, $8, $9, $10, (SELECT next_attempt_at FROM moved)
             WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = $1)  -- not if its webhook was deleted
        )
        SELECT status FROM moved
        """,
        claim.delivery_id,
        claim.claim_token,
        outcome.delivered,
        retry_in,
        window_seconds,
        claim.attempt,
        outcome.attempted_at,
        outcome.duration_ms,
        outcome.status_code,
        outcome.error,
    )


async def release_claims(pool: asyncpg.Pool, claims: list[ClaimedDelivery]) -> None:
    """Claims of attempts cut short (shutdown): due again at once, for any process."""
    await pool.execute(
        "UPDATE webhook_deliveries SET claim_token = NULL, next_attempt_at = now()"
        " WHERE id = ANY($1::uuid[]) AND claim_token = ANY($2::uuid[]) AND status = 'pending'",
        [c.delivery_id for c in claims],
        list({c.claim_token for c in claims}),
    )
