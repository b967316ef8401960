"""Prometheus exposition for the API's and the worker's /metrics, through prometheus-client.

Each app builds its own registry (``new_registry``) instead of using the library's global one,
so a test process can build several apps without "Duplicated timeseries" errors, and each
registry carries the process collectors (CPU, memory, open files, GC, Python version).
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder

# Counters and histograms would each add a ``…_created`` series: names /metrics never had, a
# timestamp per label set that no dashboard here uses.
disable_created_metrics()


def new_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The body and its content type, in the format the scraper's ``Accept`` asks for
    (OpenMetrics for a Prometheus server that prefers it; else the classic text format 0.0.4)."""
    encode, content_type = choose_encoder(accept or "")
    return encode(registry), content_type
