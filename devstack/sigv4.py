"""Check the AWS Signature Version 4 of a request the local key service received.

The signature itself is computed by botocore's ``SigV4Auth`` (the same canonical request,
string to sign and key derivation every AWS SDK uses); this module only rebuilds the request as
the client signed it (the headers named in ``SignedHeaders``, the body) and compares. No
library verifies SigV4 on the server side, so the checks AWS makes around the signature are
written here: the credential's key, region and service, a signed ``Host`` and ``X-Amz-Date``
within 15 minutes of now, and a body whose SHA-256 matches ``X-Amz-Content-SHA256`` when the
client sent one (botocore takes that header's word for the body's hash, so it is checked first).
Errors carry the ``__type`` AWS's JSON protocols use.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

MAX_CLOCK_SKEW = timedelta(minutes=15)
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/\s]+)/(?P<date>\d{8})/(?P<region>[^/\s]+)/(?P<service>[^/\s]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;.\-_]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)


class SignatureError(Exception):
    def __init__(self, error_type: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status


def verify_request(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Credentials,
    region: str,
    service: str,
    now: datetime | None = None,
) -> None:
    """Raise ``SignatureError`` unless the request was signed with ``credentials``.

    ``target`` is the request line's path and query; ``headers`` is read by lower-case name
    (``http.server``'s message is case-insensitive; a plain mapping needs lower-case keys).
    """
    authorization = headers.get("authorization")
    if not authorization:
        raise SignatureError("MissingAuthenticationTokenException", "Request is missing Authentication Token", 403)
    parsed = _AUTHORIZATION.fullmatch(authorization.strip())
    if not parsed:
        raise SignatureError("IncompleteSignatureException", "The Authorization header is not a SigV4 signature")
    if not hmac.compare_digest(parsed["key"], credentials.access_key):
        raise SignatureError("UnrecognizedClientException", "The security token included in the request is invalid.")
    if parsed["region"] != region or parsed["service"] != service:
        raise SignatureError(
            "InvalidSignatureException", f"Credential should be scoped to region '{region}' and service '{service}'"
        )
    signed = parsed["signed"].split(";")
    values = {name: headers.get(name) for name in signed}
    if "host" not in signed or "x-amz-date" not in signed or None in values.values():
        raise SignatureError(
            "IncompleteSignatureException", "Host and X-Amz-Date must be signed, and every signed header present"
        )
    _check_time(values["x-amz-date"] or "", parsed["date"], now or datetime.now(UTC))
    claimed_hash = headers.get("x-amz-content-sha256")
    if claimed_hash is not None and not hmac.compare_digest(claimed_hash, hashlib.sha256(body).hexdigest()):
        raise SignatureError("InvalidSignatureException", "The request body does not match X-Amz-Content-SHA256")

    request = AWSRequest(method=method, url=f"http://{values['host']}{target}", headers=values, data=body)
    request.context["timestamp"] = values["x-amz-date"]
    signer = SigV4Auth(credentials, service, region)
    string_to_sign = signer.string_to_sign(request, signer.canonical_request(request))
    if not hmac.compare_digest(signer.signature(string_to_sign, request), parsed["signature"]):
        raise SignatureError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        )


def _check_time(amz_date: str, scope_date: str, now: datetime) -> None:
    try:
        signed_at = datetime.strptime(amz_date, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError(
            "IncompleteSignatureException", f"X-Amz-Date {amz_date!r} is not a SigV4 timestamp"
        ) from None
    if amz_date[:8] != scope_date:
        raise SignatureError("InvalidSignatureException", "The credential's date does not match X-Amz-Date")
    if abs(now - signed_at) > MAX_CLOCK_SKEW:
        raise SignatureError("InvalidSignatureException", "Signature expired: X-Amz-Date is more than 15 minutes off")
