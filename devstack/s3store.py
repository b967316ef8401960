"""Local SeaweedFS: write its S3 config (credentials + KMS section) and bootstrap the bucket.

``python -m devstack.s3store config PATH`` writes the ``-s3.config`` JSON for ``weed mini``;
``python -m devstack.s3store bootstrap`` waits for the S3 endpoint, creates the bucket if it is
missing and checks the KMS key is usable through SeaweedFS (a tiny SSE-KMS round trip).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from common.settings import effective_environ


def s3_config(env: dict[str, str]) -> dict[str, object]:
    return {
        "identities": [
            {
                "name": "untxt",
                "credentials": [{"accessKey": env["UNTXT_S3_ACCESS_KEY"], "secretKey": env["UNTXT_S3_SECRET_KEY"]}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ],
        "kms": {
            "default_provider": "untxt-local",
            "providers": {
                "untxt-local": {
                    "type": "aws",
                    "region": "us-east-1",
                    "endpoint": env["UNTXT_KMS_ENDPOINT"],
                    "access_key": env["UNTXT_KMS_ACCESS_KEY"],
                    "secret_key": env["UNTXT_KMS_SECRET_KEY"],
                }
            },
        },
    }


def write_config(path: Path) -> None:
    env = effective_environ()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(s3_config(env), handle, indent=2)


def bootstrap(timeout: float = 60.0) -> None:
    env = effective_environ()
    client = boto3.client(
        "s3",
        endpoint_url=env["S3_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    bucket = env["S3_BUCKET"]
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.head_bucket(Bucket=bucket)
            break
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket"):
                client.create_bucket(Bucket=bucket)
                break
            last: Exception = exc
        except BotoCoreError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise SystemExit(f"S3 store not ready after {timeout:.0f}s: {last}")
        time.sleep(0.5)
    # The probe object proves SeaweedFS can reach the key service with the configured key.
    while True:
        try:
            client.put_object(
                Bucket=bucket,
                Key=".untxt-kms-probe",
                Body=b"ok",
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=env["KMS_KEY_ID"],
            )
            if client.get_object(Bucket=bucket, Key=".untxt-kms-probe")["Body"].read() == b"ok":
                return
        except (ClientError, BotoCoreError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise SystemExit(f"SSE-KMS round trip failed: {last}")
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cfg = sub.add_parser("config")
    cfg.add_argument("path", type=Path)
    sub.add_parser("bootstrap")
    args = parser.parse_args(argv)
    if args.command == "config":
        write_config(args.path)
    else:
        bootstrap()
    return 0


if __name__ == "__main__":
    sys.exit(main())
