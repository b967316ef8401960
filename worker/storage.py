"""The worker's S3 access: download an upload, store a result (always SSE-KMS)."""

from __future__ import annotations

from pathlib import Path

import boto3

from common.s3config import s3_client_kwargs, sse_kms_params
from common.settings import Settings


class ObjectStore:
    """boto3 clients are thread-safe, so all worker threads share one."""

    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3_bucket
        self._sse = sse_kms_params(settings)
        self.client = boto3.session.Session().client("s3", **s3_client_kwargs(settings))

    def download(self, key: str, destination: Path) -> int:
        self.client.download_file(self.bucket, key, str(destination))
        return destination.stat().st_size

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, **self._sse)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def ping(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)
