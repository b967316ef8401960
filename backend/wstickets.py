"""Single-use tickets that let a browser open ``/ws`` without putting its API key in a URL.

A browser cannot set ``Authorization`` on a WebSocket, and a URL ends up in proxies' logs and
the browser's history. So the dashboard asks for a ticket with an authenticated
``POST /api/ws-ticket`` and opens ``/ws?ticket=…`` within ``TICKET_TTL_SECONDS``. The ticket
names the API key (by its hash), not the user: the key is checked again when the ticket is
redeemed, so a key revoked in between opens nothing, and the socket is closed with the key's
other sockets if it is revoked later.
"""

from __future__ import annotations

import hashlib
import secrets

import redis.asyncio as aioredis

from common.jobqueue import RedisNames

# Long enough for a page to go from the POST to the WebSocket handshake on a slow phone link;
# short enough that a ticket seen in a log has expired long before anyone could read it.
TICKET_TTL_SECONDS = 30


def _ticket_key(names: RedisNames, ticket: str) -> str:
    # Stored by hash, so whoever can read Redis still cannot open a socket with what is there.
    return names.ws_ticket(hashlib.sha256(ticket.encode("utf-8")).hexdigest())


async def issue_ticket(client: aioredis.Redis, names: RedisNames, key_hash: str) -> str:
    ticket = secrets.token_urlsafe(32)
    await client.set(_ticket_key(names, ticket), key_hash, ex=TICKET_TTL_SECONDS)
    return ticket


async def redeem_ticket(client: aioredis.Redis, names: RedisNames, ticket: str) -> str | None:
    """The key hash the ticket was issued for, or None if it is unknown, expired or used.

    GETDEL is atomic: of two handshakes racing with the same ticket, exactly one gets it.
    """
    if not ticket or len(ticket) > 128:
        return None
    raw = await client.getdel(_ticket_key(names, ticket))
    return raw.decode() if raw is not None else None
