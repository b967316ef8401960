"""The OpenAPI 3 description of the API (served at /openapi.json, browsable at /docs)."""

from __future__ import annotations

from typing import Any

from backend.db import IDEMPOTENCY_WINDOW
from backend.handlers.webhooks import MAX_BODY_BYTES
from backend.pagination import MAX_OFFSET, MAX_PAGE_SIZE
from backend.uploads import MAX_BATCH_FILES, MAX_IDEMPOTENCY_KEY, MAX_TAG_CHARS
from backend.webhooks import DELIVERY_STATUSES, WEBHOOK_EVENTS
from backend.webhooks.signing import SECRET_PREFIX
from backend.webhooks.targets import MAX_URL_LENGTH
from backend.wstickets import TICKET_TTL_SECONDS
from common import keys
from common.job import DEFAULT_PRIORITY
from common.jobqueue import PRIORITIES
from common.media import SUPPORTED_NAMES
from common.settings import PRESIGN_MIN_SECONDS, Settings
from common.statuses import TaskStatus

_JSON = "application/json"
_UUID = {"type": "string", "format": "uuid"}
_STATUS = {"type": "string", "enum": [s.value for s in TaskStatus]}
_PRIORITY_RANGE = f"{PRIORITIES[0]}-{PRIORITIES[-1]}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(schema_name: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            _JSON: {
                "schema": {
                    "type": "object",
                    "required": ["success", "data"],
                    "properties": {"success": {"type": "boolean", "enum": [True]}, "data": _ref(schema_name)},
                }
            }
        },
    }


_LANGUAGE = {
    "type": "string",
    "pattern": "^[a-z_]+(\\+[a-z_]+)*$",
    "description": "Tesseract models joined by '+'; each must be installed (the stack ships eng and vie)",
    "example": "eng+vie",
}


# The API's rule (backend/uploads.py::parse_tag) as a pattern: no C0/C1 controls, no line or
# paragraph separators; empty means no tag.
_TAG_FIELD = {
    "type": "string",
    "maxLength": MAX_TAG_CHARS,
    "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$",
    "description": "your label for the upload (like Textract's JobTag), echoed in the task, its status and its "
    f"events; at most {MAX_TAG_CHARS} characters, no control characters; empty means none",
    "example": "invoices-2026-11",
}
_PRIORITY_FIELD = {
    "type": "integer",
    "minimum": PRIORITIES[0],
    "maximum": PRIORITIES[-1],
    "default": DEFAULT_PRIORITY,
    "description": f"orders the caller's own jobs ({PRIORITIES[-1]} first); users take turns. Above PRIORITY_CEILING, "
    "for a user an operator allowed the express lane, the job goes before every user's turn",
}
_TAG = {"type": "string", "nullable": True, "maxLength": MAX_TAG_CHARS, "description": "the label given at upload"}


def _with_headers(response: dict[str, Any], **headers: str) -> dict[str, Any]:
    """A response object that also documents its headers (name → description)."""
    return {
        **response,
        "headers": {name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()},
    }


def _accepted(schema_name: str, description: str) -> dict[str, Any]:
    return _with_headers(
        _ok(schema_name, description), Location="the task's own URL (api/tasks/{taskId} under the server root)"
    )


def _task_links() -> dict[str, Any]:
    """OpenAPI links from an accepted upload to the routes of its task (clients and the
    stateful fuzzing phase follow them)."""
    task = "#/paths/~1api~1tasks~1{taskId}"
    routes = {
        "GetTask": f"{task}/get",
        "GetStatus": f"{task}~1status/get",
        "GetResult": f"{task}~1result/get",
        "CancelTask": f"{task}~1cancel/post",
        "RetryTask": f"{task}~1retry/post",
        "DeleteTask": f"{task}/delete",
    }
    return {
        name: {"operationRef": ref, "parameters": {"taskId": "$response.body#/data/taskId"}}
        for name, ref in routes.items()
    }


