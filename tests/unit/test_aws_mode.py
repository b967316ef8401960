"""AWS mode: ``S3_BUCKET`` set and no ``S3_ENDPOINT_URL`` means AWS S3 with AWS KMS.

There is no AWS account here, so this is moto's narrow case (its design says so): ``mock_aws``
stands in for S3 and KMS in the worker's boto3 round trip. The API's client is aiobotocore,
which moto cannot serve in-process, so its requests are captured as botocore signs them, just
before they would leave, and compared with the worker's. Everything else in the suite runs
against the real local stack.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from aiohttp import web
from moto import mock_aws

from backend import storage
from backend.resources import S3, SETTINGS, s3_ctx
from common.settings import Settings
from worker.storage import ObjectStore

REGION = "eu-west-1"
BUCKET = "untxt-prod-results"


class _Captured(Exception):  # noqa: N818 - a signal that stops a request before it is sent
    """Carries the prepared request out of botocore's before-send hook."""

    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def _settings(kms_key_id: str) -> Settings:
    return Settings.from_env(
        {
            "DATABASE_URL": "postgresql://unused",
            "REDIS_URL": "redis://unused",
            "S3_BUCKET": BUCKET,
            "KMS_KEY_ID": kms_key_id,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "UNTXT_ENV_FILE": "/nonexistent",  # the local stack's env file must not leak in
        }
    )


def test_a_bucket_without_an_endpoint_means_aws_with_virtual_hosted_urls() -> None:
    settings = _settings("1234abcd-12ab-34cd-56ef-1234567890ab")
    assert settings.s3_endpoint_url is None
    assert settings.s3_addressing_style == "virtual"
    assert settings.aws_region == REGION
    alias = Settings.from_env({**_env_of(settings), "AWS_REGION": "", "AWS_DEFAULT_REGION": "ap-south-1"})
    assert alias.aws_region == "ap-south-1"


def _env_of(settings: Settings) -> dict[str, str]:
    return {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "S3_BUCKET": settings.s3_bucket,
        "KMS_KEY_ID": settings.kms_key_id,
        "UNTXT_ENV_FILE": "/nonexistent",
    }


@pytest.mark.parametrize("key_form", ["id", "arn"])
def test_the_worker_writes_results_encrypted_with_the_configured_key(key_form: str) -> None:
    with mock_aws():
        kms = boto3.client("kms", region_name=REGION)
        key = kms.create_key(Description="untxt")["KeyMetadata"]
        configured = key["KeyId"] if key_form == "id" else key["Arn"]
        boto3.client("s3", region_name=REGION).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        store = ObjectStore(_settings(configured))
        store.put("results/u/2026-11/f/1/result.txt", b"hello", "text/plain; charset=utf-8")
        head = store.client.head_object(Bucket=BUCKET, Key="results/u/2026-11/f/1/result.txt")
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] in (key["KeyId"], key["Arn"])
        assert configured.endswith(head["SSEKMSKeyId"].rsplit("/", 1)[-1])


def _capture(client: Any) -> list[Any]:
    captured: list[Any] = []

    def stop(request: Any, **_: Any) -> None:
        captured.append(request)
        raise _Captured(request)

    client.meta.events.register_first("before-send.s3", stop)
    return captured


async def _api_requests(settings: Settings) -> tuple[Any, str]:
    app = web.Application()
    app[SETTINGS] = settings
    contexts = s3_ctx(app)
    await contexts.__anext__()
    try:
        client = app[S3]
        captured = _capture(client)

        async def body() -> Any:
            yield b"%PDF-1.7 a small upload"

        with pytest.raises(_Captured):
            await storage.stream_to_s3(client, settings, "uploads/u/2026-11/f/a.pdf", body(), "application/pdf", 1000)
        url = await storage.presign_result_url(client, settings, "results/u/2026-11/f/1/result.html", 900)
        return captured[0], url
    finally:
        await contexts.aclose()


def test_the_api_uploads_to_the_same_place_with_the_same_encryption_as_the_worker() -> None:
    arn = f"arn:aws:kms:{REGION}:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    settings = _settings(arn)
    api_put, presigned = asyncio.run(_api_requests(settings))

    worker = ObjectStore(settings)
    worker_puts = _capture(worker.client)
    with pytest.raises(_Captured):
        worker.put("uploads/u/2026-11/f/a.pdf", b"%PDF-1.7 a small upload", "application/pdf")
    [worker_put] = worker_puts

    for request in (api_put, worker_put):
        url = urlsplit(request.url)
        assert url.scheme == "https"
        assert url.hostname == f"{BUCKET}.s3.{REGION}.amazonaws.com"
        assert url.path == "/uploads/u/2026-11/f/a.pdf"
        headers = {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        assert headers["x-amz-server-side-encryption"] == "aws:kms"
        assert headers["x-amz-server-side-encryption-aws-kms-key-id"] == arn
        assert f"/{REGION}/s3/aws4_request" in headers["authorization"]

    result = urlsplit(presigned)
    assert result.hostname == f"{BUCKET}.s3.{REGION}.amazonaws.com"
    query = parse_qs(result.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["900"]
    assert f"/{REGION}/s3/aws4_request" in query["X-Amz-Credential"][0]
