"""Test resources on the real stack, isolated from a developer's data.

The stores are the ones ``./start_services.sh --infra-only`` runs (or the ones DATABASE_URL /
REDIS_URL / S3_* name), but the tests use their own database (``<name>_test``, recreated per
session), their own Redis logical database (15, flushed per session) and their own bucket.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import boto3
import psycopg2
import pytest
import redis
from psycopg2 import sql

from common.s3config import s3_client_kwargs
from common.settings import REPO_ROOT, Settings
from database.migrate import migrate

TEST_REDIS_DB = 15
CORPUS = REPO_ROOT.parent / "shared" / "corpus"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that restart the stack run last, so no other test sees its stores bounce."""
    items.sort(key=lambda item: item.get_closest_marker("restarts_stack") is not None)


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def _recreate_database(url: str) -> None:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    conn = psycopg2.connect(_with_path(url, "/postgres"))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    try:
        base = Settings.from_env()
    except ValueError as exc:
        pytest.exit(f"{exc}. Run the README's test command (scripts/test.sh), which starts the stack.", 2)
    db_name = urlsplit(base.database_url).path.lstrip("/") or "untxt"
    test = dataclasses.replace(
        base,
        database_url=_with_path(base.database_url, f"/{db_name}_test"),
        redis_url=_with_path(base.redis_url, f"/{TEST_REDIS_DB}"),
        s3_bucket=f"{base.s3_bucket}-test",
        work_dir=str(tmp_path_factory.mktemp("work")),
        log_dir=str(tmp_path_factory.mktemp("logs")),
        worker_concurrency=1,
    )
    _recreate_database(test.database_url)
    migrate(test.database_url)
    client = redis.Redis.from_url(test.redis_url)
    client.flushdb()
    client.close()
    s3 = boto3.client("s3", **s3_client_kwargs(test))
    try:
        s3.head_bucket(Bucket=test.s3_bucket)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=test.s3_bucket)
    return test


@pytest.fixture(scope="session")
def s3(settings: Settings):  # type: ignore[no-untyped-def]
    return boto3.client("s3", **s3_client_kwargs(settings))


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url)
    yield client
    client.close()


@pytest.fixture
def pg(settings: Settings) -> Iterator[psycopg2.extensions.connection]:
    conn = psycopg2.connect(settings.database_url)
    conn.autocommit = True
    yield conn
    conn.close()


def corpus_file(name: str) -> Path:
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared corpus sits beside the checkout on dev machines and CI)")
    return path
