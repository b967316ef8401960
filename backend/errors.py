"""API errors and the one middleware that turns every failure into the JSON error envelope."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import redis.exceptions
from aiohttp import web
from botocore.exceptions import BotoCoreError, ClientError

from backend.resources import DatabaseUnreachableError
from backend.storage import StoreTimeoutError

log = logging.getLogger("untxt.api")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "file_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class ApiError(Exception):
    """Raise from anywhere in a request: becomes ``{"success": false, "error": {...}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def unavailable(code: str, message: str, retry_after: int = 5) -> ApiError:
    return ApiError(503, code, message, {"Retry-After": str(retry_after)})


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **details: Any
) -> web.Response:
    """The error envelope; ``details`` add fields beside code and message (e.g. a batch's results)."""
    return web.json_response(
        {"success": False, "error": {"code": code, "message": message, **details}}, status=status, headers=headers
    )


def _dependency_error(exc: BaseException) -> ApiError | None:
    """Outages of a backing store are the server's fault, but temporary: 503 + Retry-After."""
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return unavailable("queue_unavailable", "the job queue is unreachable; try again shortly")
    if isinstance(
        exc,
        DatabaseUnreachableError
        | asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.InterfaceError,
    ):
        return unavailable("database_unavailable", "the database is unreachable; try again shortly")
    if isinstance(exc, BotoCoreError | ClientError | StoreTimeoutError):
        return unavailable("storage_unavailable", "the object store is unreachable; try again shortly")
    if isinstance(exc, ConnectionError | asyncio.TimeoutError | TimeoutError):
        return unavailable("service_unavailable", "a backing service is unreachable; try again shortly")
    return None


@web.middleware
async def error_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err.status, err.code, err.message, err.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, "http_error")
        message = exc.reason if exc.status != 404 else f"no route for {request.method} {request.path}"
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return error_response(exc.status, code, message, headers)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        mapped = _dependency_error(exc)
        if mapped is not None:
            log.warning("dependency unavailable", extra={"path": request.path, "error": repr(exc)[:300]})
            return error_response(mapped.status, mapped.code, mapped.message, mapped.headers)
        log.exception("unhandled error", extra={"path": request.path})
        return error_response(500, "internal_error", "the server hit an unexpected error")
