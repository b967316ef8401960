"""The one way this client talks HTTP to the API: build the request, send it with bounded retries
that honour ``Retry-After``, and turn the JSON envelope into data or a typed exception.

aiohttp, not httpx: it is already the project's HTTP library, and ``wait`` needs a WebSocket,
which httpx does not speak; one library gives HTTP and WebSocket one connection pool, one set of
timeouts and one place for the key.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from untxt.errors import ApiError, QuotaExceededError, TransportError, error_class

log = logging.getLogger("untxt")

USER_AGENT = "untxt-python"
# 429 and 503 say "not now": the API did nothing, or undid what it did (one file's worth).
RETRY_STATUSES = (429, 503)
# Answers kept for If-None-Match; a few hundred is plenty for polling a batch.
VALIDATOR_CACHE_SIZE = 512


@dataclass(frozen=True)
class Call:
    """One API request. ``form`` builds the body anew for every attempt (a streamed body can be
    sent only once)."""

    method: str
    path: str
    params: Mapping[str, str | int] | None = None
    headers: Mapping[str, str] | None = None
    form: Callable[[], aiohttp.FormData] | None = None
    retry_statuses: tuple[int, ...] = RETRY_STATUSES
    # Safe to send again after a connection broke mid-request (as every GET is; keyed uploads).
    resend_after_disconnect: bool = False
    # A read whose answer is kept with its ETag and revalidated (304 costs no body).
    conditional: bool = False


@dataclass(frozen=True)
class Answer:
    status: int
    data: dict[str, Any]
    headers: Mapping[str, str]


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def api_error(status: int, body: Any, headers: Mapping[str, str]) -> ApiError:
    """The typed exception for an error answer (or for a body that is not the envelope)."""
    retry_after = retry_after_seconds(headers.get("Retry-After"))
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and "code" in error:
        details = {k: v for k, v in error.items() if k not in ("code", "message")}
        return error_class(status, error["code"])(
            status, error["code"], error.get("message", ""), retry_after=retry_after, details=details
        )
    return error_class(status)(status, "invalid_response", f"HTTP {status} without the JSON error envelope")


class Transport:
    """The HTTP session of one client: base URL, key, timeouts, retries, ETag cache."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        max_retries: int,
        max_retry_wait: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout, sock_read=timeout)
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self._session: aiohttp.ClientSession | None = None
        self._validators: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()

    def session(self) -> aiohttp.ClientSession:
        # Made on first use, inside the event loop that will use it (aiohttp binds to it).
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def ws_url(self) -> str:
        return self.base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/ws"

    @property
    def auth_headers(self) -> dict[str, str]:
        return dict(self._auth)

    async def call(self, call: Call) -> Answer:
        """Send ``call``; on 429/503 (and on a broken connection when it is safe) wait and send it
        again, at most ``max_retries`` times, never longer than ``max_retry_wait`` per wait."""
        attempt = 0
        while True:
            try:
                return await self._attempt(call)
            except (ApiError, TransportError) as exc:
                delay = self._retry_delay(call, exc, attempt)
                if delay is None:
                    raise
                log.info(
                    "retrying %s %s in %.1f s after %s (attempt %d of %d)",
                    call.method,
                    call.path,
                    delay,
                    exc.code,
                    attempt + 1,
                    self.max_retries,
                )
                await asyncio.sleep(delay)
                attempt += 1

    def _retry_delay(self, call: Call, exc: ApiError | TransportError, attempt: int) -> float | None:
        if attempt >= self.max_retries:
            return None
        if isinstance(exc, TransportError):
            safe = call.method == "GET" or call.resend_after_disconnect
            return min(self.max_retry_wait, 0.5 * 2**attempt) if safe else None
        if exc.status not in call.retry_statuses or isinstance(exc, QuotaExceededError):
            return None
        if exc.retry_after is None:
            return min(self.max_retry_wait, 0.5 * 2**attempt)
        # A server that asks for a longer pause than we may wait gets its answer raised at once.
        return exc.retry_after if exc.retry_after <= self.max_retry_wait else None

    async def _attempt(self, call: Call) -> Answer:
        url = self.base_url + call.path
        headers = {**self._auth, **(call.headers or {})}
        cache_key = f"{url}?{sorted((call.params or {}).items())}"
        cached = self._validators.get(cache_key) if call.conditional else None
        if cached is not None:
            headers["If-None-Match"] = cached[0]
        try:
            async with self.session().request(
                call.method, url, params=call.params, headers=headers, data=call.form() if call.form else None
            ) as resp:
                if resp.status == 304 and cached is not None:
                    self._validators.move_to_end(cache_key)
                    return Answer(200, cached[1], resp.headers)
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = None
                if not 200 <= resp.status < 300 or not isinstance(body, dict) or body.get("success") is not True:
                    raise api_error(resp.status, body, resp.headers)
                data = body.get("data") or {}
                if call.conditional and "ETag" in resp.headers:
                    self._remember(cache_key, resp.headers["ETag"], data)
                return Answer(resp.status, data, resp.headers)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            raise TransportError(f"{call.method} {url}: {exc or type(exc).__name__}") from exc

    def _remember(self, key: str, etag: str, data: dict[str, Any]) -> None:
        self._validators[key] = (etag, data)
        self._validators.move_to_end(key)
        while len(self._validators) > VALIDATOR_CACHE_SIZE:
            self._validators.popitem(last=False)

    async def download(self, url: str, destination: Path | None) -> bytes:
        """GET a presigned URL (no API key: the signature is the credential). Streams to
        ``destination`` when given (then returns b""), else returns the bytes."""
        try:
            async with self.session().get(url) as resp:
                if resp.status != 200:
                    raise error_class(resp.status)(resp.status, "download_failed", f"the store answered {resp.status}")
                if destination is None:
                    return await resp.read()
                partial = destination.with_name(destination.name + ".part")
                try:
                    with partial.open("wb") as out:
                        async for chunk in resp.content.iter_chunked(256 * 1024):
                            out.write(chunk)
                    partial.replace(destination)  # never a half-written file under the real name
                finally:
                    partial.unlink(missing_ok=True)
                return b""
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            raise TransportError(f"GET result: {exc or type(exc).__name__}") from exc
