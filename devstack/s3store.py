"""Local SeaweedFS: write its configuration and bootstrap the bucket.

``python -m devstack.s3store config DIR`` writes, into the S3 user's directory, the
``-s3.config`` JSON (credentials + KMS provider), ``security.toml`` with its certificates
(``devstack/weedsecurity.py``) and ``weed.options``: every port and the admin password, read
by ``weed mini -options=…`` so no secret shows on its command line.
``python -m devstack.s3store bootstrap`` waits for the S3 endpoint, creates the bucket if it is
missing, makes the bucket itself require SSE-KMS (``require_sse_kms``) and checks the KMS key is
usable through SeaweedFS (a tiny SSE-KMS round trip).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from common.settings import effective_environ
from devstack.weedsecurity import ensure_security, write_private

# weed mini's components, each at a fixed offset from the S3 port (so two checkouts' stacks,
# whose S3 ports differ, never collide). The S3 port itself is the only one meant for clients.
INTERNAL_PORT_OFFSETS = {
    "s3.port.grpc": 10000,
    "master.port": 1000,
    "master.port.grpc": 11000,
    "volume.port": 1007,
    "volume.port.grpc": 11007,
    "filer.port": 555,
    "filer.port.grpc": 10555,
    "admin.port": 313,
    "admin.port.grpc": 10313,
}


def internal_ports(s3_port: int) -> dict[str, int]:
    return {name: s3_port + offset for name, offset in INTERNAL_PORT_OFFSETS.items()}


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


def weed_options(env: dict[str, str], config_dir: Path) -> dict[str, str]:
    s3_port = int(env["UNTXT_S3_PORT"])
    options = {
        "dir": str(config_dir / "data"),
        "ip": "127.0.0.1",
        "ip.bind": "127.0.0.1",
        "s3.port": str(s3_port),
        "s3.config": str(config_dir / "s3.json"),
        "admin.password": env["UNTXT_S3_ADMIN_PASSWORD"],
        "webdav": "false",
        "s3.port.iceberg": "0",
        "s3.port.lance": "0",
        "master.telemetry": "false",
        # Their own sockets, not /tmp's shared names (which a start as another user may have
        # left behind, and which weed must then remove but cannot).
        "filer.localSocket": str(config_dir / "filer.sock"),
        "s3.localSocket": str(config_dir / "s3.sock"),
    }
    options.update({name: str(port) for name, port in internal_ports(s3_port).items()})
    return options


def write_config(config_dir: Path) -> None:
    env = effective_environ()
    config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (config_dir / "data").mkdir(mode=0o700, exist_ok=True)
    write_private(config_dir / "s3.json", json.dumps(s3_config(env), indent=2).encode())
    options = "".join(f"{name}={value}\n" for name, value in weed_options(env, config_dir).items())
    write_private(config_dir / "weed.options", options.encode())
    ensure_security(config_dir)


def require_sse_kms(client: Any, bucket: str, key_id: str) -> None:
    """The bucket itself insists on SSE-KMS with the stack's key: anything written without SSE
    headers is encrypted with it (the bucket's default encryption; so are multipart uploads,
    whose parts never carry the headers), and its policy refuses a PUT that asks for the other
    scheme, SSE-S3 (AES256). A policy refusing PUTs *without* the header would refuse every
    UploadPart too, and SeaweedFS rejects the ``…IfExists`` conditions that tell them apart."""
    client.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_id}}]
        },
    )
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenySseS3Writes",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
                "Condition": {"StringEquals": {"s3:x-amz-server-side-encryption": "AES256"}},
            }
        ],
    }
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


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
                break
        except (ClientError, BotoCoreError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise SystemExit(f"SSE-KMS round trip failed: {last}")
        time.sleep(0.5)
    require_sse_kms(client, bucket, env["KMS_KEY_ID"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cfg = sub.add_parser("config")
    cfg.add_argument("config_dir", type=Path)
    sub.add_parser("bootstrap")
    args = parser.parse_args(argv)
    if args.command == "config":
        write_config(args.config_dir)
    else:
        bootstrap()
    return 0


if __name__ == "__main__":
    sys.exit(main())
