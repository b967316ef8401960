"""The list route's keyset cursor: where the next page starts, opaque to clients.

A cursor names the last task of a page by its place in the list's order, (created_at, id)
newest first, so the next page starts right after it however many tasks arrive meanwhile (an
offset would shift and repeat or skip tasks). It is not signed: it only narrows a query that is
already limited to the caller's own tasks.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime, timedelta

from backend.errors import ApiError

# The most items a list route gives per page (?limit=), and the furthest ?offset= it pages to
# (deeper pages: follow the cursor).
MAX_PAGE_SIZE = 100
MAX_OFFSET = 1_000_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def encode_cursor(created_at: datetime, task_id: str) -> str:
    # Integer microseconds: exactly PostgreSQL's timestamptz resolution, so the row compares
    # equal to itself and nothing at the page boundary is skipped or repeated.
    micros = (created_at - _EPOCH) // _MICROSECOND
    raw = f"{micros}:{task_id}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        micros, task_id = raw.split(":", 1)
        return _EPOCH + int(micros) * _MICROSECOND, str(uuid.UUID(task_id))
    except (ValueError, binascii.Error, OverflowError):
        raise ApiError(400, "invalid_cursor", "cursor must be a 'next' value from an earlier page") from None
