"""Turning a client-supplied filename into one that is safe as the last part of an S3 key."""

from __future__ import annotations

import unicodedata

MAX_FILENAME_BYTES = 255
FALLBACK_NAME = "upload"
# Characters that are legal in S3 keys but break shells, URLs or Windows downloads.
_REPLACED = set('<>:"|?*\\/%#{}^`[]~')


def safe_filename(name: str | None) -> str:
    """Keep Unicode, drop any path and control characters, cap at 255 UTF-8 bytes."""
    if not name:
        return FALLBACK_NAME
    name = unicodedata.normalize("NFC", name)
    # Clients send Windows and POSIX paths alike; only the last component is a name.
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join("_" if ch in _REPLACED else ch for ch in name if not unicodedata.category(ch).startswith("C"))
    cleaned = " ".join(cleaned.split()).strip(" .")
    if not cleaned:
        return FALLBACK_NAME
    return _truncate_utf8(cleaned, MAX_FILENAME_BYTES)


def display_filename(name: str | None) -> str:
    """The original name for display: control characters removed, nothing else changed."""
    if not name:
        return FALLBACK_NAME
    shown = "".join(ch for ch in unicodedata.normalize("NFC", name) if not unicodedata.category(ch).startswith("C"))
    return _truncate_utf8(shown, 1024) or FALLBACK_NAME


def _truncate_utf8(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    stem, dot, ext = text.rpartition(".")
    # Keep a short extension so the result still says what kind of file it is.
    if dot and stem and 0 < len(ext.encode("utf-8")) <= 16:
        budget = limit - len(ext.encode("utf-8")) - 1
        return encoded_prefix(stem, budget) + "." + ext
    return encoded_prefix(text, limit)


def encoded_prefix(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 form fits in ``limit`` bytes."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