def _conditional(schema_name: str, description: str) -> dict[str, dict[str, Any]]:
    """200 with an ETag, and 304 for an If-None-Match that holds it."""
    etag = "weak validator of the task's state; send it back as If-None-Match"
    return {
        "200": _with_headers(_ok(schema_name, description), ETag=etag, **{"Cache-Control": "private, no-cache"}),
        "304": _with_headers({"description": "not modified since the ETag in If-None-Match (no body)"}, ETag=etag),
    }


_IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "an ETag from an earlier answer (or *): 304 without a body while it still holds",
}


def _text(media_type: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def _error(description: str, codes: list[str]) -> dict[str, Any]:
    return {
        "description": f"{description} (error codes: {', '.join(codes)})",
        "content": {_JSON: {"schema": _ref("Error")}},
    }


_AUTH_ERRORS = {"401": _error("missing, unknown or revoked API key", ["unauthorized"])}
_UNAVAILABLE = {
    "503": _error(
        "a backing store is down; retry after Retry-After seconds",
        ["database_unavailable", "queue_unavailable", "storage_unavailable", "service_unavailable"],
    )
}
_TASK_ID = {
    "name": "taskId",
    "in": "path",
    "required": True,
    "schema": _UUID,
    "description": "the task's id",
}
_LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}}
_BAD_ID = {"400": _error("malformed task id", ["invalid_task_id"])}
_NOT_FOUND = {"404": _error("no such task for this key (also for other users' tasks)", ["task_not_found"])}
_QUOTA_OR_RATE = _error(
    "per-key rate limit (see Retry-After), or a per-user quota (queued+processing tasks, their pages, "
    "stored bytes) that this upload or retry would pass; nothing is stored",
    ["rate_limited", "quota_exceeded"],
)
_UPLOAD_ERRORS = {
    "400": _error(
        "bad request",
        [
            "invalid_request",
            "invalid_multipart",
            "missing_file",
            "unknown_field",
            "duplicate_field",
            "too_many_files",
            "empty_file",
            "invalid_priority",
            "invalid_language",
            "invalid_field",
            "invalid_tag",
            "invalid_idempotency_key",
        ],
    ),
    "413": _error(
        "file over MAX_UPLOAD_BYTES, or an image whose header states more than MAX_IMAGE_PIXELS",
        ["file_too_large", "image_too_large"],
    ),
    "415": _error(f"content is not {SUPPORTED_NAMES}", ["unsupported_media_type"]),
    "429": _QUOTA_OR_RATE,
}
_TASK_REQUIRED = ["taskId", "status", "priority", "language", "tag", "progress", "attempts", "file", "createdAt"]

