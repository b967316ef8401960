"""The dashboard's page and assets as the API serves them (types, cache and security headers,
no inline script), and the single-use WebSocket tickets it signs in its socket with — the API
in-process against the real PostgreSQL, Redis and S3 store."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from html.parser import HTMLParser
from typing import Any

import aiohttp
import pytest
import redis

from backend.handlers.dashboard import STATIC_DIR
from backend.users import create_user_with_key, revoke
from backend.wstickets import TICKET_TTL_SECONDS
from common.jobqueue import RedisNames
from common.settings import Settings
from tests.integration.conftest import error_of, user_headers

JS_TYPE = "text/javascript; charset=utf-8"
# Anything that would parse a string as HTML: untrusted filenames and results must never meet one.
HTML_SINKS = re.compile(r"\b(innerHTML|outerHTML|insertAdjacentHTML|document\.write|srcdoc|eval)\b|new Function")
IMPORT = re.compile(r"""^import\s.*?from\s+"(\./[\w.-]+\.js)";""", re.MULTILINE)


class _PageParts(HTMLParser):
    """What index.html loads, and anything in it that a strict CSP would block."""

    def __init__(self) -> None:
        super().__init__()
        self.assets: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "script":
            if not attr.get("src"):
                self.inline.append("<script> without src")
            else:
                self.assets.append(str(attr["src"]))
        elif tag == "link" and attr.get("href"):
            self.assets.append(str(attr["href"]))
        elif tag == "style":
            self.inline.append("<style>")
        self.inline.extend(f"{tag} {name}=" for name, _ in attrs if name == "style" or name.startswith("on"))


async def test_page_is_served_with_a_strict_policy_and_no_inline_code(client) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "form-action 'none'" in csp  # a form posted without the script cannot put the key in a URL
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["Cache-Control"] == "no-cache"
    parts = _PageParts()
    parts.feed(await resp.text())
    assert parts.inline == []
    assert "/static/js/main.js" in parts.assets
    for asset in parts.assets:
        got = await client.get(asset)
        assert got.status == 200, asset
        assert got.headers["Content-Security-Policy"] == csp


async def test_every_module_is_served_as_javascript_and_every_import_resolves(client) -> None:
    modules = sorted((STATIC_DIR / "js").glob("*.js"))
    imported = set()
    for path in modules:
        source = path.read_text(encoding="utf-8")
        assert not HTML_SINKS.search(source), f"{path.name} uses an HTML sink"
        for target in IMPORT.findall(source):
            assert (path.parent / target).is_file(), f"{path.name} imports missing {target}"
            imported.add(target.removeprefix("./"))
        resp = await client.get(f"/static/js/{path.name}")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == JS_TYPE
        assert resp.headers["Cache-Control"] == "no-cache"
    # main.js (loaded by the page) reaches every other module: none is dead or forgotten.
    assert imported == {path.name for path in modules} - {"main.js"}
    css = await client.get("/static/app.css")
    assert css.headers["Content-Type"] == "text/css; charset=utf-8"


async def test_assets_revalidate_with_304_and_stay_inside_their_folder(client) -> None:
    first = await client.get("/static/js/main.js")
    etag = first.headers["ETag"]
    again = await client.get("/static/js/main.js", headers={"If-None-Match": etag})
    assert again.status == 304
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/js/../../app.py"):
        resp = await client.get(path)
        assert resp.status in (403, 404), path
        assert "create_app" not in await resp.text()
    assert (await client.get("/static/")).status in (403, 404)  # no directory listing


async def test_swagger_ui_keeps_working_without_the_dashboard_policy(client) -> None:
    resp = await client.get("/docs")
    assert resp.status == 200
    assert "SwaggerUIBundle" in await resp.text()
    assert "Content-Security-Policy" not in resp.headers  # its page has an inline script


def _ticket_key(names: RedisNames, ticket: str) -> str:
    return names.ws_ticket(hashlib.sha256(ticket.encode()).hexdigest())


async def _ticket(client: Any, auth: dict[str, str]) -> str:
    resp = await client.post("/api/ws-ticket", headers=auth)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["data"]["expiresIn"] == TICKET_TTL_SECONDS
    return body["data"]["ticket"]


async def _refused(client: Any, url: str) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(url)
    return refused.value.status


async def test_a_ticket_opens_one_socket_once(
    client, settings: Settings, redis_client: redis.Redis, names: RedisNames
) -> None:
    user_id, auth = await user_headers(settings)
    assert (await error_of(await client.post("/api/ws-ticket"), 401))["code"] == "unauthorized"
    ticket = await _ticket(client, auth)
    # Only its hash is stored, and it expires by itself.
    assert redis_client.get(_ticket_key(names, ticket)) is not None
    assert 0 < redis_client.ttl(_ticket_key(names, ticket)) <= TICKET_TTL_SECONDS
    assert not redis_client.keys(f"*{ticket}*")
    ws = await client.ws_connect(f"/ws?ticket={ticket}")
    hello = await ws.receive_json(timeout=5)
    assert hello == {"type": "connected", "data": {"userId": user_id}, "timestamp": hello["timestamp"]}
    await ws.close()
    assert await _refused(client, f"/ws?ticket={ticket}") == 401  # used
    assert await _refused(client, "/ws?ticket=made-up") == 401
    # API keys in the URL still work for non-browser clients (the public contract).
    ws = await client.ws_connect(f"/ws?token={auth['Authorization'].split()[1]}")
    assert (await ws.receive_json(timeout=5))["type"] == "connected"
    await ws.close()


async def test_an_expired_ticket_or_one_of_a_revoked_key_opens_nothing(
    client, settings: Settings, redis_client: redis.Redis, names: RedisNames
) -> None:
    _, key = await create_user_with_key(settings.database_url, f"{uuid.uuid4().hex}@example.com")
    auth = {"Authorization": f"Bearer {key}"}
    expired = await _ticket(client, auth)
    redis_client.pexpire(_ticket_key(names, expired), 1)  # as if TICKET_TTL_SECONDS had passed
    kept = await _ticket(client, auth)
    await revoke(settings, None, key)
    deadline = asyncio.get_running_loop().time() + 1.0
    while (await client.post("/api/ws-ticket", headers=auth)).status == 200:  # until the broadcast is in
        assert asyncio.get_running_loop().time() < deadline, "revoked key still accepted after 1 s"
        await asyncio.sleep(0.01)
    assert await _refused(client, f"/ws?ticket={expired}") == 401
    # Issued while the key was good, redeemed after its revocation: the key is checked again.
    resp = await client.get(f"/ws?ticket={kept}")
    assert (await error_of(resp, 401))["code"] == "unauthorized"
