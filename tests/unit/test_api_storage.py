"""backend/storage.py's listing: every page of a prefix, each call under the store deadline."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from backend import storage
from common.settings import Settings

SETTINGS = Settings.from_env(
    {
        "DATABASE_URL": "postgresql://unused",
        "REDIS_URL": "redis://unused",
        "S3_BUCKET": "b",
        "KMS_KEY_ID": "k",
        "UNTXT_ENV_FILE": "/nonexistent",
    }
)


class _Pages:
    """list_objects_v2 answering in pages of two keys, as S3 does past MaxKeys."""

    def __init__(self, keys: list[str], delay: float = 0.0) -> None:
        self.keys, self.delay, self.calls = keys, delay, []

    async def list_objects_v2(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        await asyncio.sleep(self.delay)
        start = int(params.get("ContinuationToken", 0))
        matching = [k for k in self.keys if k.startswith(params["Prefix"])]
        page, more = matching[start : start + 2], start + 2 < len(matching)
        return {
            **({"Contents": [{"Key": k} for k in page]} if page else {}),
            "IsTruncated": more,
            **({"NextContinuationToken": str(start + 2)} if more else {}),
        }


def test_list_keys_follows_every_page() -> None:
    keys = [f"results/u/2026-03/f/{n}/result.html" for n in range(5)]
    s3 = _Pages(keys)
    assert asyncio.run(storage.list_keys(s3, SETTINGS, "results/u/2026-03/f/")) == keys
    assert [c.get("ContinuationToken") for c in s3.calls] == [None, "2", "4"]
    assert {c["Bucket"] for c in s3.calls} == {"b"}


def test_list_keys_of_an_empty_prefix_is_empty() -> None:
    assert asyncio.run(storage.list_keys(_Pages([]), SETTINGS, "results/u/")) == []


def test_list_keys_gives_up_at_the_store_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "STORE_DEADLINE_SECONDS", 0.05)
    with pytest.raises(storage.StoreTimeoutError):
        asyncio.run(storage.list_keys(_Pages(["results/a"], delay=1.0), SETTINGS, "results/"))