_STRING_OR_NULL = {"type": "string", "nullable": True}
_NEXT_CURSOR = {
    "type": "string",
    "nullable": True,
    "description": "opaque cursor of the next page (send it as ?cursor=), null on the last page",
}
_TIMESTAMP = {"type": "string", "format": "date-time"}
_TIMESTAMP_OR_NULL = {"type": "string", "format": "date-time", "nullable": True}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["success", "error"],
        "properties": {
            "success": {"type": "boolean", "enum": [False]},
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "UploadForm": {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary"},
            "priority": _PRIORITY_FIELD,
            "language": _LANGUAGE,
            "tag": _TAG_FIELD,
        },
    },
    "BatchForm": {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "minItems": 1,
                "maxItems": MAX_BATCH_FILES,
            },
            "priority": _PRIORITY_FIELD,
            "language": _LANGUAGE,
            "tag": {
                **_TAG_FIELD,
                "description": "one 'tag' part labels every file; as many 'tag' parts as 'file' parts label "
                "one file each, in order (any other count is 400 invalid_tag). " + str(_TAG_FIELD["description"]),
            },
        },
    },
    "Upload": {
        "type": "object",
        "required": ["taskId", "fileId", "filename", "fileSize", "mimeType", "fileHash", "status", "tag", "createdAt"],
        "properties": {
            "taskId": _UUID,
            "fileId": _UUID,
            "filename": {"type": "string"},
            "fileSize": {"type": "integer"},
            "mimeType": {"type": "string"},
            "s3Key": {"type": "string"},
            "fileHash": {"type": "string", "description": "SHA-256, hex"},
            "status": _STATUS,
            "priority": {"type": "integer"},
            "language": {"type": "string"},
            "tag": _TAG,
            "queuePosition": {"type": "integer", "nullable": True},
            "createdAt": _TIMESTAMP,
        },
    },
    "Task": {
        "type": "object",
        "required": _TASK_REQUIRED,
        "properties": {
            "taskId": _UUID,
            "status": _STATUS,
            "priority": {"type": "integer"},
            "language": {"type": "string"},
            "tag": _TAG,
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "attempts": {"type": "integer"},
            "queuePosition": {"type": "integer", "nullable": True},
            "file": {
                "type": "object",
                "properties": {
                    "fileId": _UUID,
                    "filename": {"type": "string"},
                    "mimeType": {"type": "string"},
                    "fileSize": {"type": "integer"},
                    "fileHash": {"type": "string"},
                    "s3Key": {"type": "string"},
                },
            },
            "result": {
                "type": "object",
                "nullable": True,
                "description": "pages, characters, words, meanConfidence, language, engine, seconds, pageStats",
            },
            "error": {
                "type": "object",
                "nullable": True,
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            },
            "resultUrl": _STRING_OR_NULL,
            "createdAt": _TIMESTAMP,
            "startedAt": _TIMESTAMP_OR_NULL,
            "completedAt": _TIMESTAMP_OR_NULL,
            "updatedAt": _TIMESTAMP,
        },
    },
    "TaskList": {
        "type": "object",
        "required": ["tasks", "total", "limit", "offset", "next"],
        "properties": {
            "tasks": {"type": "array", "items": _ref("Task")},
            "total": {"type": "integer", "description": "tasks that match the filters, on every page"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "next": _NEXT_CURSOR,
        },
    },
    "BatchRejected": {
        "allOf": [
            _ref("Error"),
            {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {"results": {"type": "array", "items": _ref("BatchItem")}},
                    }
                },
            },
        ]
    },
    "BatchItem": {
        "type": "object",
        "required": ["index", "filename", "success"],
        "properties": {
            "index": {"type": "integer"},
            "filename": {"type": "string"},
            "success": {"type": "boolean"},
            "data": _ref("Upload"),
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "status": {"type": "integer"},
                },
            },
        },
    },
    "BatchResult": {
        "type": "object",
        "properties": {
            "results": {"type": "array", "items": _ref("BatchItem")},
            "accepted": {"type": "integer"},
            "rejected": {"type": "integer"},
            "maxFiles": {"type": "integer"},
        },
    },
    "TaskStatus": {
        "type": "object",
        "required": ["taskId", "status", "progress", "message", "tag", "queuePosition", "updatedAt"],
        "properties": {
            "taskId": _UUID,
            "status": _STATUS,
            "progress": {"type": "integer"},
            "message": _STRING_OR_NULL,
            "tag": _TAG,
            "queuePosition": {"type": "integer", "nullable": True},
            "updatedAt": _TIMESTAMP_OR_NULL,
        },
    },
    "Result": {
        "type": "object",
        "required": ["taskId", "resultUrl", "expiresIn", "format"],
        "properties": {
            "taskId": _UUID,
            "resultUrl": {"type": "string", "description": "presigned GET (SigV4)"},
            "expiresIn": {"type": "integer"},
            "format": {"type": "string", "enum": list(keys.RESULT_FORMATS)},
        },
    },
    "Deleted": {
        "type": "object",
        "properties": {
            "taskId": {"type": "string"},
            "deleted": {"type": "boolean"},
            "objectsDeleted": {"type": "integer"},
        },
    },
    "WsTicket": {
        "type": "object",
        "required": ["ticket", "expiresIn"],
        "properties": {
            "ticket": {"type": "string", "description": "opens one /ws?ticket= handshake"},
            "expiresIn": {"type": "integer", "description": "seconds"},
        },
    },
    "QueueStats": {
        "type": "object",
        "required": ["scope", "queued", "byPriority", "mine"],
        "properties": {
            "scope": {
                "type": "string",
                "enum": ["own", "all"],
                "description": "own: queued and byPriority count the caller's tasks only; all (operators): "
                "the whole queue",
            },
            "queued": {"type": "integer", "description": "tasks waiting (the caller's, or everyone's for operators)"},
            "byPriority": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": f"tasks waiting per priority {_PRIORITY_RANGE} "
                "(the caller's, or everyone's for operators)",
            },
            "mine": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "the caller's tasks by status",
            },
            "global": {
                "type": "object",
                "description": "operators only: all tasks by status, processing, dead letters, live worker slots",
            },
        },
    },
    "WebhookRequest": {
        "type": "object",
        "required": ["url"],
        "additionalProperties": False,
        "properties": {
            "url": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_URL_LENGTH,
                "description": "where to POST events: https, no credentials, and a host that resolves only to public "
                "addresses (WEBHOOK_ALLOW_PRIVATE_TARGETS=true allows http and private addresses, for development)",
                "example": "https://hooks.example.com/untxt",
            },
            "events": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "enum": list(WEBHOOK_EVENTS)},
                "description": "which terminal states to deliver; all of them when absent",
            },
        },
    },
    "Webhook": {
        "type": "object",
        "required": ["webhookId", "url", "events", "createdAt"],
        "properties": {
            "webhookId": _UUID,
            "url": {"type": "string"},
            "events": {"type": "array", "items": {"type": "string", "enum": list(WEBHOOK_EVENTS)}},
            "createdAt": _TIMESTAMP,
        },
    },
    "WebhookCreated": {
        "allOf": [
            _ref("Webhook"),
            {
                "type": "object",
                "required": ["secret"],
                "properties": {
                    "secret": {
                        "type": "string",
                        "pattern": f"^{SECRET_PREFIX}",
                        "description": "the signing secret (Standard Webhooks); shown only in this answer",
                    }
                },
            },
        ]
    },
    "WebhookList": {
        "type": "object",
        "required": ["webhooks"],
        "properties": {"webhooks": {"type": "array", "items": _ref("Webhook")}},
    },
    "WebhookDeleted": {
        "type": "object",
        "required": ["webhookId", "deleted"],
        "properties": {"webhookId": _UUID, "deleted": {"type": "boolean"}},
    },
    "DeliveryAttempt": {
        "type": "object",
        "required": ["attempt", "attemptedAt", "durationMs", "statusCode", "error", "nextAttemptAt"],
        "properties": {
            "attempt": {"type": "integer", "minimum": 1},
            "attemptedAt": _TIMESTAMP,
            "durationMs": {"type": "integer"},
            "statusCode": {"type": "integer", "nullable": True, "description": "the receiver's answer"},
            "error": {**_STRING_OR_NULL, "description": "timeout, connection error or refused address"},
            "nextAttemptAt": {
                **_TIMESTAMP_OR_NULL,
                "description": "when it is retried; null once delivered or given up",
            },
        },
    },
    "Delivery": {
        "type": "object",
        "required": ["deliveryId", "taskId", "event", "status", "attempts", "nextAttemptAt", "createdAt", "finishedAt"],
        "properties": {
            "deliveryId": {"type": "string", "format": "uuid", "description": "the message's webhook-id header"},
            "taskId": _UUID,
            "event": {"type": "string", "enum": list(WEBHOOK_EVENTS)},
            "status": {"type": "string", "enum": list(DELIVERY_STATUSES)},
            "attempts": {"type": "array", "items": _ref("DeliveryAttempt")},
            "nextAttemptAt": _TIMESTAMP_OR_NULL,
            "createdAt": _TIMESTAMP,
            "finishedAt": _TIMESTAMP_OR_NULL,
        },
    },
    "DeliveryLog": {
        "type": "object",
        "required": ["deliveries", "next"],
        "properties": {
            "deliveries": {"type": "array", "items": _ref("Delivery")},
            "next": _NEXT_CURSOR,
        },
    },
    "Health": {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
}


