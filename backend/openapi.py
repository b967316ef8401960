"""The OpenAPI 3 description of the API (served at /openapi.json, browsable at /docs)."""

from __future__ import annotations

from typing import Any

from common.statuses import TaskStatus

_JSON = "application/json"


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
    "schema": {"type": "string", "format": "uuid"},
    "description": "the task's id",
}
_BAD_ID = {"400": _error("malformed task id", ["invalid_task_id"])}
_NOT_FOUND = {"404": _error("no such task for this key (also for other users' tasks)", ["task_not_found"])}
_UPLOAD_ERRORS = {
    "400": _error(
        "bad request",
        [
            "invalid_request",
            "invalid_multipart",
            "missing_file",
            "too_many_files",
            "empty_file",
            "invalid_priority",
            "invalid_language",
            "invalid_field",
            "invalid_idempotency_key",
        ],
    ),
    "413": _error(
        "file over MAX_UPLOAD_BYTES, or an image whose header states more than MAX_IMAGE_PIXELS",
        ["file_too_large", "image_too_large"],
    ),
    "415": _error("content is not PNG, JPEG, TIFF, WebP, BMP, GIF or PDF", ["unsupported_media_type"]),
    "429": _error("per-key upload rate limit; see Retry-After", ["rate_limited"]),
}

