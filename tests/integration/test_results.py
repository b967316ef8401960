"""What users download, checked with real engines: pages read upright and straight, the
searchable PDF (opened, rendered and searched with PDFium), hOCR and ALTO."""

from __future__ import annotations

import contextlib
import ctypes
import difflib
import io
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import img2pdf
import pikepdf
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from PIL import Image

from common.media import PDF_TYPE
from common.settings import Settings
from tests.conftest import corpus_file
from tests.support import text_page_png
from tests.variants import cer, rotated, similarity, skewed
from worker.layout_xml import ALTO_NS, HOCR_NS, render_alto, render_hocr
from worker.ocr import OcrEngine
from worker.pool import OcrPool
from worker.reading import read_pages
from worker.render import render_text
from worker.results import DocumentText
from worker.searchable_pdf import render_pdf

SETTINGS = Settings(database_url="", redis_url="", s3_bucket="", kms_key_id="")
TESSDATA = SETTINGS.tessdata_dir


@pytest.fixture(scope="module")
def pool() -> Iterator[OcrPool]:
    ocr = OcrPool(SETTINGS, size=2)
    yield ocr
    ocr.close()


@pytest.fixture(scope="module")
def engine() -> Iterator[OcrEngine]:
    """A plain engine (no turning), for reading pages back as a viewer shows them."""
    ocr = OcrEngine(TESSDATA)
    yield ocr
    ocr.close()


def read_document(path: Path, mime_type: str, pool: OcrPool, language: str = "eng") -> DocumentText:
    pages = read_pages(path, mime_type, language, pool, SETTINGS, time.monotonic() + 600)
    with contextlib.closing(pages):
        return DocumentText(filename=path.name, language=language, engine="test", pages=list(pages))


def _save(image: Image.Image, path: Path) -> Path:
    image.save(path, dpi=image.info.get("dpi", (300, 300)))
    return path


# -- upright and straight ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "language"), [("phototest.tif", "eng"), ("eurotext.tif", "eng"), ("vie_p1.png", "vie")]
)
def test_turned_and_skewed_pages_read_like_the_upright_page(
    name: str, language: str, pool: OcrPool, tmp_path: Path
) -> None:
    path = corpus_file(name)
    truth = path.with_suffix(".txt").read_text(encoding="utf-8")
    with Image.open(path) as original:
        original.load()
        upright = original.convert("L")
        upright.info["dpi"] = original.info.get("dpi", (300, 300))
    [page] = read_document(_save(upright, tmp_path / "upright.png"), "image/png", pool, language).pages
    baseline = cer(page.text, truth)
    assert (page.rotation, page.skew) == (0, 0.0)
    cases: list[tuple[str, Image.Image, int, float]] = [
        *[(f"turned {r}", rotated(upright, r), (360 - r) % 360, 0.0) for r in (90, 180, 270)],
        *[(f"skewed {s}", skewed(upright, s), 0, -s) for s in (-4.0, 3.0, 7.0)],
    ]
    for label, image, rotation, skew in cases:
        [page] = read_document(_save(image, tmp_path / "case.png"), "image/png", pool, language).pages
        assert cer(page.text, truth) <= baseline + 0.02, f"{name} {label}: CER {cer(page.text, truth):.3f}"
        assert page.rotation == rotation, label
        assert page.skew == pytest.approx(skew, abs=1.5), label  # Tesseract measures within ~1°


# -- the searchable PDF -----------------------------------------------------------------------


def _extracted_words(page: pdfium.PdfPage) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Words as PDFium extracts them, each with the union of its characters' boxes."""
    textpage = page.get_textpage()
    try:
        words: list[tuple[str, tuple[float, float, float, float]]] = []
        chars: list[str] = []
        boxes: list[tuple[float, float, float, float]] = []
        for index in range(textpage.count_chars() + 1):
            char = textpage.get_text_range(index, 1) if index < textpage.count_chars() else " "
            if char.isspace() or char == "\ufffe":  # U+FFFE: PDFium's join of a hyphenated line end
                if chars:
                    words.append(("".join(chars) + ("-" if char == "\ufffe" else ""), _union(boxes)))
                chars, boxes = [], []
                continue
            chars.append(char)
            boxes.append(textpage.get_charbox(index))
        return words
    finally:
        textpage.close()


