"""Prometheus text exposition format (version 0.0.4), for the API's and the worker's /metrics.

A few lines of formatting rather than a client library: both services keep their own counters
already, and only need them written out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = Mapping[str, str]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    # Exact: counters run into the millions, and "%g" would round them to six digits.
    return str(value) if isinstance(value, int) else repr(float(value))


def sample(name: str, labels: Labels, value: float) -> str:
    if not labels:
        return f"{name} {_number(value)}"
    rendered = ",".join(f'{key}="{_escape(str(val))}"' for key, val in labels.items())
    return f"{name}{{{rendered}}} {_number(value)}"


def header(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[Labels, float]]) -> list[str]:
    """One metric family: its HELP and TYPE lines, then a line per (labels, value)."""
    return header(name, kind, help_text) + [sample(name, labels, value) for labels, value in samples]


def render(families: Iterable[list[str]]) -> str:
    return "\n".join(line for lines in families for line in lines) + "\n"