_WEBHOOK_ID = {
    "name": "webhookId",
    "in": "path",
    "required": True,
    "schema": _UUID,
    "description": "the webhook's id",
}
_WEBHOOK_ERRORS = {
    "400": _error("malformed webhook id", ["invalid_webhook_id"]),
    "404": _error("no such webhook for this key (also for other users' webhooks)", ["webhook_not_found"]),
    **_AUTH_ERRORS,
    **_UNAVAILABLE,
}


def _webhook_paths() -> dict[str, Any]:
    webhook_op = {"parameters": [_WEBHOOK_ID]}
    return {
        "/api/webhooks": {
            "post": _operation(
                "Register a webhook: every task of yours that reaches one of the events is POSTed to the URL, "
                "signed (docs/api.md)",
                {
                    "201": _with_headers(
                        _ok("WebhookCreated", "registered; keep the secret, it is not shown again"),
                        Location="the webhook's own URL",
                    ),
                    "400": _error(
                        "bad request, or a target that is not allowed",
                        [
                            "invalid_json",
                            "invalid_field",
                            "invalid_webhook_url",
                            "invalid_events",
                            "webhook_target_forbidden",
                        ],
                    ),
                    "409": _error("WEBHOOK_MAX_PER_USER reached", ["webhook_limit_reached"]),
                    "413": _error(f"body over {MAX_BODY_BYTES // 1024} KiB", ["request_too_large"]),
                    **_AUTH_ERRORS,
                    **_UNAVAILABLE,
                },
                requestBody={"required": True, "content": {_JSON: {"schema": _ref("WebhookRequest")}}},
            ),
            "get": _operation(
                "The caller's webhooks (without their secrets)",
                {"200": _ok("WebhookList", "the webhooks, oldest first"), **_AUTH_ERRORS, **_UNAVAILABLE},
            ),
        },
        "/api/webhooks/{webhookId}": {
            **webhook_op,
            "get": _operation(
                "One webhook (without its secret)", {"200": _ok("Webhook", "the webhook"), **_WEBHOOK_ERRORS}
            ),
            "delete": _operation(
                "Delete a webhook; its deliveries not yet made are dropped",
                {"200": _ok("WebhookDeleted", "deleted"), **_WEBHOOK_ERRORS},
            ),
        },
        "/api/webhooks/{webhookId}/deliveries": {
            **webhook_op,
            "get": _operation(
                "The webhook's delivery log, newest first: each message and every attempt of it",
                {
                    "200": _ok("DeliveryLog", "a page of deliveries"),
                    **_WEBHOOK_ERRORS,
                    "400": _error("bad query or id", ["invalid_webhook_id", "invalid_limit", "invalid_cursor"]),
                },
                parameters=[
                    _LIMIT,
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "the 'next' of the previous page",
                    },
                ],
            ),
        },
    }


