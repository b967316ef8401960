"""hOCR and ALTO: the words with their boxes, as the two XML formats document tools read.

Both are rendered from the same page model as the text, HTML and JSON results, not from
Tesseract's own ``GetHOCRText``/``GetAltoText``: pages taken from a PDF's text layer and blank
pages never pass through Tesseract, yet belong in the document, and one model guarantees the
same words, in the same order, in every format. Boxes are pixels of each page as it was read
(after any turn; the turn is given per page). ElementTree does the escaping.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from worker.results import Box, DocumentText, PageText

HOCR_NS = "http://www.w3.org/1999/xhtml"
ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"
ALTO_SCHEMA = "http://www.loc.gov/standards/alto/v4/alto-4-2.xsd"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
_XHTML_DOCTYPE = (
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
    '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
)


def _bbox(box: Box) -> str:
    return f"bbox {box[0]} {box[1]} {box[2]} {box[3]}"


def render_hocr(doc: DocumentText) -> str:
    language = doc.language.split("+")[0]
    html = ET.Element("html", {"xmlns": HOCR_NS, "xml:lang": language, "lang": language})
    head = ET.SubElement(html, "head")
    ET.SubElement(head, "title").text = doc.filename
    ET.SubElement(head, "meta", {"http-equiv": "Content-Type", "content": "text/html;charset=utf-8"})
    ET.SubElement(head, "meta", {"name": "ocr-system", "content": f"untxt ({doc.engine})"})
    capabilities = "ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf"
    ET.SubElement(head, "meta", {"name": "ocr-capabilities", "content": capabilities})
    body = ET.SubElement(html, "body")
    for page in doc.pages:
        _hocr_page(body, page)
    ET.indent(html, space=" ")
    return _XML_DECLARATION + _XHTML_DOCTYPE + ET.tostring(html, encoding="unicode") + "\n"


def _hocr_page(body: ET.Element, page: PageText) -> None:
    n = page.number
    title = f"{_bbox((0, 0, page.width, page.height))}; ppageno {n - 1}; x_source {page.source}"
    if page.rotation or page.skew:
        # Clockwise degrees the image was turned before it was read (engine-specific x_ props).
        title += f"; x_rotation {page.rotation}; x_skew {page.skew}"
    div = ET.SubElement(body, "div", {"class": "ocr_page", "id": f"page_{n}", "title": title})
    for p_index, paragraph in enumerate(page.paragraphs, start=1):
        area = ET.SubElement(
            div, "div", {"class": "ocr_carea", "id": f"block_{n}_{p_index}", "title": _bbox(paragraph.box)}
        )
        par = ET.SubElement(area, "p", {"class": "ocr_par", "id": f"par_{n}_{p_index}", "title": _bbox(paragraph.box)})
        for l_index, line in enumerate(paragraph.lines, start=1):
            span = ET.SubElement(
                par, "span", {"class": "ocr_line", "id": f"line_{n}_{p_index}_{l_index}", "title": _bbox(line.box)}
            )
            for w_index, word in enumerate(line.words, start=1):
                attributes = {
                    "class": "ocrx_word",
                    "id": f"word_{n}_{p_index}_{l_index}_{w_index}",
                    "title": f"{_bbox(word.box)}; x_wconf {round(word.confidence)}",
                }
                ET.SubElement(span, "span", attributes).text = word.text


def render_alto(doc: DocumentText) -> str:
    ET.register_namespace("", ALTO_NS)
    ET.register_namespace("xsi", XSI_NS)
    alto = ET.Element(f"{{{ALTO_NS}}}alto", {f"{{{XSI_NS}}}schemaLocation": f"{ALTO_NS} {ALTO_SCHEMA}"})
    description = ET.SubElement(alto, _a("Description"))
    ET.SubElement(description, _a("MeasurementUnit")).text = "pixel"
    image = ET.SubElement(description, _a("sourceImageInformation"))
    ET.SubElement(image, _a("fileName")).text = doc.filename
    processing = ET.SubElement(description, _a("OCRProcessing"), {"ID": "OCR_0"})
    step = ET.SubElement(processing, _a("ocrProcessingStep"))
    software = ET.SubElement(step, _a("processingSoftware"))
    ET.SubElement(software, _a("softwareName")).text = "untxt"
    ET.SubElement(software, _a("softwareVersion")).text = doc.engine
    layout = ET.SubElement(alto, _a("Layout"))
    for page in doc.pages:
        _alto_page(layout, page)
    ET.indent(alto, space=" ")
    return _XML_DECLARATION + ET.tostring(alto, encoding="unicode") + "\n"


def _a(tag: str) -> str:
    return f"{{{ALTO_NS}}}{tag}"


def _position(box: Box) -> dict[str, str]:
    return {"HPOS": str(box[0]), "VPOS": str(box[1]), "WIDTH": str(box[2] - box[0]), "HEIGHT": str(box[3] - box[1])}


def _alto_page(layout: ET.Element, page: PageText) -> None:
    n = page.number
    attributes = {"ID": f"page_{n}", "PHYSICAL_IMG_NR": str(n), "WIDTH": str(page.width), "HEIGHT": str(page.height)}
    element = ET.SubElement(layout, _a("Page"), attributes)
    space = ET.SubElement(element, _a("PrintSpace"), _position((0, 0, page.width, page.height)))
    for p_index, paragraph in enumerate(page.paragraphs, start=1):
        block = ET.SubElement(space, _a("TextBlock"), {"ID": f"block_{n}_{p_index}", **_position(paragraph.box)})
        for l_index, line in enumerate(paragraph.lines, start=1):
            text_line = ET.SubElement(
                block, _a("TextLine"), {"ID": f"line_{n}_{p_index}_{l_index}", **_position(line.box)}
            )
            for w_index, word in enumerate(line.words, start=1):
                if w_index > 1:
                    previous = line.words[w_index - 2].box
                    gap = {"WIDTH": str(max(0, word.left - previous[2])), "HPOS": str(previous[2])}
                    ET.SubElement(text_line, _a("SP"), {**gap, "VPOS": str(word.top)})
                string = {
                    "ID": f"string_{n}_{p_index}_{l_index}_{w_index}",
                    **_position(word.box),
                    "WC": f"{word.confidence / 100:.2f}",
                    "CONTENT": word.text,
                }
                ET.SubElement(text_line, _a("String"), string)
