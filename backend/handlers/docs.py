"""GET /openapi.json and GET /docs (Swagger UI, its assets served from the swagger-ui-bundle
package: no CDN, the service may have no internet)."""

from __future__ import annotations

from aiohttp import web

from backend.openapi import openapi_spec
from backend.resources import SETTINGS

DOCS_STATIC = "/docs/static"

_PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>untxt API</title>
<link rel="stylesheet" href="{DOCS_STATIC}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{DOCS_STATIC}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui"}});
</script>
</body>
</html>
"""


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi_spec(request.app[SETTINGS]))


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=_PAGE, content_type="text/html")