def _operation(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": responses, **extra}


def openapi_spec(settings: Settings) -> dict[str, Any]:
    """The description of this deployment (its limits are its settings')."""
    task_op = {"parameters": [_TASK_ID]}
    multipart = {"multipart/form-data": {"schema": _ref("UploadForm")}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "untxt",
            "version": "1.0.0",
            "description": "OCR service: upload scans and PDFs, get their text back as HTML, text or JSON. "
            'Every answer is {"success": true, "data": ...} or {"success": false, "error": {"code", "message"}}.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "an untxt API key"}},
            "schemas": _SCHEMAS,
        },
        "paths": {
            "/health": {
                "get": _operation(
                    "Health of the API's backing stores",
                    {"200": _ok("Health", "every store answers"), "503": _ok("Health", "a store is down")},
                    security=[],
                )
            },
            "/metrics": {
                "get": _operation(
                    "Prometheus metrics of this API process (an operator's key; no user or task ids in them)",
                    {
                        "200": _text("text/plain; version=0.0.4", "Prometheus text exposition format"),
                        **_AUTH_ERRORS,
                        "403": _error("the key is not an operator's", ["operator_only"]),
                    },
                )
            },
            "/openapi.json": {
                "get": _operation(
                    "This description", {"200": {"description": "OpenAPI 3", "content": {_JSON: {}}}}, security=[]
                )
            },
            "/": {
                "get": _operation(
                    "The web dashboard (sign in with an API key; its assets are under /static/)",
                    {"200": _text("text/html", "the dashboard page")},
                    security=[],
                )
            },
            "/docs": {
                "get": _operation(
                    "Swagger UI for this description", {"200": _text("text/html", "the UI page")}, security=[]
                )
            },
            "/ws": {
                "get": _operation(
                    "Live task updates over a WebSocket (messages: docs/api.md)",
                    {
                        "101": {"description": "switched to the WebSocket protocol"},
                        "400": _error("not a WebSocket upgrade request", ["bad_request"]),
                        "401": _error(
                            "missing, unknown or revoked API key; unknown, expired or used ticket",
                            ["unauthorized", "invalid_ticket"],
                        ),
                        "403": _error("browser origin not allowed", ["origin_not_allowed"]),
                    },
                    parameters=[
                        {
                            "name": "ticket",
                            "in": "query",
                            "required": False,
                            "description": "a single-use ticket from POST /api/ws-ticket (what browsers should use)",
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "token",
                            "in": "query",
                            "required": False,
                            "description": "the API key, for clients that cannot set Authorization "
                            "(browsers: prefer a ticket, as a URL may be logged)",
                            "schema": {"type": "string"},
                        },
                    ],
                )
            },
            "/api/ws-ticket": {
                "post": _operation(
                    "A single-use ticket for opening /ws without the API key in the URL "
                    f"(valid {TICKET_TTL_SECONDS} s)",
                    {"200": _ok("WsTicket", "the ticket"), **_AUTH_ERRORS, **_UNAVAILABLE},
                )
            },
            "/api/tasks": {
                "post": _operation(
                    "Upload one file for OCR",
                    {
                        "200": _ok("Task", "repeat of an earlier request with the same Idempotency-Key"),
                        "202": {**_accepted("Upload", "accepted and queued"), "links": _task_links()},
                        **_UPLOAD_ERRORS,
                        "409": _error(
                            "a request with the same Idempotency-Key is in progress", ["idempotency_conflict"]
                        ),
                        "422": _error(
                            "the Idempotency-Key was used for a different file or different fields",
                            ["idempotency_key_mismatch"],
                        ),
                        **_AUTH_ERRORS,
                        **_UNAVAILABLE,
                    },
                    parameters=[
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
                            "description": f"the same key from the same user within {IDEMPOTENCY_WINDOW}, "
                            "with the same file and fields, returns the original task; with a different file or "
                            "fields, 422",
                        }
                    ],
                    requestBody={"required": True, "content": multipart},
                ),
                "get": _operation(
                    "The caller's tasks, newest first",
                    {
                        "200": _ok("TaskList", "a page of tasks"),
                        "400": _error(
                            "bad query",
                            ["invalid_limit", "invalid_offset", "invalid_status", "invalid_tag", "invalid_cursor"],
                        ),
                        **_AUTH_ERRORS,
                        **_UNAVAILABLE,
                    },
                    parameters=[
                        _LIMIT,
                        {
                            "name": "offset",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
                        },
                        {
                            "name": "status",
                            "in": "query",
                            "schema": _STATUS,
                        },
                        {"name": "tag", "in": "query", "schema": _TAG_FIELD, "description": "only tasks with this tag"},
                        {
                            "name": "cursor",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": "the 'next' of the previous page: keyset paging that neither skips nor "
                            "repeats tasks while new ones arrive (not with offset)",
                        },
                    ],
                ),
            },
            "/api/tasks/batch": {
                "post": _operation(
                    f"Upload up to {MAX_BATCH_FILES} files; each gets its own outcome and costs one rate-limit token",
                    {
                        "202": _ok("BatchResult", "at least one file accepted"),
                        "400": {
                            **_error(
                                "a bad request, or no file accepted (then error.results holds each file's outcome)",
                                [
                                    "no_file_accepted",
                                    "too_many_files",
                                    "missing_file",
                                    "invalid_multipart",
                                    "invalid_tag",
                                ],
                            ),
                            "content": {_JSON: {"schema": _ref("BatchRejected")}},
                        },
                        "413": _error("body too large", ["file_too_large"]),  # per-file limits are outcomes
                        "429": _error("rate limited", ["rate_limited"]),
                        **_AUTH_ERRORS,
                        **_UNAVAILABLE,
                    },
                    requestBody={"required": True, "content": {"multipart/form-data": {"schema": _ref("BatchForm")}}},
                )
            },
            "/api/tasks/{taskId}": {
                **task_op,
                "get": _operation(
                    "One task, with resultUrl once completed",
                    {**_conditional("Task", "the task"), **_BAD_ID, **_NOT_FOUND, **_AUTH_ERRORS, **_UNAVAILABLE},
                    parameters=[_IF_NONE_MATCH],
                ),
                "delete": _operation(
                    "Delete the task, its file and every stored object",
                    {
                        "200": _ok("Deleted", "deleted"),
                        **_BAD_ID,
                        **_NOT_FOUND,
                        "409": _error("the task is being processed", ["task_processing"]),
                        **_AUTH_ERRORS,
                        **_UNAVAILABLE,
                    },
                ),
            },
            "/api/tasks/{taskId}/status": {
                **task_op,
                "get": _operation(
                    "Status and progress (cheap: Redis first, then PostgreSQL)",
                    {
                        **_conditional("TaskStatus", "the status"),
                        **_BAD_ID,
                        **_NOT_FOUND,
                        **_AUTH_ERRORS,
                        **_UNAVAILABLE,
                    },
                    parameters=[_IF_NONE_MATCH],
                ),
            },
            "/api/tasks/{taskId}/result": {
                **task_op,
                "get": _operation(
                    "A presigned URL of the result",
                    {
                        "200": _ok("Result", "the URL"),
                        "400": _error("bad query", ["invalid_task_id", "invalid_expiresin", "invalid_format"]),
                        "404": _error(
                            "no such task for this key, or a format its results lack (completed before it existed)",
                            ["task_not_found", "format_not_available"],
                        ),
                        "409": _error("not completed yet", ["result_not_ready"]),
                        **_AUTH_ERRORS,
                        **_UNAVAILABLE,
                    },
                    parameters=[
                        {
                            "name": "expiresIn",
                            "in": "query",
                            "description": "the URL's lifetime in seconds, at most PRESIGN_MAX_SECONDS "
                            "(default PRESIGN_EXPIRES_SECONDS)",
                            "schema": {
                                "type": "integer",
                                "minimum": PRESIGN_MIN_SECONDS,
                                "maximum": settings.presign_max_seconds,
                            },
                        },
                        {
                            "name": "format",
                            "in": "query",
                            "description": "; ".join(f"`{k}`: {f.description}" for k, f in keys.RESULT_FORMATS.items()),
                            "schema": {
                                "type": "string",
                                "enum": list(keys.RESULT_FORMATS),
                                "default": keys.RESULT_PRIMARY,
                            },
                        },
                    ],
                ),
            },
            "/api/tasks/{taskId}/cancel": {
                **task_op,
                "post": _operation(
                    "Cancel: queued at once; processing at the next page boundary",
                    {
                        "200": _ok("Task", "cancelled"),
                        "202": _accepted("Task", "the worker stops at its next page"),
                        **_BAD_ID,
                        **_NOT_FOUND,
                        "409": _error("already finished", ["task_not_cancellable"]),
                        **_AUTH_ERRORS,
                        **_UNAVAILABLE,
                    },
                ),
            },
            "/api/tasks/{taskId}/retry": {
                **task_op,
                "post": _operation(
                    "Queue a failed or cancelled task again",
                    {
                        "202": _accepted("Task", "queued again"),
                        **_BAD_ID,
                        **_NOT_FOUND,
                        "409": _error("not failed or cancelled", ["task_not_retryable"]),
                        "429": _QUOTA_OR_RATE,
                        **_AUTH_ERRORS,
                        **_UNAVAILABLE,
                    },
                ),
            },
            "/api/queue/stats": {
                "get": _operation(
                    "The caller's tasks by status and queued per priority; the whole queue's figures for operators",
                    {"200": _ok("QueueStats", "the figures"), **_AUTH_ERRORS, **_UNAVAILABLE},
                )
            },
            **_webhook_paths(),
        },
    }
