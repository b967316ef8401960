"""API keys: generated once, shown once, stored only as a hash; the caller's identity comes
from the key alone, never from anything else in the request."""

from __future__ import annotations

import hashlib
import secrets
import time

from aiohttp import web

from backend import db, ratelimit
from backend.errors import ApiError
from backend.resources import DB

KEY_PREFIX = "untxt_"
USER_ID = web.RequestKey("user_id", str)
PROTECTED_PREFIXES = ("/api/",)
# How long a verified key is trusted without asking PostgreSQL. Revocations are broadcast to
# every API process at once (AUTH_REVOKED_CHANNEL); this bounds the exposure if one is missed.
KEY_CACHE_SECONDS = 10.0
KEY_CACHE_MAX = 10_000


class KeyCache:
    """key hash → user id, for KEY_CACHE_SECONDS; evicted at once on revocation."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, float]] = {}

    def get(self, key_hash: str) -> str | None:
        entry = self._entries.get(key_hash)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, key_hash: str, user_id: str) -> None:
        if len(self._entries) >= KEY_CACHE_MAX:
            self._entries.clear()
        self._entries[key_hash] = (user_id, time.monotonic() + KEY_CACHE_SECONDS)

    def evict(self, key_hashes: list[str]) -> None:
        for key_hash in key_hashes:
            self._entries.pop(key_hash, None)


KEY_CACHE = web.AppKey("key_cache", KeyCache)


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def authenticate(request: web.Request, token: str | None) -> str:
    """The user id owning ``token``; 401 for a missing, unknown or revoked key."""
    if not token:
        raise ApiError(
            401, "unauthorized", "missing API key: send 'Authorization: Bearer <key>'", {"WWW-Authenticate": "Bearer"}
        )
    return await authenticate_key_hash(request, hash_api_key(token))


async def authenticate_key_hash(request: web.Request, key_hash: str) -> str:
    """The user id owning the key with this hash; 401 for an unknown or revoked one.

    A key not in the cache costs a database query, so a client address that sent too many
    invalid keys gets 429 for such keys (keys this process verified lately still pass): guessing
    or replaying dead keys cannot keep PostgreSQL busy.
    """
    cache = request.app[KEY_CACHE]
    user_id = cache.get(key_hash)
    if user_id is not None:
        return user_id
    await ratelimit.invalid_keys(request, spend=False)
    user_id = await db.user_for_key_hash(request.app[DB], key_hash)
    if user_id is None:
        await ratelimit.invalid_keys(request, spend=True)
        raise ApiError(401, "unauthorized", "invalid or revoked API key", {"WWW-Authenticate": "Bearer"})
    cache.put(key_hash, user_id)
    return user_id


async def require_operator(request: web.Request) -> str:
    """The caller's user id when the key is an operator's (``users.is_operator``): 401 without a
    valid key, 403 with anyone else's."""
    user_id = await authenticate(request, bearer_token(request))
    if not await db.is_operator(request.app[DB], user_id):
        raise ApiError(403, "operator_only", "this needs an operator's API key (scripts/create_user.sh --operator)")
    return user_id


@web.middleware
async def auth_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    if request.path.startswith(PROTECTED_PREFIXES):
        request[USER_ID] = await authenticate(request, bearer_token(request))
    return await handler(request)
