"""The embedded S3 store's own locks: its internal ports (master, volume, filer, admin, their
gRPC ports) answer only a caller holding the stack's certificate or a token signed with its JWT
keys, its admin UI asks for a password, and the bucket itself requires SSE-KMS with the stack's
key (devstack/weedsecurity.py, devstack/s3store.py)."""

from __future__ import annotations

import secrets
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from common.s3config import sse_kms_params
from common.settings import REPO_ROOT, Settings, effective_environ, read_env_file
from devstack.s3store import internal_ports
from devstack.weedsecurity import make_certificates

pytestmark = [
    pytest.mark.e2e,
    # The store's certificate is not checked by these callers (its CA is the stack's own); what
    # is under test is whether the store checks theirs.
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]
TLS = REPO_ROOT / "var" / "seaweedfs" / "tls"
NODE_CERT = (str(TLS / "node.crt"), str(TLS / "node.key"))


@pytest.fixture(scope="module")
def ports(settings: Settings) -> dict[str, int]:
    port = read_env_file(REPO_ROOT / "var" / "local.env").get("UNTXT_S3_PORT")
    if not (port and settings.s3_endpoint_url == f"http://127.0.0.1:{port}" and TLS.is_dir()):
        pytest.skip("needs the embedded SeaweedFS store of ./start_services.sh")
    return internal_ports(int(port))


def _tls_exchange(port: int, cert: tuple[str, str] | None) -> bytes:
    """One HTTP/1.1 request over TLS with ``cert`` (or none) as the client certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if cert:
        context.load_cert_chain(*cert)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw) as tls:
        # TLS 1.3 reports a refused client certificate at the first read, not in the handshake.
        tls.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return tls.recv(64)


@pytest.mark.parametrize(
    "name",
    ["master.port", "master.port.grpc", "volume.port.grpc", "filer.port.grpc", "s3.port.grpc", "admin.port.grpc"],
)
def test_internal_ports_refuse_callers_without_the_stacks_certificate(
    ports: dict[str, int], name: str, tmp_path: Path
) -> None:
    port = ports[name]
    assert _tls_exchange(port, NODE_CERT)  # the control: the stack's own certificate gets through
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _tls_exchange(port, None)
    make_certificates(tmp_path)  # a certificate from some other CA
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _tls_exchange(port, (str(tmp_path / "node.crt"), str(tmp_path / "node.key")))
    try:
        plain = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    except requests.ConnectionError:
        return
    assert plain.status_code >= 400


def test_filer_and_volume_server_neither_serve_nor_take_object_bytes(
    ports: dict[str, int], settings: Settings, s3: Any
) -> None:
    """Their HTTP ports want a JWT signed with the store's own keys for every read and write;
    the master, which would mint one, wants the stack's certificate."""
    key, planted = f"locks/{secrets.token_hex(8)}", f"locks/{secrets.token_hex(8)}-planted"
    body = secrets.token_bytes(2048)
    s3.put_object(Bucket=settings.s3_bucket, Key=key, Body=body, **sse_kms_params(settings))
    filer, volume, master = ports["filer.port"], ports["volume.port"], ports["master.port"]
    bucket_url = f"http://127.0.0.1:{filer}/buckets/{settings.s3_bucket}"
    for method, url in [
        ("GET", f"{bucket_url}/{key}"),
        ("GET", f"{bucket_url}/?pretty=y"),  # a listing
        ("PUT", f"{bucket_url}/{planted}"),
        ("DELETE", f"{bucket_url}/{key}"),
        ("GET", f"http://127.0.0.1:{volume}/1,01637037d6"),
        ("POST", f"http://127.0.0.1:{volume}/1,01637037d6"),
        ("DELETE", f"http://127.0.0.1:{volume}/1,01637037d6"),
    ]:
        resp = requests.request(method, url, data=b"planted", timeout=5)
        assert resp.status_code == 401, (method, url, resp.status_code)
        assert body not in resp.content
    for url in (f"http://127.0.0.1:{master}/dir/assign", f"http://127.0.0.1:{master}/col/delete?collection=x"):
        assert requests.post(url, timeout=5).status_code == 400  # "client sent HTTP to an HTTPS server"
        with pytest.raises(requests.exceptions.SSLError):
            requests.post(url.replace("http://", "https://"), timeout=5, verify=False)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=settings.s3_bucket, Key=planted)
    assert s3.get_object(Bucket=settings.s3_bucket, Key=key)["Body"].read() == body


def test_admin_ui_asks_for_a_password(ports: dict[str, int]) -> None:
    admin = f"http://127.0.0.1:{ports['admin.port']}"
    page = requests.get(f"{admin}/", allow_redirects=False, timeout=5)
    assert page.status_code in (302, 303, 307)
    assert page.headers["Location"].endswith("/login")
    assert requests.get(f"{admin}/api/s3/buckets", timeout=5).status_code == 401


def test_the_bucket_requires_sse_kms(ports: dict[str, int], settings: Settings, s3: Any) -> None:
    """A PUT without SSE headers ends up encrypted with the stack's key (the bucket's default);
    one asking for SSE-S3 instead is refused."""
    for bucket in (settings.s3_bucket, effective_environ()["S3_BUCKET"]):  # the tests' and the stack's
        rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert rule["ApplyServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": settings.kms_key_id,
        }
    key = f"locks/{secrets.token_hex(8)}-no-headers"
    s3.put_object(Bucket=settings.s3_bucket, Key=key, Body=b"forgot the headers")
    head = s3.head_object(Bucket=settings.s3_bucket, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(settings.kms_key_id)
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=settings.s3_bucket, Key=f"{key}-s3", Body=b"x", ServerSideEncryption="AES256")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
