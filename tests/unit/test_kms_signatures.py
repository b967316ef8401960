"""The local key service answers only requests signed (SigV4) with the stack's credentials."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.auth
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from devstack.kms import KeyStore, KmsServer, make_handler
from devstack.sigv4 import SignatureError, verify_request

CREDENTIALS = Credentials("AKIDUNTXTTEST", "the-right-secret")


@pytest.fixture
def kms(tmp_path) -> Iterator[tuple[str, KeyStore]]:  # type: ignore[no-untyped-def]
    store = KeyStore(tmp_path / "keys.json", "us-east-1")
    server = KmsServer(("127.0.0.1", 0), make_handler(store, CREDENTIALS))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", store
    finally:
        server.shutdown()
        server.server_close()


def _client(url: str, key: str, secret: str) -> Any:
    return boto3.client(
        "kms", endpoint_url=url, region_name="us-east-1", aws_access_key_id=key, aws_secret_access_key=secret
    )


def _signed(url: str, operation: str, body: dict[str, Any], credentials: Credentials = CREDENTIALS) -> AWSRequest:
    request = AWSRequest(
        method="POST",
        url=url + "/",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"TrentService.{operation}"},
    )
    SigV4Auth(credentials, "kms", "us-east-1").add_auth(request)
    return request


def _send(request: AWSRequest, body: bytes | None = None) -> requests.Response:
    return requests.post(
        request.url, data=request.body if body is None else body, headers=dict(request.headers), timeout=5
    )


def test_a_correctly_signed_request_is_served(kms) -> None:  # type: ignore[no-untyped-def]
    url, store = kms
    key_id = _client(url, CREDENTIALS.access_key, CREDENTIALS.secret_key).create_key()["KeyMetadata"]["KeyId"]
    assert store.key_ids() == [key_id]
    resp = _send(_signed(url, "GenerateDataKey", {"KeyId": key_id, "KeySpec": "AES_256"}))
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    ("key", "secret", "code"),
    [
        (CREDENTIALS.access_key, "a-wrong-secret", "InvalidSignatureException"),
        ("AKIDSOMEONEELSE", CREDENTIALS.secret_key, "UnrecognizedClientException"),
    ],
)
def test_wrong_credentials_are_refused_and_change_nothing(kms, key: str, secret: str, code: str) -> None:  # type: ignore[no-untyped-def]
    url, store = kms
    with pytest.raises(ClientError) as err:
        _client(url, key, secret).create_key()
    assert err.value.response["Error"]["Code"] == code
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert store.key_ids() == []


def test_an_unsigned_request_gets_403(kms) -> None:  # type: ignore[no-untyped-def]
    url, store = kms
    resp = requests.post(url + "/", data=b"{}", headers={"X-Amz-Target": "TrentService.CreateKey"}, timeout=5)
    assert resp.status_code == 403
    assert resp.json()["__type"] == "MissingAuthenticationTokenException"
    assert store.key_ids() == []


def test_a_signed_request_with_another_body_is_refused(kms) -> None:  # type: ignore[no-untyped-def]
    """A captured Decrypt cannot be replayed with another ciphertext: the body is signed."""
    url, store = kms
    key_id = store.create()
    request = _signed(url, "GenerateDataKey", {"KeyId": key_id, "KeySpec": "AES_256"})
    forged = json.dumps({"KeyId": key_id, "NumberOfBytes": 1024}).encode()
    resp = _send(request, body=forged)
    assert resp.status_code == 400
    assert resp.json()["__type"] == "InvalidSignatureException"
    # With X-Amz-Content-SHA256 the client states the body's hash; a body that differs from it
    # is refused before the signature (which covers only the header) is looked at.
    request.headers["X-Amz-Content-SHA256"] = "0" * 64
    assert _send(request).json()["__type"] == "InvalidSignatureException"


def test_an_old_signature_is_expired(kms, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    url, store = kms
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: datetime.now(UTC) - timedelta(minutes=20))
    resp = _send(_signed(url, "CreateKey", {}))
    assert resp.status_code == 400
    assert "expired" in resp.json()["message"]
    assert store.key_ids() == []


def test_the_credential_scope_must_name_this_region_and_service() -> None:
    request = AWSRequest(method="POST", url="http://127.0.0.1:1/", data=b"{}", headers={"X-Amz-Target": "x"})
    SigV4Auth(CREDENTIALS, "kms", "eu-west-1").add_auth(request)
    headers = {name.lower(): value for name, value in request.headers.items()}
    headers["host"] = "127.0.0.1:1"
    verify_request("POST", "/", headers, b"{}", CREDENTIALS, "eu-west-1", "kms")  # the control
    with pytest.raises(SignatureError) as err:
        verify_request("POST", "/", headers, b"{}", CREDENTIALS, "us-east-1", "kms")
    assert err.value.error_type == "InvalidSignatureException"
    with pytest.raises(SignatureError) as err:
        verify_request("POST", "/", {**headers, "authorization": "Bearer x"}, b"{}", CREDENTIALS, "eu-west-1", "kms")
    assert err.value.error_type == "IncompleteSignatureException"


def test_an_oversized_body_is_refused_unread(kms) -> None:  # type: ignore[no-untyped-def]
    url, _ = kms
    resp = requests.post(url + "/", data=b"x" * 100_000, timeout=5)
    assert resp.status_code == 400
    assert resp.json()["__type"] == "SerializationException"
