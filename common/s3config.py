"""How both services talk to S3: client options and the SSE-KMS parameters of every write."""

from __future__ import annotations

from typing import Any

from botocore.config import Config

from common.settings import Settings


def s3_client_kwargs(
    settings: Settings, max_attempts: int = 3, connections: int = 10, read_timeout: float = 60
) -> dict[str, Any]:
    """Keyword arguments for ``boto3.client("s3", ...)`` and aioboto3's equivalent.

    ``connections`` caps the client's connection pool (botocore's default, 10, suits a thread
    or two; an API streaming many uploads at once needs more, or they queue for a socket).
    ``read_timeout`` is how long a silent store is waited for, per attempt.
    """
    kwargs: dict[str, Any] = {
        "region_name": settings.aws_region,
        # Explicit SigV4: without it presigned URLs can come out with the legacy (unsigned-looking)
        # scheme, and SeaweedFS, like AWS, rejects anything but SigV4 for SSE-KMS objects.
        "config": Config(
            signature_version="s3v4",
            s3={"addressing_style": settings.s3_addressing_style},
            retries={"max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=connections,
            connect_timeout=5,
            read_timeout=read_timeout,
        ),
    }
    if settings.s3_endpoint_url:
        kwargs["endpoint_url"] = settings.s3_endpoint_url
    # With no explicit keys boto falls back to its usual chain (env, profile, instance role).
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        kwargs["aws_access_key_id"] = settings.aws_access_key_id
        kwargs["aws_secret_access_key"] = settings.aws_secret_access_key
    return kwargs


def sse_kms_params(settings: Settings) -> dict[str, str]:
    """Every object untxt writes is encrypted with the configured KMS key (an id, an ARN or an
    alias ARN, as AWS accepts; the local key service takes ids)."""
    return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": settings.kms_key_id}
