"""Parity: no shortcut of the worker changes what is read.

The worker skips blank pages, reads grey pixels instead of colour, renders oversized PDF pages
at a lower resolution, reuses a PDF's own text layer, and may turn a page before reading it.
For every corpus page, synthetic variants of it (dark, low-contrast, faint, inverted, noisy,
colour) and nearly blank pages, untxt's whole page path (``worker/reading.py``: the one the
worker runs) is compared with the plain ``tesseract`` CLI on the same image with the same
models: lower-cased word sequences must agree to ``MIN_SIMILARITY``. A page the CLI reads and
untxt does not fails here.

Debian's CLI is Tesseract 5.3; the tesserocr wheel bundles 5.5. On the pages in
``ENGINES_DIFFER`` the two engines read differently with no shortcut involved; there untxt is
compared with its own engine given the untouched image (colour, full size, nothing skipped or
turned).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Iterator
from pathlib import Path

import pypdfium2 as pdfium
import pytest
import tesserocr
from PIL import Image

from common.media import PDF_TYPE
from common.settings import Settings
from tests.conftest import corpus_file
from tests.variants import VARIANTS, cli_text, nearly_blank_pages, similarity
from worker.documents import PDFIUM_LOCK
from worker.pool import OcrPool
from worker.reading import read_pages
from worker.results import PageText

MIN_SIMILARITY = 0.95
SETTINGS = Settings(database_url="", redis_url="", s3_bucket="", kms_key_id="")
TESSDATA = SETTINGS.tessdata_dir

# (file, MIME type, language, pages whose variants are tested too)
CORPUS = [
    ("phototest.tif", "image/tiff", "eng", {1}),
    ("eurotext.tif", "image/tiff", "eng", {1}),
    ("8087_054.3B.tif", "image/tiff", "eng", set()),
    ("typewriter.png", "image/png", "eng", {1}),
    ("vie_p1.png", "image/png", "vie", {1}),
    ("multipage.pdf", PDF_TYPE, "eng", set()),
    ("c03-29.pdf", PDF_TYPE, "eng", {1}),
    ("3small.pdf", PDF_TYPE, "eng", set()),
    ("tagged.pdf", PDF_TYPE, "eng", set()),
    ("vie_born_digital_2p.pdf", PDF_TYPE, "vie", set()),
]
PAGES = {
    "multipage.pdf": 6,
    "3small.pdf": 3,
    "tagged.pdf": 2,
    "vie_born_digital_2p.pdf": 2,
}

# Where Tesseract 5.3 (CLI) and 5.5 (tesserocr) read the same untouched image differently.
ENGINES_DIFFER = {
    "typewriter.png#1": "typewritten recipe; 5.5 splits and joins a few ragged words differently",
    "typewriter.png#1/inverted": "the same page, white on black",
    "typewriter.png#1/noisy": "the same page under noise",
    "typewriter.png#1/colour": "the same page in blue on yellow",
    "c03-29.pdf#1/noisy": "a book page under heavy noise: each engine misreads other specks as letters",
    "multipage.pdf#2": "a poster of 7 words in display type (9000 x 9000 px); each engine garbles it its own way",
    "multipage.pdf#3": "a bar chart: axis numbers and legend, read in a different order",
    "3small.pdf#1": "a map: place names scattered over drawing, segmented differently",
}
# Pages whose own text layer untxt keeps (no OCR) and that the CLI reads differently from it.
OWN_TEXT_LAYER = {
    "multipage.pdf#4": "its text layer is an earlier OCR engine's reading of the bar chart on page 3",
    "tagged.pdf#1": "a born-digital table of contents: leader dots are dots in its text, letters to the CLI",
}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str  # file#page[/variant]
    language: str
    reference: Image.Image  # what the CLI reads: the untouched page image


def _reference_pages(path: Path, mime_type: str) -> list[Image.Image]:
    """Each page as the CLI would get it: an image's own frames, a PDF page rendered in colour at
    300 dpi (the CLI reads no PDFs)."""
    if mime_type != PDF_TYPE:
        with Image.open(path) as image:
            frames = []
            for index in range(getattr(image, "n_frames", 1)):
                image.seek(index)
                frame = image.copy()
                frame.info = {"dpi": image.info.get("dpi", (300, 300))}
                frames.append(frame)
            return frames
    with PDFIUM_LOCK:
        pdf = pdfium.PdfDocument(str(path))
        try:
            pages = []
            for index in range(len(pdf)):
                bitmap = pdf[index].render(scale=300 / 72)
                image = bitmap.to_pil().convert("RGB")
                image.info["dpi"] = (300, 300)
                pages.append(image)
            return pages
        finally:
            pdf.close()


def _cases() -> Iterator[pytest.param]:
    for name, mime_type, language, with_variants in CORPUS:
        pages = PAGES.get(name, 1)
        for number in range(1, pages + 1):
            yield pytest.param((name, mime_type, language, number, None), id=f"{name}#{number}")
            if number in with_variants:
                for variant in VARIANTS:
                    yield pytest.param((name, mime_type, language, number, variant), id=f"{name}#{number}/{variant}")


@pytest.fixture(scope="module")
def pool() -> Iterator[OcrPool]:
    ocr = OcrPool(SETTINGS, size=2)
    yield ocr
    ocr.close()


@functools.cache
def _references(path: Path, mime_type: str) -> tuple[Image.Image, ...]:
    return tuple(_reference_pages(path, mime_type))


def read_document(
    path: Path, mime_type: str, language: str, pool: OcrPool, settings: Settings = SETTINGS
) -> list[PageText]:
    """Every page of the file, read by the worker's own page path."""
    pages = read_pages(path, mime_type, language, pool, settings, time.monotonic() + 600)
    with contextlib.closing(pages):
        return list(pages)


