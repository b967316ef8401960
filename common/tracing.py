"""OpenTelemetry spans across an upload's way: the API's request, storing the upload, enqueueing;
the worker's job, fetching the upload, reading the pages, storing the results. One trace per
upload: the W3C trace context travels in the job message.

Off unless configured (``configure_tracing``): OTLP over http/protobuf when
OTEL_EXPORTER_OTLP_ENDPOINT is set, spans as JSON lines on stderr (the service's logs/*.out) with
OTEL_TRACES_EXPORTER=console. Off, there is no provider and no exporter thread, and a span is a
shared do-nothing block (scripts/bench/tracing_off.py).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, TracerProvider

from common.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

# This module's, not OpenTelemetry's global provider: a test installs an in-memory one and takes
# it away again, which the global (set once per process) does not allow. None: off.
_tracer: trace.Tracer | None = None
# Off, a span is this shared do-nothing block: 0.3 µs, where even OpenTelemetry's no-op tracer
# costs 3.6 µs a span (it still makes the span current in the context), 6 µs with a parent.
_OFF = nullcontext(trace.INVALID_SPAN)

Attributes = Mapping[str, str | int | float | bool]


def install(provider: TracerProvider | None) -> None:
    """Spans go to ``provider`` from now on; None: tracing off."""
    global _tracer
    _tracer = provider.get_tracer("untxt") if provider is not None else None


def configure_tracing(service: str, settings: Settings) -> SdkTracerProvider | None:
    """At a service's start, from its settings; nothing at all when tracing is off. Returns the
    provider it installed (tests flush it)."""
    if settings.traces_exporter == "none" or (settings.traces_exporter != "console" and not settings.otlp_endpoint):
        return None
    # Imported only when on: the SDK and the OTLP exporter take 70-90 ms to import here.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    exporter: SpanExporter
    if settings.traces_exporter == "console":
        exporter = ConsoleSpanExporter(out=sys.stderr, formatter=lambda span: span.to_json(indent=None) + "\n")
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The variable names the collector's base URL; the traces path is the exporter's to add
        # only when it reads the variable itself (the SDK's rule), so add it here.
        assert settings.otlp_endpoint is not None
        exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/traces")
    # Headers, timeout, sampler and resource attributes come from the other OTEL_* variables,
    # which the SDK reads from the environment itself. It flushes the batch at exit.
    provider = SdkTracerProvider(resource=Resource.create({"service.name": f"untxt-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    install(provider)
    return provider


def span(
    name: str,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Attributes | None = None,
    parent: Mapping[str, str] | None = None,
) -> AbstractContextManager[Span]:
    """A span around the block: the current span's child, or ``parent``'s (W3C headers from
    another process: a caller's request, the job message's ``trace``)."""
    if _tracer is None:
        return _OFF
    context = propagate.extract(parent) if parent else None
    return _tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes)


def carrier() -> dict[str, str]:
    """The current span's context as W3C headers (traceparent, tracestate); empty when off."""
    headers: dict[str, str] = {}
    if _tracer is not None:
        propagate.inject(headers)
    return headers
