"""What the client raises: the API's error envelope as typed exceptions, each carrying its ``code``.

The class says what kind of failure it is (so ``except NotFoundError`` reads well); ``code`` says
exactly which one, as the API documents it (``task_not_found``, ``result_not_ready``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class UntxtError(Exception):
    """Everything the client raises. ``code`` is a stable snake_case name of the failure."""

    code: str = "untxt_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"


class ConfigurationError(UntxtError):
    """The client was not told where the API is or which key to use."""

    code = "configuration_error"


class TransportError(UntxtError):
    """The API could not be reached, or the connection broke before an answer arrived."""

    code = "connection_failed"


class WaitTimeoutError(UntxtError, TimeoutError):
    """``wait`` gave up before the task reached a final status."""

    code = "wait_timeout"


class ApiError(UntxtError):
    """An answer with the error envelope ``{"success": false, "error": {"code", "message"}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code)
        self.status = status
        self.retry_after = retry_after  # seconds, from the Retry-After header
        self.details = dict(details or {})  # any further fields of the error object

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


class InvalidRequestError(ApiError):
    """400, 413, 415, 422 and other 4xx without a class of their own: fix the request."""


class AuthenticationError(ApiError):
    """401: no key, an unknown key or a revoked one."""


class PermissionDeniedError(ApiError):
    """403."""


class NotFoundError(ApiError):
    """404: no such task for this key (another user's task answers the same)."""


class ConflictError(ApiError):
    """409: the task is not in a state that allows this (``result_not_ready``, ``task_processing`` ...)."""


class RateLimitedError(ApiError):
    """429: the key's upload rate limit; ``retry_after`` says when to try again."""


class QuotaExceededError(ApiError):
    """429 ``quota_exceeded``: one of the user's quotas (queued tasks, their pages, stored bytes)
    is full. Waiting a moment does not help, so it is never retried: let tasks finish, delete
    old ones, or ask an operator for a higher limit."""


class ServiceUnavailableError(ApiError):
    """503: a store behind the API is down for a moment; ``retry_after`` says when to try again."""


class ServerError(ApiError):
    """Any other 5xx: the server's own fault."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitedError,
    503: ServiceUnavailableError,
}


# Codes whose meaning differs from what their status says.
_BY_CODE: dict[str, type[ApiError]] = {"quota_exceeded": QuotaExceededError}


def error_class(status: int, code: str | None = None) -> type[ApiError]:
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else InvalidRequestError
