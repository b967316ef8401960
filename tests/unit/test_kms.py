"""The local key service: its cryptography, persistence and HTTP protocol (on loopback)."""

import json
import stat
import threading

import boto3
import pytest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from devstack.kms import KeyStore, KmsError, KmsServer, handle, make_handler, unwrap, wrap


def test_keys_persist_in_a_private_file(tmp_path) -> None:
    path = tmp_path / "keys.json"
    store = KeyStore(path, "us-east-1")
    key_id = store.create("k")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reopened = KeyStore(path, "us-east-1")
    blob = wrap(store, key_id, b"secret", {"a": "b"})
    assert unwrap(reopened, blob, {"a": "b"}) == (key_id, b"secret")


def test_encryption_context_is_authenticated(tmp_path) -> None:
    store = KeyStore(tmp_path / "keys.json", "us-east-1")
    key_id = store.create()
    blob = wrap(store, key_id, b"secret", {"bucket": "a"})
    with pytest.raises(KmsError) as err:
        unwrap(store, blob, {"bucket": "b"})
    assert err.value.error_type == "InvalidCiphertextException"


def test_generate_data_key_and_decrypt_by_arn(tmp_path) -> None:
    store = KeyStore(tmp_path / "keys.json", "eu-west-1")
    key_id = store.create()
    made = handle(store, "GenerateDataKey", {"KeyId": store.arn(key_id), "KeySpec": "AES_256"})
    back = handle(store, "Decrypt", {"CiphertextBlob": made["CiphertextBlob"]})
    assert back["Plaintext"] == made["Plaintext"]
    assert made["KeyId"] == back["KeyId"] == f"arn:aws:kms:eu-west-1:111122223333:key/{key_id}"
    assert [k["KeyId"] for k in handle(store, "ListKeys", {})["Keys"]] == [key_id]
    assert json.loads(json.dumps(handle(store, "DescribeKey", {"KeyId": key_id})))["KeyMetadata"]["Enabled"]


def test_unknown_key_is_not_found(tmp_path) -> None:
    store = KeyStore(tmp_path / "keys.json", "us-east-1")
    with pytest.raises(KmsError) as err:
        handle(store, "GenerateDataKey", {"KeyId": "00000000-0000-0000-0000-000000000000", "KeySpec": "AES_256"})
    assert err.value.error_type == "NotFoundException"


class _CountingServer(KmsServer):
    accepted = 0

    def get_request(self):  # type: ignore[no-untyped-def]
        self.accepted += 1
        return super().get_request()


def test_server_speaks_kms_over_kept_alive_connections(tmp_path) -> None:
    """boto3's KMS client against the server on loopback: several calls, an error among them,
    all over one kept-alive connection (SeaweedFS reuses its connections the same way)."""
    store = KeyStore(tmp_path / "keys.json", "us-east-1")
    key_id = store.create()
    server = _CountingServer(("127.0.0.1", 0), make_handler(store, Credentials("AKIDLOCALTEST", "secret")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        kms = boto3.client(
            "kms",
            endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
            region_name="us-east-1",
            aws_access_key_id="AKIDLOCALTEST",
            aws_secret_access_key="secret",
        )
        made = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
        with pytest.raises(ClientError) as err:
            kms.describe_key(KeyId="00000000-0000-0000-0000-000000000000")
        assert err.value.response["Error"]["Code"] == "NotFoundException"
        assert kms.decrypt(CiphertextBlob=made["CiphertextBlob"])["Plaintext"] == made["Plaintext"]
    finally:
        server.shutdown()
        server.server_close()
    assert server.accepted == 1