_STRING_OR_NULL = {"type": "string", "nullable": True}
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
            "priority": {"type": "integer", "minimum": 1, "maximum": 10, "default": 5},
            "language": _LANGUAGE,
        },
    },
    "BatchForm": {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {"type": "array", "items": {"type": "string", "format": "binary"}, "maxItems": 50},
            "priority": {"type": "integer", "minimum": 1, "maximum": 10, "default": 5},
            "language": _LANGUAGE,
        },
    },
    "Upload": {
        "type": "object",
        "properties": {
            "taskId": {"type": "string", "format": "uuid"},
            "fileId": {"type": "string", "format": "uuid"},
            "filename": {"type": "string"},
            "fileSize": {"type": "integer"},
            "mimeType": {"type": "string"},
            "s3Key": {"type": "string"},
            "fileHash": {"type": "string", "description": "SHA-256, hex"},
            "status": {"type": "string", "enum": [s.value for s in TaskStatus]},
            "priority": {"type": "integer"},
            "language": {"type": "string"},
            "queuePosition": {"type": "integer", "nullable": True},
            "createdAt": _TIMESTAMP,
        },
    },
    "Task": {
        "type": "object",
        "properties": {
            "taskId": {"type": "string", "format": "uuid"},
            "status": {"type": "string", "enum": [s.value for s in TaskStatus]},
            "priority": {"type": "integer"},
            "language": {"type": "string"},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "attempts": {"type": "integer"},
            "queuePosition": {"type": "integer", "nullable": True},
            "file": {
                "type": "object",
                "properties": {
                    "fileId": {"type": "string", "format": "uuid"},
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
        "properties": {
            "tasks": {"type": "array", "items": _ref("Task")},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    },
    "BatchResult": {
        "type": "object",
        "properties": {
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "filename": {"type": "string"},
                        "success": {"type": "boolean"},
                        "data": _ref("Upload"),
                        "error": {"type": "object"},
                    },
                },
            },
            "accepted": {"type": "integer"},
            "rejected": {"type": "integer"},
            "maxFiles": {"type": "integer"},
        },
    },
    "TaskStatus": {
        "type": "object",
        "properties": {
            "taskId": {"type": "string", "format": "uuid"},
            "status": {"type": "string", "enum": [s.value for s in TaskStatus]},
            "progress": {"type": "integer"},
            "message": _STRING_OR_NULL,
            "queuePosition": {"type": "integer", "nullable": True},
            "updatedAt": _TIMESTAMP_OR_NULL,
        },
    },
    "Result": {
        "type": "object",
        "properties": {
            "taskId": {"type": "string", "format": "uuid"},
            "resultUrl": {"type": "string", "description": "presigned GET (SigV4)"},
            "expiresIn": {"type": "integer"},
            "format": {"type": "string", "enum": ["html", "txt", "json"]},
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
    "QueueStats": {
        "type": "object",
        "properties": {
            "queued": {"type": "integer"},
            "byPriority": {"type": "object", "additionalProperties": {"type": "integer"}},
            "mine": {"type": "object", "additionalProperties": {"type": "integer"}},
            "global": {"type": "object", "description": "operators only"},
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


def _operation(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": responses, **extra}


def openapi_spec() -> dict[str, Any]:
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
                    "Prometheus metrics of this API process (no user or task ids; restrict at the ingress)",
                    {"200": _text("text/plain; version=0.0.4", "Prometheus text exposition format")},
                    security=[],
                )
            },
            "/openapi.json": {
                "get": _operation(
                    "This description", {"200": {"description": "OpenAPI 3", "content": {_JSON: {}}}}, security=[]
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
                        "401": _error("missing, unknown or revoked API key", ["unauthorized"]),
                        "403": _error("browser origin not allowed", ["origin_not_allowed"]),
                    },
                    parameters=[
                        {
                            "name": "token",
                            "in": "query",
                            "required": False,
                            "description": "the API key, for browsers that cannot set Authorization",
                            "schema": {"type": "string"},
                        }
                    ],
                )
            },
            "/api/tasks": {
                "post": _operation(
                    "Upload one file for OCR",
                    {
                        "200": _ok("Task", "repeat of an earlier request with the same Idempotency-Key"),
                        "202": _ok("Upload", "accepted and queued"),
                        **_UPLOAD_ERRORS,
                        **_AUTH_ERRORS,
                        **_UNAVAILABLE,
                    },
                    parameters=[
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                            "description": "the same key from the same user within 24 h returns the original task",
                        }
                    ],
                    requestBody={"required": True, "content": multipart},
                ),
                "get": _operation(
                    "The caller's tasks, newest first",
                    {
                        "200": _ok("TaskList", "a page of tasks"),
                        "400": _error("bad query", ["invalid_limit", "invalid_offset", "invalid_status"]),
                        **_AUTH_ERRORS,
                        **_UNAVAILABLE,
                    },
                    parameters=[
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                        {
                            "name": "status",
                            "in": "query",
                            "schema": {"type": "string", "enum": [s.value for s in TaskStatus]},
                        },
                    ],
                ),
            },
            "/api/tasks/batch": {
                "post": _operation(
                    "Upload up to 50 files; each gets its own outcome and costs one rate-limit token",
                    {
                        "202": _ok("BatchResult", "at least one file accepted"),
                        "400": _error(
                            "nothing accepted, or a bad request",
                            ["too_many_files", "missing_file", "invalid_multipart"],
                        ),
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
                    {"200": _ok("Task", "the task"), **_BAD_ID, **_NOT_FOUND, **_AUTH_ERRORS, **_UNAVAILABLE},
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
                    {"200": _ok("TaskStatus", "the status"), **_BAD_ID, **_NOT_FOUND, **_AUTH_ERRORS, **_UNAVAILABLE},
                ),
            },
            "/api/tasks/{taskId}/result": {
                **task_op,
                "get": _operation(
                    "A presigned URL of the result",
                    {
                        "200": _ok("Result", "the URL"),
                        "400": _error("bad query", ["invalid_task_id", "invalid_expiresin", "invalid_format"]),
                        **_NOT_FOUND,
                        "409": _error("not completed yet", ["result_not_ready"]),
                        **_AUTH_ERRORS,
                        **_UNAVAILABLE,
                    },
                    parameters=[
                        {
                            "name": "expiresIn",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 60, "maximum": 604800},
                        },
                        {
                            "name": "format",
                            "in": "query",
                            "schema": {"type": "string", "enum": ["html", "txt", "json"]},
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
                        "202": _ok("Task", "the worker stops at its next page"),
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
                        "202": _ok("Task", "queued again"),
                        **_BAD_ID,
                        **_NOT_FOUND,
                        "409": _error("not failed or cancelled", ["task_not_retryable"]),
                        **_AUTH_ERRORS,
                        **_UNAVAILABLE,
                    },
                ),
            },
            "/api/queue/stats": {
                "get": _operation(
                    "Queue lengths per priority, the caller's tasks by status, global figures for operators",
                    {"200": _ok("QueueStats", "the figures"), **_AUTH_ERRORS, **_UNAVAILABLE},
                )
            },
        },
    }
