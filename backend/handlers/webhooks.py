"""Webhook routes: register, list, read, delete, and the delivery log. A user sees only their own
webhooks; another user's is answered like one that does not exist."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
from aiohttp import web

from backend.auth import USER_ID
from backend.errors import ApiError
from backend.handlers import params
from backend.pagination import MAX_PAGE_SIZE, encode_cursor
from backend.resources import DB, SETTINGS
from backend.responses import ok
from backend.webhooks import WEBHOOK_EVENTS, store
from backend.webhooks.signing import new_secret
from backend.webhooks.targets import ForbiddenTargetError, InvalidTargetError, check_target, parse_target
from common.timeutil import iso_utc

MAX_BODY_BYTES = 16 * 1024
_FIELDS = {"url", "events"}


def webhook_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "webhookId": str(row["id"]),
        "url": row["url"],
        "events": list(row["events"]),
        "createdAt": iso_utc(row["created_at"]),
    }


def _webhook_id(request: web.Request) -> str:
    try:
        return str(uuid.UUID(request.match_info["webhook_id"]))
    except ValueError:
        raise ApiError(400, "invalid_webhook_id", "webhookId must be a UUID") from None


def _not_found() -> ApiError:
    return ApiError(404, "webhook_not_found", "no such webhook")


async def _json_object(request: web.Request) -> dict[str, Any]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, "request_too_large", f"the body must be at most {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise ApiError(400, "invalid_field", f"unknown field {unknown[0]!r}; send url and events")
    return body


def _events(body: dict[str, Any]) -> list[str]:
    """The events asked for, in the canonical order; every terminal event when none is given."""
    events = body.get("events", list(WEBHOOK_EVENTS))
    allowed = ", ".join(WEBHOOK_EVENTS)
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise ApiError(400, "invalid_events", f"events must be a non-empty list of: {allowed}")
    unknown = [e for e in events if e not in WEBHOOK_EVENTS]
    if unknown:
        raise ApiError(400, "invalid_events", f"unknown event {unknown[0]!r}; events are {allowed}")
    return [e for e in WEBHOOK_EVENTS if e in events]


async def create_webhook(request: web.Request) -> web.Response:
    body = await _json_object(request)
    url = body.get("url")
    if not isinstance(url, str):
        raise ApiError(400, "invalid_webhook_url", "url is required: the https URL to POST events to")
    events = _events(body)
    settings = request.app[SETTINGS].webhooks
    try:
        target = parse_target(url, settings.allow_private_targets)
        if not settings.allow_private_targets:
            await check_target(target)
    except InvalidTargetError as exc:
        raise ApiError(400, "invalid_webhook_url", str(exc)) from None
    except ForbiddenTargetError as exc:
        raise ApiError(400, "webhook_target_forbidden", str(exc)) from None
    secret = new_secret()
    try:
        row = await store.create_webhook(request.app[DB], request[USER_ID], url, events, secret, settings.max_per_user)
    except store.WebhookLimitError:
        raise ApiError(
            409, "webhook_limit_reached", f"at most {settings.max_per_user} webhooks per user; delete one first"
        ) from None
    # The secret is shown here only; the server keeps it to sign, never shows it again.
    data = {**webhook_json(row), "secret": secret}
    return ok(data, status=201, headers={"Location": f"/api/webhooks/{data['webhookId']}"})


async def list_webhooks(request: web.Request) -> web.Response:
    rows = await store.list_webhooks(request.app[DB], request[USER_ID])
    return ok({"webhooks": [webhook_json(r) for r in rows]})


async def _own_webhook(request: web.Request) -> asyncpg.Record:
    row = await store.get_webhook(request.app[DB], request[USER_ID], _webhook_id(request))
    if row is None:
        raise _not_found()
    return row


async def get_webhook(request: web.Request) -> web.Response:
    return ok(webhook_json(await _own_webhook(request)))


async def delete_webhook(request: web.Request) -> web.Response:
    webhook_id = _webhook_id(request)
    if not await store.delete_webhook(request.app[DB], request[USER_ID], webhook_id):
        raise _not_found()
    return ok({"webhookId": webhook_id, "deleted": True})


def _attempt_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "attempt": row["attempt"],
        "attemptedAt": iso_utc(row["attempted_at"]),
        "durationMs": row["duration_ms"],
        "statusCode": row["status_code"],
        "error": row["error"],
        "nextAttemptAt": iso_utc(row["next_attempt_at"]),
    }


async def list_deliveries(request: web.Request) -> web.Response:
    limit = params.int_query(request, "limit", 20, 1, MAX_PAGE_SIZE)
    after = params.cursor_query(request)
    webhook = await _own_webhook(request)
    rows, attempts, more = await store.delivery_log(request.app[DB], str(webhook["id"]), limit, after)
    deliveries = [
        {
            "deliveryId": str(r["id"]),
            "taskId": str(r["task_id"]),
            "event": r["event"],
            "status": r["status"],
            "attempts": [_attempt_json(a) for a in attempts[r["id"]]],
            # While pending: when the next attempt is due (or the current one's claim ends).
            "nextAttemptAt": iso_utc(r["next_attempt_at"]),
            "createdAt": iso_utc(r["created_at"]),
            "finishedAt": iso_utc(r["finished_at"]),
        }
        for r in rows
    ]
    cursor = encode_cursor(rows[-1]["created_at"], str(rows[-1]["id"])) if more else None
    return ok({"deliveries": deliveries, "next": cursor})
