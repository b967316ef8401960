"""A small, durable key service speaking the AWS KMS JSON 1.1 protocol, for the local stack only.

SeaweedFS's own ``local`` KMS keeps its master keys in memory, so every SSE-KMS object becomes
unreadable after a restart. SeaweedFS's ``aws`` provider pointed here instead gets keys that
live in a 0600 file written atomically, so encrypted objects survive restarts like on AWS.

Operations: CreateKey, DescribeKey, ListKeys, GenerateDataKey, Encrypt, Decrypt. Data keys are
wrapped with AES-256-GCM under the master key, the encryption context (canonical JSON) as AAD:
a ciphertext presented with another context does not decrypt, as on AWS.
Every request must carry a valid SigV4 signature made with the stack's KMS credentials
(``devstack/sigv4.py``): loopback is reachable by every local user, and an unsigned Decrypt
would hand any of them the data key of any object. Only the liveness probe (``GET /``) is open.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import re
import secrets
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from botocore.credentials import Credentials
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from common.settings import effective_environ
from devstack.sigv4 import SignatureError, verify_request

log = logging.getLogger("untxt.kms")

ACCOUNT_ID = "111122223333"
_BLOB_VERSION = b"\x01"
_KEY_ID_LEN = 36
_NONCE_LEN = 12
# KMS requests are a few hundred bytes; a larger body is refused unread.
_MAX_BODY = 64 * 1024
_ARN_RE = re.compile(r"^arn:aws:kms:[^:]*:[0-9]*:key/(?P<id>[0-9a-f-]{36})$")


class KmsError(Exception):
    def __init__(self, error_type: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status


class KeyStore:
    """Master keys in a JSON file, rewritten atomically (temp file, fsync, rename) on change."""

    def __init__(self, path: Path, region: str) -> None:
        self.path = path
        self.region = region
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, Any]] = {}
        if path.exists():
            self._keys = json.loads(path.read_text(encoding="utf-8"))["keys"]

    def arn(self, key_id: str) -> str:
        return f"arn:aws:kms:{self.region}:{ACCOUNT_ID}:key/{key_id}"

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"keys": self._keys}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def create(self, description: str = "", key_id: str | None = None) -> str:
        with self._lock:
            key_id = key_id or str(uuid.uuid4())
            if key_id not in self._keys:
                self._keys[key_id] = {
                    "material": base64.b64encode(secrets.token_bytes(32)).decode(),
                    "description": description,
                    "created": datetime.now(UTC).timestamp(),
                }
                self._save()
            return key_id

    def resolve(self, key_ref: str) -> str:
        match = _ARN_RE.match(key_ref or "")
        key_id = match.group("id") if match else key_ref
        if key_id not in self._keys:
            raise KmsError("NotFoundException", f"Key '{key_ref}' does not exist")
        return key_id

    def material(self, key_id: str) -> bytes:
        return base64.b64decode(self._keys[key_id]["material"])

    def metadata(self, key_id: str) -> dict[str, Any]:
        key = self._keys[key_id]
        return {
            "AWSAccountId": ACCOUNT_ID,
            "KeyId": key_id,
            "Arn": self.arn(key_id),
            "CreationDate": key["created"],
            "Enabled": True,
            "Description": key["description"],
            "KeyUsage": "ENCRYPT_DECRYPT",
            "KeyState": "Enabled",
            "Origin": "AWS_KMS",
            "KeyManager": "CUSTOMER",
            "KeySpec": "SYMMETRIC_DEFAULT",
            "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        }

    def key_ids(self) -> list[str]:
        return sorted(self._keys)


def _aad(context: dict[str, str] | None) -> bytes:
    return json.dumps(context or {}, sort_keys=True, separators=(",", ":")).encode()


def wrap(store: KeyStore, key_id: str, plaintext: bytes, context: dict[str, str] | None) -> bytes:
    nonce = secrets.token_bytes(_NONCE_LEN)
    sealed = AESGCM(store.material(key_id)).encrypt(nonce, plaintext, _aad(context))
    return _BLOB_VERSION + key_id.encode() + nonce + sealed


def unwrap(store: KeyStore, blob: bytes, context: dict[str, str] | None) -> tuple[str, bytes]:
    if len(blob) < 1 + _KEY_ID_LEN + _NONCE_LEN + 16 or blob[:1] != _BLOB_VERSION:
        raise KmsError("InvalidCiphertextException", "The ciphertext is not one this service produced")
    key_id = blob[1 : 1 + _KEY_ID_LEN].decode(errors="replace")
    key_id = store.resolve(key_id)
    nonce = blob[1 + _KEY_ID_LEN : 1 + _KEY_ID_LEN + _NONCE_LEN]
    try:
        plaintext = AESGCM(store.material(key_id)).decrypt(nonce, blob[1 + _KEY_ID_LEN + _NONCE_LEN :], _aad(context))
    except InvalidTag as exc:
        raise KmsError("InvalidCiphertextException", "Decryption failed (wrong encryption context?)") from exc
    return key_id, plaintext


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _data_key_length(body: dict[str, Any]) -> int:
    spec = body.get("KeySpec")
    if spec == "AES_256":
        return 32
    if spec == "AES_128":
        return 16
    if spec is None and isinstance(body.get("NumberOfBytes"), int) and 1 <= body["NumberOfBytes"] <= 1024:
        return body["NumberOfBytes"]
    raise KmsError("ValidationException", "KeySpec must be AES_256 or AES_128, or NumberOfBytes 1-1024")


def handle(store: KeyStore, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    if operation == "CreateKey":
        key_id = store.create(str(body.get("Description", "")))
        return {"KeyMetadata": store.metadata(key_id)}
    if operation == "DescribeKey":
        return {"KeyMetadata": store.metadata(store.resolve(body.get("KeyId", "")))}
    if operation == "ListKeys":
        return {"Keys": [{"KeyId": k, "KeyArn": store.arn(k)} for k in store.key_ids()], "Truncated": False}
    if operation == "GenerateDataKey":
        key_id = store.resolve(body.get("KeyId", ""))
        plaintext = secrets.token_bytes(_data_key_length(body))
        blob = wrap(store, key_id, plaintext, body.get("EncryptionContext"))
        return {"KeyId": store.arn(key_id), "Plaintext": _b64(plaintext), "CiphertextBlob": _b64(blob)}
    if operation == "Encrypt":
        key_id = store.resolve(body.get("KeyId", ""))
        blob = wrap(store, key_id, base64.b64decode(body.get("Plaintext", "")), body.get("EncryptionContext"))
        return {"KeyId": store.arn(key_id), "CiphertextBlob": _b64(blob), "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    if operation == "Decrypt":
        try:
            blob = base64.b64decode(body.get("CiphertextBlob", ""), validate=True)
        except ValueError as exc:
            raise KmsError("InvalidCiphertextException", "CiphertextBlob is not base64") from exc
        key_id, plaintext = unwrap(store, blob, body.get("EncryptionContext"))
        if body.get("KeyId") and store.resolve(body["KeyId"]) != key_id:
            raise KmsError("IncorrectKeyException", "The ciphertext was not encrypted under the given key")
        return {"KeyId": store.arn(key_id), "Plaintext": _b64(plaintext), "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    raise KmsError("UnsupportedOperationException", f"{operation} is not supported by the local key service")


def make_handler(store: KeyStore, credentials: Credentials) -> type[BaseHTTPRequestHandler]:
    class KmsRequestHandler(BaseHTTPRequestHandler):
        server_version = "untxt-local-kms"
        # Keep-alive: SeaweedFS asks for a data key on every SSE-KMS write; a new connection
        # (and thread) per request cost more than the request itself.
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes; with Nagle on, a kept-alive connection waits
        # for the peer's delayed ACK (40 ms) between them.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            log.debug(format, *args)

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # stdlib naming
            # Liveness probe for the stack scripts: says nothing about the keys.
            self._reply(200, {"status": "ok"})

        def do_POST(self) -> None:  # stdlib naming
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 <= length <= _MAX_BODY:
                    self.close_connection = True
                    raise KmsError("SerializationException", f"request body over {_MAX_BODY} bytes")
                raw = self.rfile.read(length)
                verify_request("POST", self.path, self.headers, raw, credentials, store.region, "kms")
                target = self.headers.get("X-Amz-Target", "")
                service, _, operation = target.partition(".")
                if service != "TrentService":
                    raise KmsError("UnknownOperationException", f"unknown target {target!r}")
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise KmsError("SerializationException", "request body must be a JSON object")
                self._reply(200, handle(store, operation, body))
            except (KmsError, SignatureError) as err:
                if isinstance(err, SignatureError):
                    log.warning("refused an unsigned or badly signed request: %s", err.error_type)
                self._reply(err.status, {"__type": err.error_type, "message": err.message})
            except (ValueError, json.JSONDecodeError) as err:
                self._reply(400, {"__type": "SerializationException", "message": str(err)})

    return KmsRequestHandler


class KmsServer(ThreadingHTTPServer):
    # socketserver's default backlog of 5 overflowed under a burst of uploads: the dropped SYNs
    # came back after the kernel's 1 s retransmit, as 1 s stalls in the upload's latency.
    request_queue_size = 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local AWS-KMS-protocol key service")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18500)
    parser.add_argument("--keystore", type=Path, required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--ensure-key", help="create this key id if the store lacks it")
    args = parser.parse_args(argv)
    # From the environment or the file UNTXT_ENV_FILE names (the scripts give it var/kms/kms.env).
    env = effective_environ()
    access_key, secret_key = env.get("UNTXT_KMS_ACCESS_KEY"), env.get("UNTXT_KMS_SECRET_KEY")
    if not (access_key and secret_key):
        parser.error("UNTXT_KMS_ACCESS_KEY and UNTXT_KMS_SECRET_KEY must be set")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    store = KeyStore(args.keystore, args.region)
    if args.ensure_key:
        store.create("untxt local stack key", key_id=args.ensure_key)
    server = KmsServer((args.host, args.port), make_handler(store, Credentials(access_key, secret_key)))
    log.info("local KMS listening on %s:%s with %d key(s)", args.host, args.port, len(store.key_ids()))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
