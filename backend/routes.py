"""URL → handler map; nothing else."""

from __future__ import annotations

import swagger_ui_bundle
from aiohttp import web

from backend.handlers import dashboard, docs, health, queue_stats, tasks, webhooks, ws
from backend.metrics import metrics_endpoint

# "batch" is no task id: without the lookahead, GET /api/tasks/batch would reach get_task and a
# 405 there would advertise GET and DELETE in its Allow header.
TASK = "/api/tasks/{task_id:(?!batch$)[^{}/]+}"
WEBHOOK = "/api/webhooks/{webhook_id}"


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", dashboard.index)
    app.router.add_static(dashboard.STATIC_PATH, dashboard.STATIC_DIR)
    app.router.add_get("/health", health.health)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/ws", ws.websocket)
    app.router.add_post("/api/ws-ticket", ws.create_ticket)
    app.router.add_get("/openapi.json", docs.openapi_json)
    app.router.add_get("/docs", docs.docs_page)
    app.router.add_static(docs.DOCS_STATIC, swagger_ui_bundle.swagger_ui_path)
    app.router.add_post("/api/tasks", tasks.create_task)
    app.router.add_post("/api/tasks/batch", tasks.create_batch)
    app.router.add_get("/api/tasks", tasks.list_tasks)
    app.router.add_get(TASK, tasks.get_task)
    app.router.add_get(f"{TASK}/status", tasks.get_task_status)
    app.router.add_get(f"{TASK}/result", tasks.get_task_result)
    app.router.add_post(f"{TASK}/cancel", tasks.cancel_task)
    app.router.add_post(f"{TASK}/retry", tasks.retry_task)
    app.router.add_delete(TASK, tasks.delete_task)
    app.router.add_get("/api/queue/stats", queue_stats.queue_stats)
    app.router.add_post("/api/webhooks", webhooks.create_webhook)
    app.router.add_get("/api/webhooks", webhooks.list_webhooks)
    app.router.add_get(WEBHOOK, webhooks.get_webhook)
    app.router.add_delete(WEBHOOK, webhooks.delete_webhook)
    app.router.add_get(f"{WEBHOOK}/deliveries", webhooks.list_deliveries)