def _union(boxes: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)


def _user_to_device(page: pdfium.PdfPage, width: int, height: int) -> Callable[[float, float], tuple[int, int]]:
    """PDFium's own map from PDF user space to the page as it renders at width x height."""

    def to_device(x: float, y: float) -> tuple[int, int]:
        dx, dy = ctypes.c_int(), ctypes.c_int()
        pdfium_c.FPDF_PageToDevice(page.raw, 0, 0, width, height, 0, x, y, ctypes.byref(dx), ctypes.byref(dy))
        return dx.value, dy.value

    return to_device


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _device_box(to_device: Callable[[float, float], tuple[int, int]], box: tuple[float, ...]) -> tuple[int, ...]:
    corners = [to_device(x, y) for x in (box[0], box[2]) for y in (box[1], box[3])]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return min(xs), min(ys), max(xs), max(ys)


def check_searchable(doc: DocumentText, output: bytes, engine: OcrEngine) -> None:
    """Every OCR'd page's words are extracted in order, each over the word a reader sees there:
    the output page is rendered as a viewer shows it, read again, and the two sets of boxes
    compared (both placed by PDFium, independently of the code that wrote the PDF)."""
    result = pdfium.PdfDocument(output)
    try:
        assert len(result) == len(doc.pages)
        for index, page in enumerate(doc.pages):
            if page.source != "ocr":
                continue
            extracted = _extracted_words(result[index])
            assert [w for w, _ in extracted] == [w.text for w in page.words], f"page {page.number}"
            shown = result[index].render(scale=300 / 72).to_pil().convert("L")
            shown.info["dpi"] = (300, 300)
            seen = engine.recognize(shown, "eng", index + 1).page.words
            to_device = _user_to_device(result[index], shown.width, shown.height)
            matcher = difflib.SequenceMatcher(a=[w for w, _ in extracted], b=[w.text for w in seen], autojunk=False)
            pairs = [(extracted[i + k], seen[j + k]) for i, j, n in matcher.get_matching_blocks() for k in range(n)]
            assert len(pairs) >= 0.8 * len(extracted), f"page {page.number}: the rendered page reads differently"
            misplaced = [word for (word, box), read in pairs if not _overlap(_device_box(to_device, box), read.box)]
            assert len(misplaced) <= 0.05 * len(pairs), f"page {page.number}: not over their words: {misplaced}"
    finally:
        result.close()


def _rendered_text(pdf_bytes: bytes, index: int, engine: OcrEngine) -> str:
    """The page as a viewer shows it, read again without any turning."""
    document = pdfium.PdfDocument(pdf_bytes)
    try:
        image = document[index].render(scale=300 / 72).to_pil().convert("L")
    finally:
        document.close()
    image.info["dpi"] = (300, 300)
    return engine.recognize(image, "eng", index + 1).page.text


def test_a_pdf_scanned_at_every_angle_becomes_upright_and_searchable(
    pool: OcrPool, engine: OcrEngine, tmp_path: Path
) -> None:
    with Image.open(corpus_file("phototest.tif")) as scan:
        upright = scan.convert("L")
    upright.info["dpi"] = (200, 200)
    frames = [_save(rotated(upright, r) if r else upright, tmp_path / f"p{r}.png") for r in (0, 90, 180, 270)]
    frames.append(_save(skewed(upright, 5.0), tmp_path / "skewed.png"))
    source = tmp_path / "scans.pdf"
    source.write_bytes(img2pdf.convert([str(f) for f in frames]))
    # A page that its PDF already turns for display (/Rotate 90) and whose scan is upside down
    # in that view: the worker sees it as displayed, and adds its own half turn.
    with pikepdf.open(source, allow_overwriting_input=True) as pdf:
        pdf.pages.append(pdf.pages[1])  # the 90° scan…
        pdf.pages[-1].obj.Rotate = 90  # …shown turned a quarter more: upside down
        pdf.save(source)
    doc = read_document(source, PDF_TYPE, pool)
    assert [p.rotation for p in doc.pages] == [0, 270, 180, 90, 0, 180]
    assert doc.pages[4].skew == pytest.approx(-5.0, abs=0.6)
    output = render_pdf(source, PDF_TYPE, doc, TESSDATA)
    with pikepdf.open(io.BytesIO(output)) as pdf:
        assert [int(p.obj.get("/Rotate", 0)) for p in pdf.pages] == [0, 270, 180, 90, 0, 270]
    # Shown upright and straight: the rendered pages read like the upright scan.
    check_searchable(doc, output, engine)
    for index in range(len(doc.pages)):
        assert similarity(_rendered_text(output, index, engine), doc.pages[0].text) >= 0.95, f"page {index + 1}"