_corpus_reads: dict[tuple[Path, str], list[PageText]] = {}


def corpus_pages(path: Path, mime_type: str, language: str, pool: OcrPool) -> list[PageText]:
    """A corpus document read once per run (its pages are separate test cases)."""
    if (path, language) not in _corpus_reads:
        _corpus_reads[(path, language)] = read_document(path, mime_type, language, pool)
    return _corpus_reads[(path, language)]


def plain_engine_text(image: Image.Image, language: str) -> str:
    """untxt's engine with every shortcut off: the untouched image, read as it is."""
    with tesserocr.PyTessBaseAPI(path=TESSDATA + "/", lang=language) as api:
        api.SetImage(image)
        # As the CLI takes it from the file (SetImage does not pass it on).
        api.SetSourceResolution(round(image.info.get("dpi", (300, 300))[0]))
        return api.GetUTF8Text()


def _compare(case: Case, ours: str) -> None:
    theirs = cli_text(case.reference, case.language, TESSDATA)
    agreement = similarity(ours, theirs)
    if agreement >= MIN_SIMILARITY:
        return
    assert case.name in ENGINES_DIFFER, f"{case.name}: untxt read {ours!r}, the CLI {theirs!r} ({agreement:.3f})"
    plain = plain_engine_text(case.reference, case.language)
    assert similarity(ours, plain) >= MIN_SIMILARITY, f"{case.name}: untxt {ours!r} vs its own engine {plain!r}"


@pytest.mark.parametrize("spec", list(_cases()))
def test_untxt_reads_what_the_cli_reads(spec: tuple, pool: OcrPool, tmp_path: Path) -> None:
    name, mime_type, language, number, variant = spec
    path = corpus_file(name)
    reference = _references(path, mime_type)[number - 1]
    label = f"{name}#{number}" + (f"/{variant}" if variant else "")
    if variant is None:
        page = corpus_pages(path, mime_type, language, pool)[number - 1]
        if label in OWN_TEXT_LAYER:
            assert page.source == "text-layer"
            return
        _compare(Case(label, language, reference), page.text)
        return
    image = VARIANTS[variant](reference)
    variant_path = tmp_path / "variant.png"
    image.save(variant_path, dpi=image.info["dpi"])
    [page] = read_document(variant_path, "image/png", language, pool)
    _compare(Case(label, language, image), page.text)


@pytest.mark.parametrize("kind", list(nearly_blank_pages()))
def test_blank_page_rule_drops_nothing_the_cli_reads(kind: str, pool: OcrPool, tmp_path: Path) -> None:
    image = nearly_blank_pages()[kind]
    path = tmp_path / f"{kind}.png"
    image.save(path, dpi=(300, 300))
    [page] = read_document(path, "image/png", "eng", pool)
    theirs = cli_text(image, "eng", TESSDATA)
    assert similarity(page.text, theirs) >= MIN_SIMILARITY, f"{kind}: untxt {page.text!r}, CLI {theirs!r}"
    if not theirs.split():
        assert page.source == "blank", f"{kind}: nothing to read, yet OCR'd"


def test_downscaled_pdf_pages_read_like_full_resolution() -> None:
    """Pages over MAX_IMAGE_PIXELS at 300 dpi are rendered smaller instead of refused."""
    path = corpus_file("c03-29.pdf")
    reference = _references(path, PDF_TYPE)[0]
    small = SETTINGS.replace(max_image_pixels=reference.width * reference.height // 2)
    readers = OcrPool(small, size=1)  # the limit is the pool's: its children render the pages
    try:
        [page] = read_document(path, PDF_TYPE, "eng", readers, small)
    finally:
        readers.close()
    assert page.width * page.height <= small.max_image_pixels * 1.01  # rounded up to whole pixels
    _compare(Case("c03-29.pdf#1/downscaled", "eng", reference), page.text)
