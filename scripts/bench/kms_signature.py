"""What checking SigV4 costs the local key service, beside what an upload's write costs.

    ./start_services.sh --infra-only && .venv/bin/python -m scripts.bench.kms_signature

SeaweedFS asks the key service for a data key on every SSE-KMS write, so the signature check
(``devstack/sigv4.py``) sits on every upload's path. Prints:

* the check alone (µs per call, in this process), on a signed GenerateDataKey request;
* a GenerateDataKey round trip to the running local key service (its own process, as
  SeaweedFS calls it), check included;
* a 100 KB SSE-KMS PUT through the running SeaweedFS (the smallest write an upload makes,
  one data-key call inside), and the check's share of it.

A server and a client in one Python process would measure their GIL hand-offs, not the check,
so the round trips go to the real services.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from common.s3config import s3_client_kwargs, sse_kms_params
from common.settings import Settings, effective_environ
from devstack.sigv4 import verify_request


def check_alone_us(calls: int) -> float:
    credentials = Credentials("AKIDBENCH", "bench-secret")
    body = json.dumps({"KeyId": "00000000-0000-0000-0000-000000000000", "KeySpec": "AES_256"}).encode()
    request = AWSRequest(
        method="POST",
        url="http://127.0.0.1:18500/",
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.GenerateDataKey"},
    )
    SigV4Auth(credentials, "kms", "us-east-1").add_auth(request)
    headers = {name.lower(): value for name, value in request.headers.items()}
    headers["host"] = "127.0.0.1:18500"
    start = time.perf_counter()
    for _ in range(calls):
        verify_request("POST", "/", headers, body, credentials, "us-east-1", "kms")
    return (time.perf_counter() - start) / calls * 1e6


def median_ms(action: Any, rounds: int) -> float:
    action()  # connection set up, not measured
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    check = check_alone_us(args.calls)
    print(f"signature check alone: {check:.0f} µs per call")
    env = effective_environ()
    if not env.get("UNTXT_KMS_ENDPOINT"):
        print("no local stack configured (var/local.env): round trips skipped")
        return
    settings = Settings.from_env()
    kms = boto3.client(
        "kms",
        endpoint_url=env["UNTXT_KMS_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id=env["UNTXT_KMS_ACCESS_KEY"],
        aws_secret_access_key=env["UNTXT_KMS_SECRET_KEY"],
    )
    data_key = median_ms(lambda: kms.generate_data_key(KeyId=settings.kms_key_id, KeySpec="AES_256"), args.rounds)
    print(f"GenerateDataKey round trip to the local key service: {data_key:.2f} ms median")
    s3 = boto3.client("s3", **s3_client_kwargs(settings))
    body = b"x" * 100_000
    key = "bench/kms-signature"
    put = median_ms(
        lambda: s3.put_object(Bucket=settings.s3_bucket, Key=key, Body=body, **sse_kms_params(settings)), args.rounds
    )
    s3.delete_object(Bucket=settings.s3_bucket, Key=key)
    share = check / 1e3 / put
    print(f"100 KB SSE-KMS PUT through the local store: {put:.2f} ms median; the check is {share:.1%} of it")


if __name__ == "__main__":
    main()
