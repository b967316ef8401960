"""Helpers for the API tests: an in-process app on the real stores, users, forms."""

from __future__ import annotations

import io
import uuid
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from backend.app import create_app
from backend.users import create_user_with_key
from common.settings import Settings
from tests.support import text_page_png

PNG = text_page_png(["Hello untxt"])


async def user_headers(settings: Settings, operator: bool = False) -> tuple[str, dict[str, str]]:
    user_id, key = await create_user_with_key(settings.database_url, f"{uuid.uuid4().hex}@example.com", operator)
    return user_id, {"Authorization": f"Bearer {key}"}


def form(data: bytes | io.BytesIO = PNG, filename: str = "scan.png", **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("file", data, filename=filename, content_type="application/octet-stream")
    return form


async def error_of(resp: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    assert body["success"] is False
    return body["error"]


def objects_under(s3: Any, settings: Settings, prefix: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=settings.s3_bucket, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> TestClient:
    return await aiohttp_client(create_app(settings))
