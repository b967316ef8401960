import io
import zlib

import pytest
from PIL import Image

from common.media import detect_mime_type, image_dimensions


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


def test_image_dimensions_come_from_the_header_alone() -> None:
    out = io.BytesIO()
    Image.new("L", (3000, 2000), 255).save(out, format="PNG")
    png = out.getvalue()
    assert image_dimensions(png[:64]) == (3000, 2000)  # IHDR is all it needs
    assert image_dimensions(png[:10]) is None  # the header is further in than what arrived
    assert image_dimensions(b"%PDF-1.7 not an image") is None


def test_image_dimensions_leave_pillows_own_bomb_ceiling_to_the_worker() -> None:
    # A header claiming 40000 x 40000 (1.6 G pixels): Pillow refuses to open it at all, so the
    # early look cannot say; the worker's decode, under the configured limit, decides.
    out = io.BytesIO()
    Image.new("1", (1, 1)).save(out, format="PNG")
    png = bytearray(out.getvalue())
    png[16:24] = (40000).to_bytes(4, "big") * 2
    png[29:33] = zlib.crc32(png[12:29]).to_bytes(4, "big")  # IHDR's checksum, so only the size is odd
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(png))
    assert image_dimensions(bytes(png)) is None
