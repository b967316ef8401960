"""API keys: generated once, shown once, stored only as a hash; the caller's identity comes
from the key alone, never from anything else in the request."""

from __future__ import annotations

import hashlib
import secrets

from aiohttp import web

from backend import db
from backend.errors import ApiError
from backend.resources import DB

KEY_PREFIX = "untxt_"
USER_ID = web.RequestKey("user_id", str)
PROTECTED_PREFIXES = ("/api/",)


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
    user_id = await db.user_for_key_hash(request.app[DB], hash_api_key(token))
    if user_id is None:
        raise ApiError(401, "unauthorized", "invalid or revoked API key", {"WWW-Authenticate": "Bearer"})
    return user_id


@web.middleware
async def auth_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    if request.path.startswith(PROTECTED_PREFIXES):
        request[USER_ID] = await authenticate(request, bearer_token(request))
    return await handler(request)
