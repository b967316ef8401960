"""Signing the way Standard Webhooks does (https://www.standardwebhooks.com), with its own
library, so what a receiver verifies with ``standardwebhooks.Webhook(secret).verify`` is exactly
what was signed here."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # HMAC-SHA256's block is 64 bytes; 32 random ones are its full strength


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def signed_headers(secret: str, message_id: str, body: str, at: datetime) -> dict[str, str]:
    """webhook-id, webhook-timestamp and webhook-signature (``v1,`` + base64 HMAC-SHA256 of
    ``id.timestamp.body``) for one attempt; the id is the same on every attempt of a message."""
    whole_seconds = datetime.fromtimestamp(int(at.timestamp()), UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(whole_seconds.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, whole_seconds, body),
    }
