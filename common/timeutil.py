"""ISO-8601 UTC timestamps, the only form untxt shows to anyone."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(when: datetime | None) -> str | None:
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now_iso() -> str:
    return iso_utc(datetime.now(UTC)) or ""
