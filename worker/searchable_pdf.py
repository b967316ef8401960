"""The searchable PDF: each page keeps its original image, with the recognised words laid over it
as invisible text, so the document can be searched, selected and copied.

Built the way OCRmyPDF grafts Tesseract's text-only PDF onto the input, without Tesseract's PDF
renderer (tesserocr does not expose it):

* **PDF input**: the original file, opened with pikepdf; OCR'd pages get a text layer appended
  to their content (wrapped in q/Q, so nothing the page left in its graphics state moves our
  text); pages that had their own text layer, and blank pages, are copied untouched. Nothing is
  re-encoded, so the output is the input plus the text.
* **Image input** (PNG, JPEG, TIFF incl. multi-frame, WebP): img2pdf makes one page per frame at
  the size its DPI gives, embedding JPEG and CCITT/PNG data as they are (no re-encoding); then
  the same text layer is added.

Each word is drawn in text render mode 3 (invisible) with Tesseract's GlyphLessFont
(``pdf.ttf`` from tessdata: every glyph empty and half an em wide, Unicode through an identity
ToUnicode map), its text matrix mapping the word's box on the image as read (after any turn)
back onto the page. A page that was turned to be read upright gets ``/Rotate`` so it also
displays upright; a skewed page is shown straightened as it was read, by a turn (``cm``) of its
own content, the image's bytes untouched, and its words are laid level over it. (Words tilted
with a skewed page made PDFium's extraction interleave neighbouring lines, as Tesseract's own
renderer notes for viewers.)
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import img2pdf
import pikepdf
import pypdfium2 as pdfium
from pikepdf import Array, Dictionary, Name
from PIL import Image

from common.media import PDF_TYPE
from worker.documents import PDFIUM_LOCK
from worker.geometry import Affine, turn_to_source, turned_size
from worker.results import DocumentText, PageText, Word

FONT_FILE = "pdf.ttf"
# GlyphLessFont's advance for every glyph: half an em, as in Tesseract's renderer.
GLYPH_WIDTH = 500
# Image types img2pdf embeds as they are; others (alpha channels, palettes with transparency)
# are flattened onto white and stored losslessly first.
_IMG2PDF_MODES = {"1", "L", "RGB", "CMYK", "P", "I;16"}


def render_pdf(source: Path, mime_type: str, doc: DocumentText, tessdata_dir: str) -> bytes:
    pdf = pikepdf.open(source) if mime_type == PDF_TYPE else pikepdf.open(io.BytesIO(_images_to_pdf(source)))
    with pdf:
        geometry = _page_geometry(source if mime_type == PDF_TYPE else None, pdf)
        if len(pdf.pages) != len(doc.pages):
            raise ValueError(f"the PDF has {len(pdf.pages)} pages, the result {len(doc.pages)}")
        font = _glyphless_font(pdf, Path(tessdata_dir) / FONT_FILE)
        for page, text, (crop, rotate) in zip(pdf.pages, doc.pages, geometry, strict=True):
            if text.source != "ocr" or not text.words:
                continue
            name = page.add_resource(font, Name.Font, prefix="UntxtOCR")
            to_page, straighten = _display_maps(text, crop, rotate)
            prologue = b"q\n" + (f"{_numbers(straighten)} cm\n".encode("ascii") if straighten else b"")
            page.contents_add(pdf.make_stream(prologue), prepend=True)
            page.contents_add(pdf.make_stream(b"Q\n" + _text_layer(text, str(name), to_page)))
            if text.rotation:
                page.obj.Rotate = (rotate + text.rotation) % 360
        out = io.BytesIO()
        pdf.save(out, compress_streams=True, object_stream_mode=pikepdf.ObjectStreamMode.generate)
    return out.getvalue()


def _images_to_pdf(source: Path) -> bytes:
    """One page per frame, its size from the image's DPI (img2pdf's default when it has none)."""
    try:
        # Orientation stays as the pixels are: pages are turned by what OCR found, not by EXIF.
        return bytes(img2pdf.convert(str(source), rotation=img2pdf.Rotation.none))
    except (img2pdf.ImageOpenError, img2pdf.AlphaChannelError, ValueError):
        frames = []
        with Image.open(source) as image:
            for index in range(getattr(image, "n_frames", 1)):
                image.seek(index)
                frames.append(_flattened_png(image))
        return bytes(img2pdf.convert(frames, rotation=img2pdf.Rotation.none))


def _flattened_png(frame: Image.Image) -> bytes:
    rgba = frame.convert("RGBA")
    flat = Image.new("RGB", rgba.size, "white")
    flat.paste(rgba, mask=rgba.getchannel("A"))
    out = io.BytesIO()
    flat.save(out, format="PNG", dpi=frame.info.get("dpi", (96, 96)))
    return out.getvalue()


def _page_geometry(source_pdf: Path | None, pdf: pikepdf.Pdf) -> list[tuple[tuple[float, ...], int]]:
    """Per page: (crop box, /Rotate), read by PDFium, the same library that rendered the page
    for OCR, so both sides agree on inherited attributes and malformed boxes."""
    if source_pdf is None:
        return [(tuple(float(v) for v in page.mediabox), 0) for page in pdf.pages]
    result = []
    with PDFIUM_LOCK:
        document = pdfium.PdfDocument(str(source_pdf))
        try:
            for index in range(len(document)):
                page = document[index]
                result.append((tuple(page.get_cropbox()), page.get_rotation()))
                page.close()
        finally:
            document.close()
    return result


def _display_maps(text: PageText, crop: tuple[float, ...], rotate: int) -> tuple[Affine, Affine | None]:
    """(map from the image as read to the PDF page's user space as the page will be shown,
    the ``cm`` that straightens the page's own content, or None when it was not skewed)."""
    left, right = sorted((crop[0], crop[2]))
    bottom, top = sorted((crop[1], crop[3]))
    source_width, source_height = text.source_size or (text.width, text.height)
    # The raster is the displayed page: the crop box turned clockwise by /Rotate.
    shown_width, shown_height = (top - bottom, right - left) if rotate in (90, 270) else (right - left, top - bottom)
    to_points = Affine.scale(shown_width / source_width, shown_height / source_height)
    # Displayed points (origin top-left, y down) to user space (origin bottom-left, y up).
    shown_to_user = {
        0: Affine(a=1, b=0, c=left, d=0, e=-1, f=top),
        90: Affine(a=0, b=1, c=left, d=1, e=0, f=bottom),
        180: Affine(a=-1, b=0, c=right, d=0, e=1, f=bottom),
        270: Affine(a=0, b=-1, c=right, d=-1, e=0, f=top),
    }[rotate % 360]
    quarter_to_user = shown_to_user @ to_points @ turn_to_source(source_width, source_height, text.rotation, 0.0)
    if not text.skew:
        return quarter_to_user, None
    # The page is shown turned by the skew about its centre, as it was read; the words then sit
    # where they were found on the read image, less the margin its larger canvas added.
    width, height = turned_size(source_width, source_height, text.rotation, 0.0)
    canvas_width, canvas_height = turned_size(source_width, source_height, text.rotation, text.skew)
    straighten = Affine.turn_about(width / 2, height / 2, text.skew)
    content = quarter_to_user @ straighten @ quarter_to_user.inverse()
    return quarter_to_user @ Affine.translate((width - canvas_width) / 2, (height - canvas_height) / 2), content


def _text_layer(text: PageText, font: str, to_page: Affine) -> bytes:
    parts = [f"BT\n3 Tr\n{font} 1 Tf\n"]
    for paragraph in text.paragraphs:
        for line in paragraph.lines:
            words = [w for w in line.words if _utf16_codes(w.text) and w.width > 0 and w.height > 0]
            for word, following in zip(words, [*words[1:], None], strict=True):
                codes = _utf16_codes(word.text)
                # A space after every word, a line's last too: PDFium's extraction joins words
                # that touch (map labels, the last word of one line beside the next line's).
                frame = _word_frame(word, len(codes) // 4, following)
                parts.append(f"{_numbers(to_page @ frame)} Tm <{codes}0020> Tj\n")
    parts.append("ET\n")
    return "".join(parts).encode("ascii")


def _word_frame(word: Word, glyphs: int, following: Word | None) -> Affine:
    """Text space (font size 1, y up) onto a word's box: baseline on its bottom edge, as tall
    as the box, its glyphs stretched to its width and its space after them.

    Tesseract's boxes of neighbours on a line sometimes overlap (a box reaching over the next
    two words was seen on a newspaper page). Laid as they are, one word's glyphs and space
    cover the next's, and PDFium's extraction merges the words ("kingwith"). So where the
    space would reach the next word, the glyphs and the space are fitted together between the
    word's left edge and the next word's."""
    left, right = word.left, word.left + word.width
    runs = glyphs
    if following is not None and left < following.left < right + word.width / glyphs:
        right, runs = min(right, following.left), glyphs + 1
    advance = runs * GLYPH_WIDTH / 1000
    return Affine(a=(right - left) / advance, b=0, c=left, d=0, e=-word.height, f=word.top + word.height)


def _numbers(matrix: Affine) -> str:
    return " ".join(f"{v:.4f}".rstrip("0").rstrip(".") for v in matrix.as_pdf())


def _utf16_codes(text: str) -> str:
    """Hex UTF-16BE, as Identity-H codes whose ToUnicode map is the identity."""
    return text.encode("utf-16-be").hex().upper()


def _glyphless_font(pdf: pikepdf.Pdf, font_file: Path) -> pikepdf.Object:
    font_data = font_file.read_bytes()
    descriptor = Dictionary(
        Type=Name.FontDescriptor,
        FontName=Name.GlyphLessFont,
        Flags=5,
        FontBBox=Array([0, 0, GLYPH_WIDTH, 1000]),
        ItalicAngle=0,
        Ascent=1000,
        Descent=-1,
        CapHeight=1000,
        StemV=80,
        FontFile2=pdf.make_stream(font_data, Length1=len(font_data)),
    )
    # Every one of the 65,536 codes shows glyph 1 (the font's only, empty, glyph).
    cid_to_gid = pdf.make_stream(zlib.compress(b"\x00\x01" * 65536), Filter=Name.FlateDecode)
    descendant = Dictionary(
        Type=Name.Font,
        Subtype=Name.CIDFontType2,
        BaseFont=Name.GlyphLessFont,
        CIDSystemInfo=Dictionary(Registry=pikepdf.String("Adobe"), Ordering=pikepdf.String("Identity"), Supplement=0),
        FontDescriptor=pdf.make_indirect(descriptor),
        CIDToGIDMap=cid_to_gid,
        DW=GLYPH_WIDTH,
    )
    font = Dictionary(
        Type=Name.Font,
        Subtype=Name.Type0,
        BaseFont=Name.GlyphLessFont,
        Encoding=Name("/Identity-H"),
        DescendantFonts=Array([pdf.make_indirect(descendant)]),
        ToUnicode=pdf.make_stream(_IDENTITY_TO_UNICODE),
    )
    return pdf.make_indirect(font)


def _identity_to_unicode() -> bytes:
    # A bfrange may not cross a change of its first byte, and a block holds at most 100 ranges.
    ranges = [f"<{hi:02X}00> <{hi:02X}FF> <{hi:02X}00>" for hi in range(256)]
    blocks = [ranges[i : i + 100] for i in range(0, len(ranges), 100)]
    body = "".join(f"{len(b)} beginbfrange\n" + "\n".join(b) + "\nendbfrange\n" for b in blocks)
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        f"{body}endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    ).encode("ascii")


_IDENTITY_TO_UNICODE = _identity_to_unicode()
