"""Test resources on the real stack, isolated from a developer's data.

The stores are the ones ``./start_services.sh --infra-only`` runs (or the ones DATABASE_URL /
REDIS_URL / S3_* name), but the tests use their own database (``<name>_test``, recreated per
session with the same roles as the real one: the tests connect as the DML-only app role), their
own Redis logical database (15, flushed per session) under their own key prefix, and their own
bucket (which, like the real one, requires SSE-KMS).

Two test sessions may share one stack (two people, or two checkouts of one machine) when the
second sets ``UNTXT_TEST_SUFFIX`` (e.g. ``b``) and ``UNTXT_TEST_REDIS_DB`` (e.g. ``14``): its
database, bucket and key prefix then carry the suffix. Tests marked ``restarts_stack`` bounce
the shared stores, so run those in one session only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import boto3
import psycopg2
import pytest
import redis
from psycopg2 import sql

from common.jobqueue import JobQueue, RedisNames
from common.s3config import s3_client_kwargs
from common.settings import REPO_ROOT, Settings, effective_environ
from database.migrate import set_up
from database.roles import DatabaseUrls, with_database
from devstack.s3store import require_sse_kms

_SUFFIX = os.environ.get("UNTXT_TEST_SUFFIX", "")
TEST_REDIS_DB = int(os.environ.get("UNTXT_TEST_REDIS_DB", "15"))
# Not the default ``ocr``: proves every part (API, worker, scripts) honours REDIS_KEY_PREFIX.
TEST_KEY_PREFIX = f"untxt-test{_SUFFIX and '-' + _SUFFIX}"
CORPUS = REPO_ROOT.parent / "shared" / "corpus"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that restart the stack run last, so no other test sees its stores bounce."""
    items.sort(key=lambda item: item.get_closest_marker("restarts_stack") is not None)


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def _drop_database(urls: DatabaseUrls) -> None:
    # The superuser where the local stack knows it; else whoever migrations run as.
    conn = psycopg2.connect(with_database(urls.admin or urls.owner, "postgres"))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (urls.database,),
            )
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(urls.database)))
    finally:
        conn.close()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    try:
        base = Settings.from_env()
    except ValueError as exc:
        pytest.exit(f"{exc}. Run the README's test command (scripts/test.sh), which starts the stack.", 2)
    db_name = urlsplit(base.database_url).path.lstrip("/") or "untxt"
    urls = DatabaseUrls.from_env(effective_environ()).for_database(f"{db_name}_test{_SUFFIX and '_' + _SUFFIX}")
    test = base.replace(
        database_url=urls.app,
        redis_url=_with_path(base.redis_url, f"/{TEST_REDIS_DB}"),
        s3_bucket=f"{base.s3_bucket}-test{_SUFFIX and '-' + _SUFFIX}",
        work_dir=str(tmp_path_factory.mktemp("work")),
        log_dir=str(tmp_path_factory.mktemp("logs")),
        worker_concurrency=1,
        redis_key_prefix=TEST_KEY_PREFIX,
        # No in-process API delivers webhooks unless its test asks: a URL some test registered
        # (the fuzzer's, say) is never sent anything from here.
        webhooks=base.webhooks.replace(concurrency=0),
    )
    _drop_database(urls)
    set_up(urls, create_database=True)
    client = redis.Redis.from_url(test.redis_url)
    client.flushdb()
    client.close()
    s3 = boto3.client("s3", **s3_client_kwargs(test))
    try:
        s3.head_bucket(Bucket=test.s3_bucket)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=test.s3_bucket)
    require_sse_kms(s3, test.s3_bucket, test.kms_key_id)
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
def names(settings: Settings) -> RedisNames:
    return RedisNames(settings.redis_key_prefix)


@pytest.fixture
def queue(redis_client: redis.Redis, names: RedisNames) -> JobQueue:
    """The worker's face of the job protocol, on the tests' Redis database and prefix."""
    return JobQueue(redis_client, names)


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
