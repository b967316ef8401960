"""GET /: the web dashboard, a static page whose assets are served from ``backend/static/``
under ``/static`` (plain HTML, CSS and ES modules: no build step, no CDN)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_PATH = "/static"

# Scripts and styles only from this origin and never inline, so text that slips into the page
# cannot run; 'self' in connect-src covers the same-origin ws:// and wss:// (CSP Level 3).
# Result documents open in their own tab from a presigned URL (a navigation, not a fetch).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidate every time (a 304 from Last-Modified when unchanged): without a build step the
    # asset names carry no content hash, and a stale module beside a new one breaks the page.
    "Cache-Control": "no-cache",
}

# Stated rather than guessed: aiohttp's guess for .js is the obsolete application/javascript and
# says no charset for text (RFC 9239: text/javascript; the files are UTF-8).
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the dashboard's security and cache headers on its page and assets
    (not on /docs, whose Swagger UI needs an inline script)."""
    if request.path == "/" or request.path.startswith(STATIC_PATH + "/"):
        response.headers.update(HEADERS)
        suffix = ".html" if request.path == "/" else PurePosixPath(request.path).suffix
        if isinstance(response, web.FileResponse) and suffix in CONTENT_TYPES:
            response.headers["Content-Type"] = CONTENT_TYPES[suffix]