@pytest.mark.parametrize("name", ["c03-29.pdf", "3small.pdf", "multipage.pdf"])
def test_searchable_pdf_of_scanned_pdfs_is_small_and_findable(name: str, pool: OcrPool, engine: OcrEngine) -> None:
    source = corpus_file(name)
    doc = read_document(source, PDF_TYPE, pool)
    output = render_pdf(source, PDF_TYPE, doc, TESSDATA)
    assert len(output) <= 1.3 * source.stat().st_size
    if name == "c03-29.pdf":  # a page of prose; charts and maps are extracted in another order
        check_searchable(doc, output, engine)
    # Every page's words are found, whatever order PDFium reads a chart or a map in.
    document = pdfium.PdfDocument(output)
    try:
        for index, page in enumerate(doc.pages):
            found = sorted(word for word, _ in _extracted_words(document[index]))
            assert found == sorted(w.text for w in page.words), f"page {index + 1}"
    finally:
        document.close()


def _jpeg_page(tmp_path: Path) -> Path:
    path = tmp_path / "page.jpg"
    Image.open(io.BytesIO(text_page_png(["A receipt from the bakery", "Total 4.20"]))).convert("RGB").save(
        path, quality=80, dpi=(150, 150)
    )
    return path


def _images(pdf_bytes: bytes) -> list[tuple[str, bytes]]:
    with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
        return [(str(x.Filter), x.read_raw_bytes()) for page in pdf.pages for x in page.get_images().values()]


def test_jpeg_pages_stay_the_same_jpeg(pool: OcrPool, tmp_path: Path) -> None:
    jpeg = _jpeg_page(tmp_path)
    [(image_filter, data)] = _images(img2pdf.convert(str(jpeg)))
    assert image_filter == "/DCTDecode"
    # An image upload and a PDF of JPEG pages: the JPEG's bytes are embedded as they are.
    doc = read_document(jpeg, "image/jpeg", pool)
    assert _images(render_pdf(jpeg, "image/jpeg", doc, TESSDATA)) == [("/DCTDecode", jpeg.read_bytes())]
    source = tmp_path / "jpeg.pdf"
    source.write_bytes(img2pdf.convert(str(jpeg)))
    doc = read_document(source, PDF_TYPE, pool)
    assert "bakery" in doc.pages[0].text
    assert _images(render_pdf(source, PDF_TYPE, doc, TESSDATA)) == [("/DCTDecode", data)]


def test_image_uploads_become_one_page_per_frame_at_their_size(pool: OcrPool, tmp_path: Path) -> None:
    frames = [Image.open(io.BytesIO(text_page_png([f"Frame number {n}"]))).convert("L") for n in (1, 2, 3)]
    tiff = tmp_path / "frames.tif"
    frames[0].save(tiff, save_all=True, append_images=frames[1:], dpi=(200, 200), compression="tiff_lzw")
    doc = read_document(tiff, "image/tiff", pool)
    output = render_pdf(tiff, "image/tiff", doc, TESSDATA)
    document = pdfium.PdfDocument(output)
    try:
        assert len(document) == 3
        for index, frame in enumerate(frames):
            width, height = document[index].get_size()
            assert (width, height) == pytest.approx((frame.width * 72 / 200, frame.height * 72 / 200), abs=0.5)
            assert f"Frame number {index + 1}" in document[index].get_textpage().get_text_range()
    finally:
        document.close()
    # Transparency (flattened onto white) and WebP (which PDF cannot hold as it is) work too.
    rgba = frames[0].convert("RGBA")
    rgba.putalpha(255)
    for fmt, mime in (("PNG", "image/png"), ("WEBP", "image/webp")):
        path = tmp_path / f"page.{fmt.lower()}"
        rgba.save(path, format=fmt, dpi=(200, 200), lossless=True)
        doc = read_document(path, mime, pool)
        text = pdfium.PdfDocument(render_pdf(path, mime, doc, TESSDATA))[0].get_textpage().get_text_range()
        assert "Frame number 1" in text, fmt


