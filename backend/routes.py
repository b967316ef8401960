"""URL → handler map; nothing else."""

from __future__ import annotations

import swagger_ui_bundle
from aiohttp import web

from backend.handlers import docs, health, queue_stats, tasks, ws
from backend.metrics import metrics_endpoint


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/health", health.health)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/ws", ws.websocket)
    app.router.add_get("/openapi.json", docs.openapi_json)
    app.router.add_get("/docs", docs.docs_page)
    app.router.add_static(docs.DOCS_STATIC, swagger_ui_bundle.swagger_ui_path)
    app.router.add_post("/api/tasks", tasks.create_task)
    app.router.add_post("/api/tasks/batch", tasks.create_batch)
    app.router.add_get("/api/tasks", tasks.list_tasks)
    app.router.add_get("/api/tasks/{task_id}", tasks.get_task)
    app.router.add_get("/api/tasks/{task_id}/status", tasks.get_task_status)
    app.router.add_get("/api/tasks/{task_id}/result", tasks.get_task_result)
    app.router.add_post("/api/tasks/{task_id}/cancel", tasks.cancel_task)
    app.router.add_post("/api/tasks/{task_id}/retry", tasks.retry_task)
    app.router.add_delete("/api/tasks/{task_id}", tasks.delete_task)
    app.router.add_get("/api/queue/stats", queue_stats.queue_stats)
