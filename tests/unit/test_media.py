import pytest

from common.media import detect_mime_type


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"II*\x00\x08\x00", "image/tiff"),
        (b"MM\x00*\x00\x00", "image/tiff"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"BM6\x00\x00\x00", "image/bmp"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"PK\x03\x04", None),
        (b"<html>", None),
        (b"", None),
    ],
)
def test_types_are_decided_by_magic_bytes(head: bytes, expected: str | None) -> None:
    assert detect_mime_type(head) == expected
