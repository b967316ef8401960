"""Structured (JSON lines) logging to logs/<service>.log and to stderr, through python-json-logger.

A line holds ``ts``, ``level``, ``service``, ``logger``, ``msg``, every field given with
``extra={...}``, ``exc`` (a traceback), and the fields of the log context it was written in:
``request_id`` and ``task_id`` (see ``log_context``), so every line of one upload or one job can
be found by either; with tracing on, also ``trace_id`` and ``span_id``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

_CONTEXT: ContextVar[Mapping[str, str]] = ContextVar("untxt_log_context", default=MappingProxyType({}))

# A caller's X-Request-Id is kept if it looks like an id (a UUID, a ULID, a proxy's hex or
# dotted id): it lands in log lines and job messages, so no spaces, quotes or control characters.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def sane_request_id(value: object) -> str | None:
    return value if isinstance(value, str) and _REQUEST_ID.fullmatch(value) else None


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Every line logged inside the block by this thread or asyncio task (and the tasks it
    starts) carries ``fields``; None ones are left out, and a line's own ``extra`` wins."""
    token = _CONTEXT.set({**_CONTEXT.get(), **{key: value for key, value in fields.items() if value is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _CONTEXT.get().items():
            record.__dict__.setdefault(key, value)
        # With tracing on, a line inside a span names it: from a log line to its trace and back.
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.__dict__.setdefault("trace_id", trace.format_trace_id(span.trace_id))
            record.__dict__.setdefault("span_id", trace.format_span_id(span.span_id))
        return True


def structured(handler: logging.Handler, service: str) -> logging.Handler:
    """``handler`` writing this project's JSON lines (tests attach one to a buffer)."""
    handler.setFormatter(
        JsonFormatter(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger", "message": "msg", "exc_info": "exc"},
            static_fields={"service": service},
            timestamp="ts",
            json_ensure_ascii=False,
        )
    )
    handler.addFilter(_ContextFilter())
    return handler


def configure_logging(service: str, log_dir: str, level: str = "INFO") -> None:
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [logging.FileHandler(Path(log_dir) / f"{service}.log", encoding="utf-8")]
    # Under the stack scripts stderr is already a file in logs/; echo only to a terminal.
    if sys.stderr.isatty():
        handlers.append(logging.StreamHandler(sys.stderr))
    root = logging.getLogger()
    root.handlers.clear()
    for handler in handlers:
        root.addHandler(structured(handler, service))
    root.setLevel(level.upper())
    # Library chatter at INFO (every S3 request) would drown the service's own lines.
    for noisy in ("botocore", "aiobotocore", "boto3", "urllib3", "werkzeug", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
