"""Real Tesseract (tesserocr) and real decoding of images and PDFs; no other services."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from common.settings import Settings
from tests.conftest import corpus_file
from tests.support import text_page_png
from worker.documents import count_pages, iter_pages
from worker.errors import JobFailedError
from worker.ocr import OcrEngine, validate_language

TESSDATA = Settings.model_fields["tessdata_dir"].default


@pytest.fixture(scope="module")
def engine():  # type: ignore[no-untyped-def]
    ocr = OcrEngine(TESSDATA)
    yield ocr
    ocr.close()


def _pages(path: Path, mime: str) -> list[Image.Image]:
    images = [page.image for page in iter_pages(path, mime, max_pixels=50_000_000, dpi=300)]
    assert all(image is not None for image in images)
    return images  # type: ignore[return-value]


def test_rendered_page_reads_back(tmp_path: Path, engine: OcrEngine) -> None:
    path = tmp_path / "page.png"
    path.write_bytes(text_page_png(["Invoice number 4711", "Total due: 99 euros"]))
    [image] = _pages(path, "image/png")
    page = engine.recognize(image, "eng", 1).page
    assert "Invoice number 4711" in page.text
    assert "Total due" in page.text
    assert page.mean_confidence is not None
    assert page.mean_confidence > 80


def test_real_scan_has_known_words(engine: OcrEngine) -> None:
    path = corpus_file("phototest.tif")
    [image] = _pages(path, "image/tiff")
    text = engine.recognize(image, "eng", 1).page.text
    for word in ("quick", "brown", "dog", "jumped", "lazy", "fox"):
        assert word in text


def test_pdf_pages_are_rasterised_in_order(tmp_path: Path, engine: OcrEngine) -> None:
    images = [Image.open(io.BytesIO(text_page_png([f"Page marker {n}"]))).convert("RGB") for n in (1, 2, 3)]
    path = tmp_path / "three.pdf"
    images[0].save(path, save_all=True, append_images=images[1:], resolution=150)
    assert count_pages(path, "application/pdf", max_pages=10) == 3
    texts = [engine.recognize(img, "eng", n).page.text for n, img in enumerate(_pages(path, "application/pdf"), 1)]
    assert [("marker 1" in texts[0]), ("marker 2" in texts[1]), ("marker 3" in texts[2])] == [True] * 3
    with pytest.raises(JobFailedError) as err:
        count_pages(path, "application/pdf", max_pages=2)
    assert err.value.code == "too_many_pages"


def test_corrupt_image_fails_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(text_page_png(["hello"])[:60])
    with pytest.raises(JobFailedError) as err:
        _pages(path, "image/png")
    assert err.value.code == "corrupt_file"


def test_not_a_pdf_fails_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "fake.pdf"
    path.write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    with pytest.raises(JobFailedError) as err:
        count_pages(path, "application/pdf", max_pages=10)
    assert err.value.code == "corrupt_file"


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("1", (12_000, 12_000), 1).save(path)  # 144 MP, a few KB on disk
    with pytest.raises(JobFailedError) as err:
        list(iter_pages(path, "image/png", max_pixels=50_000_000, dpi=300))
    assert err.value.code == "image_too_large"


def test_languages_are_validated_against_installed_models() -> None:
    assert validate_language("eng+vie", TESSDATA) == "eng+vie"
    with pytest.raises(JobFailedError):
        validate_language("klingon", TESSDATA)


def test_password_protected_pdf_is_refused_with_its_own_code(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    plain = tmp_path / "plain.pdf"
    Image.open(io.BytesIO(text_page_png(["secret"]))).convert("RGB").save(plain)
    writer = PdfWriter()
    for page in PdfReader(plain).pages:
        writer.add_page(page)
    writer.encrypt(user_password="hunter2", algorithm="AES-256")
    locked = tmp_path / "locked.pdf"
    with locked.open("wb") as handle:
        writer.write(handle)
    with pytest.raises(JobFailedError) as err:
        count_pages(locked, "application/pdf", max_pages=10)
    assert err.value.code == "pdf_encrypted"


def test_text_layer_is_taken_from_born_digital_pdfs() -> None:
    pdf = corpus_file("vie_born_digital_2p.pdf")
    pages = list(iter_pages(pdf, "application/pdf", max_pixels=50_000_000, dpi=300))
    assert all(p.text_layer is not None and p.image is None for p in pages)
    first = pages[0].text_layer
    assert first is not None
    assert first.source == "text-layer"
    assert first.words[0].width > 0
    assert "không" in first.text  # diacritics exact: taken from the file, not recognised