def test_born_digital_pages_are_kept_as_they_are(pool: OcrPool) -> None:
    source = corpus_file("vie_born_digital_2p.pdf")
    doc = read_document(source, PDF_TYPE, pool, "vie")
    assert {p.source for p in doc.pages} == {"text-layer"}
    output = render_pdf(source, PDF_TYPE, doc, TESSDATA)
    with pikepdf.open(source) as before, pikepdf.open(io.BytesIO(output)) as after:
        for old, new in zip(before.pages, after.pages, strict=True):
            assert new.obj.Contents.read_bytes() == old.obj.Contents.read_bytes()
    result = pdfium.PdfDocument(output)
    original = pdfium.PdfDocument(str(source))
    try:
        for index in range(len(doc.pages)):
            assert result[index].get_textpage().get_text_range() == original[index].get_textpage().get_text_range()
    finally:
        result.close()
        original.close()


# -- hOCR and ALTO ----------------------------------------------------------------------------


def _mixed_document(pool: OcrPool, tmp_path: Path) -> DocumentText:
    """A scanned page, a blank page and a born-digital page, in one document."""
    scan = tmp_path / "scan.png"
    scan.write_bytes(text_page_png(["Quarterly report <draft> & notes", "Revenue grew by 12%"]))
    blank = tmp_path / "blank.png"
    Image.new("L", (800, 600), 255).save(blank)
    doc = read_document(scan, "image/png", pool)
    doc.pages += read_document(blank, "image/png", pool).pages
    doc.pages += read_document(corpus_file("vie_born_digital_2p.pdf"), PDF_TYPE, pool, "vie").pages[:1]
    for number, page in enumerate(doc.pages, start=1):
        page.number = number
    return doc


def _txt_pages(doc: DocumentText) -> list[list[str]]:
    return [page.split() for page in render_text(doc).split("\f")]


def test_hocr_is_xhtml_with_the_same_words_as_the_text(pool: OcrPool, tmp_path: Path) -> None:
    doc = _mixed_document(pool, tmp_path)
    root = ET.fromstring(render_hocr(doc).encode("utf-8"))
    ns = {"h": HOCR_NS}
    pages = root.findall(".//h:div[@class='ocr_page']", ns)
    assert len(pages) == 3
    words = [[w.text for w in page.iterfind(".//h:span[@class='ocrx_word']", ns)] for page in pages]
    assert words == _txt_pages(doc)
    assert "<draft>" in words[0]
    first = pages[0].find(".//h:span[@class='ocrx_word']", ns)
    assert first is not None
    assert first.get("title", "").startswith("bbox ")
    assert "x_wconf" in first.get("title", "")


def test_alto_is_xml_with_the_same_words_as_the_text(pool: OcrPool, tmp_path: Path) -> None:
    doc = _mixed_document(pool, tmp_path)
    root = ET.fromstring(render_alto(doc).encode("utf-8"))
    assert root.tag == f"{{{ALTO_NS}}}alto"
    ns = {"a": ALTO_NS}
    pages = root.findall(".//a:Page", ns)
    assert [int(p.get("WIDTH", 0)) for p in pages] == [p.width for p in doc.pages]
    words = [[s.get("CONTENT") for s in page.iterfind(".//a:String", ns)] for page in pages]
    assert words == _txt_pages(doc)
    string = pages[0].find(".//a:String", ns)
    assert string is not None
    assert 0 <= float(string.get("WC", "-1")) <= 1


def test_every_format_is_rendered_from_one_reading(pool: OcrPool, tmp_path: Path) -> None:
    from common import keys
    from worker.render import render_all

    scan = tmp_path / "scan.png"
    scan.write_bytes(text_page_png(["One reading, six formats"]))
    doc = read_document(scan, "image/png", pool)
    rendered = render_all(doc, scan, "image/png", TESSDATA)
    assert set(rendered) == set(keys.RESULT_FORMATS)
    assert rendered["pdf"].startswith(b"%PDF-")
    for fmt in ("html", "txt", "json", "hocr", "alto"):
        assert b"formats" in rendered[fmt], fmt
