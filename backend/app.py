"""The application factory: ``create_app(settings)``."""

from __future__ import annotations

from aiohttp import web

from backend.auth import KEY_CACHE, KeyCache, auth_middleware
from backend.errors import error_middleware
from backend.handlers.dashboard import add_headers
from backend.handlers.health import HEALTH, HealthCache
from backend.live import RELAY, close_sockets, relay_ctx
from backend.metrics import METRICS, ApiMetrics, metrics_middleware
from backend.resources import SETTINGS, database_ctx, redis_ctx, s3_ctx
from backend.responses import hide_server_version
from backend.retention import retention_ctx
from backend.routes import setup_routes
from backend.telemetry import echo_request_id, telemetry_middleware
from backend.webhooks.dispatcher import dispatcher_ctx
from common.settings import Settings


def create_app(settings: Settings) -> web.Application:
    # Uploads are streamed, so client_max_size only bounds bodies read whole (none today).
    app = web.Application(
        middlewares=[telemetry_middleware, metrics_middleware, error_middleware, auth_middleware],
        client_max_size=1024 * 1024,
    )
    app[SETTINGS] = settings
    # The relay exists from startup on (relay_ctx); a scrape before that finds no sockets.
    app[METRICS] = ApiMetrics(lambda: len(app[RELAY].connections()) if RELAY in app else 0)
    app[KEY_CACHE] = KeyCache()
    app[HEALTH] = HealthCache()
    app.cleanup_ctx.extend([database_ctx, redis_ctx, s3_ctx, relay_ctx, dispatcher_ctx, retention_ctx])
    app.on_shutdown.append(close_sockets)
    app.on_response_prepare.extend([add_headers, echo_request_id])
    hide_server_version()
    setup_routes(app)
    return app
